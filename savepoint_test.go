package strom_test

// End-to-end tests of savepoints in the embedded cluster: a keyed running
// count over a throttled source of a fixed number of splits, so the job is
// mid-run when a savepoint is taken; the job is cancelled and resumed from
// the savepoint, at another parallelism.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/state"
)

const (
	spSplits   = 6
	spPerSplit = 500
	spKeys     = 10
	spTotal    = spSplits * spPerSplit
)

// spRec is record Seq of split Split.
type spRec struct{ Split, Seq, Key int64 }

func spKeyOf(split, seq int64) int64 { return (split*7 + seq*3) % spKeys }

// spWant is every key's number of records.
func spWant() map[int64]int64 {
	want := map[int64]int64{}
	for s := range int64(spSplits) {
		for q := range int64(spPerSplit) {
			want[spKeyOf(s, q)]++
		}
	}
	return want
}

type spSplit struct{ ID, Pos int64 }

func (s *spSplit) SplitID() string { return strconv.FormatInt(s.ID, 10) }

// spSource has spSplits splits whatever the parallelism (so a rescale
// deals the same splits out anew), reads two records per Read and then
// rests a millisecond: slow enough that the job is mid-run for a
// savepoint.
type spSource struct{}

func (spSource) Splits(int) ([]strom.Split, error) {
	out := make([]strom.Split, spSplits)
	for i := range out {
		out[i] = &spSplit{ID: int64(i)}
	}
	return out, nil
}

func (spSource) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[spRec], error) {
	r := &spReader{}
	for _, s := range splits {
		c := *s.(*spSplit)
		r.splits = append(r.splits, &c)
	}
	return r, nil
}

func (spSource) Bounded() bool { return true }

func (spSource) EncodeSplit(s strom.Split) ([]byte, error) {
	sp := s.(*spSplit)
	return binary.AppendVarint(binary.AppendVarint(nil, sp.ID), sp.Pos), nil
}

func (spSource) DecodeSplit(b []byte) (strom.Split, error) {
	id, n := binary.Varint(b)
	pos, m := binary.Varint(b[max(n, 0):])
	if n <= 0 || m <= 0 || n+m != len(b) {
		return nil, fmt.Errorf("bad split %x", b)
	}
	return &spSplit{ID: id, Pos: pos}, nil
}

type spReader struct {
	splits []*spSplit
	rest   bool
}

func (r *spReader) Read(out strom.SourceOutput[spRec]) (strom.ReadStatus, error) {
	for len(r.splits) > 0 && r.splits[0].Pos >= spPerSplit {
		r.splits = r.splits[1:]
	}
	if len(r.splits) == 0 {
		return strom.ReadStatus{Done: true}, nil
	}
	if r.rest {
		r.rest = false
		return strom.ReadStatus{WakeAt: time.Now().Add(time.Millisecond)}, nil
	}
	r.rest = true
	sp := r.splits[0]
	for i := 0; i < 2 && sp.Pos < spPerSplit; i++ {
		out.Collect(spRec{Split: sp.ID, Seq: sp.Pos, Key: spKeyOf(sp.ID, sp.Pos)})
		sp.Pos++
	}
	return strom.ReadStatus{}, nil
}

func (r *spReader) Snapshot() ([]strom.Split, error) {
	var out []strom.Split
	for _, s := range r.splits {
		if s.Pos < spPerSplit {
			c := *s
			out = append(out, &c)
		}
	}
	return out, nil
}

func (r *spReader) Close() error { return nil }

// spCountFn counts records per key and checks, with state alone, that each
// split's records of the key come in increasing sequence: a record read
// twice across a savepoint and a resume would break it, and a lost one
// the final count.
type spCountFn struct {
	count state.ValueState[int64]
	last  state.MapState[int64, int64]
	run   *spRun
}

func (f *spCountFn) Open(ctx *strom.KeyedContext[int64, keyCount]) error {
	var err error
	if f.count, err = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "count"}); err != nil {
		return err
	}
	f.last, err = state.GetMap(ctx, state.MapDescriptor[int64, int64]{Name: "last-seq"})
	return err
}

func (f *spCountFn) ProcessElement(ctx *strom.KeyedContext[int64, keyCount], r spRec) error {
	if last, ok := f.last.Get(r.Split); ok && r.Seq <= last {
		f.run.bad.add(fmt.Sprintf("key %d split %d: seq %d after seq %d (read twice)", r.Key, r.Split, r.Seq, last))
	}
	if f.run.failAt > 0 && f.run.processed.Load() >= f.run.failAt && f.run.failed.CompareAndSwap(false, true) {
		panic("injected failure")
	}
	f.last.Put(r.Split, r.Seq)
	n, _ := f.count.Value()
	n++
	f.count.Update(n)
	f.run.processed.Add(1)
	ctx.Collect(keyCount{Key: r.Key, Count: n})
	return nil
}

// spRun is one run of the job: what it processed, with the sink and
// violations shared across runs.
type spRun struct {
	jc        *strom.JobClient
	processed atomic.Int64
	bad       *violations
	sink      *lastCounts
	// failAt, if set, fails the keyed function once, when the run has
	// processed that many records.
	failAt int64
	failed atomic.Bool
}

func spConfig(p int) strom.Config {
	return strom.Config{Parallelism: p, BatchSize: 8, BuffersPerChannel: 2}
}

// startSP starts the counting job; countUID is the keyed operator's UID.
func startSP(t *testing.T, cfg strom.Config, countUID string, bad *violations, sink *lastCounts) *spRun {
	t.Helper()
	return startSPRun(t, cfg, countUID, &spRun{bad: bad, sink: sink})
}

func startSPRun(t *testing.T, cfg strom.Config, countUID string, run *spRun) *spRun {
	t.Helper()
	env := strom.NewEnvironment(cfg)
	src := strom.FromSource[spRec](env, spSource{}, "splits").UID("sp-source")
	counts := strom.KeyedProcess(strom.KeyBy(src, func(r spRec) int64 { return r.Key }),
		func() strom.KeyedProcessFunction[int64, spRec, keyCount] { return &spCountFn{run: run} }).UID(countUID)
	strom.SinkFunc(counts, run.sink.put)
	jc, err := env.ExecuteAsync(context.Background(), "savepoint count")
	require.NoError(t, err)
	t.Cleanup(jc.Close)
	run.jc = jc
	return run
}

func newSink() *lastCounts {
	return &lastCounts{last: map[int64]int64{}, rewound: map[int64]int64{}}
}

// savepointMidRun waits until the run has processed n records, takes a
// savepoint into target, checks the job still runs (the savepoint is not
// of a finished job), and cancels it.
func savepointMidRun(t *testing.T, run *spRun, n int64, target string) string {
	t.Helper()
	require.Eventually(t, func() bool { return run.processed.Load() >= n }, 30*time.Second, time.Millisecond, "the job processes records")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, err := run.jc.TriggerSavepoint(ctx, target)
	require.NoError(t, err)
	require.Equal(t, "RUNNING", run.jc.Status(), "the savepoint was taken mid-run")
	require.Less(t, run.processed.Load(), int64(spTotal), "the run had records left")
	run.jc.Cancel()
	_, err = run.jc.Wait(ctx)
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	return path
}

func requireSPCounts(t *testing.T, sink *lastCounts, bad *violations) {
	t.Helper()
	require.Empty(t, bad.get(), "every (split, sequence) counted once")
	want := spWant()
	require.Len(t, sink.last, len(want))
	for k, n := range want {
		require.Equal(t, n, sink.last[k], "final count of key %d", k)
	}
}

// A job is savepointed mid-run, cancelled and resumed at parallelism
// 1 → 2 → 4 → 3, a savepoint at each step (checkpointing on in the middle
// runs, off in the others): the final counts are exact and every record
// of every split was counted once across the runs. Guards: each resumed
// run reports the savepoint it resumed from, and the last one processes
// only what was left (a fresh start would process everything and end with
// the same counts).
func TestSavepointRescaleResume(t *testing.T) {
	dir := t.TempDir()
	bad, sink := &violations{}, newSink()
	ckURL, _ := memStore(t)
	var path string
	var lastID checkpoint.ID
	for step, p := range []int{1, 2, 4} {
		cfg := spConfig(p)
		cfg.FromSavepoint = path
		cfg.SavepointDir = dir // the default target
		if step == 1 {
			cfg.CheckpointInterval, cfg.CheckpointDir = 20*time.Millisecond, ckURL
		}
		run := startSP(t, cfg, "sp-count", bad, sink)
		next := savepointMidRun(t, run, 300, "")
		require.Regexp(t, `^file:///.*/savepoint-[0-9a-f]{6}-[0-9a-f]{12}$`, next)
		res, _ := run.jc.Wait(context.Background())
		require.Equal(t, path, res.RestoredFrom, "step %d", step)
		if step == 1 {
			require.Positive(t, res.CheckpointsCompleted, "checkpoints completed in the resumed run")
		}
		// Ids continue across resumes (the run at parallelism 4 takes no
		// checkpoint: a fresh id sequence would give its savepoint id 1).
		md, _, err := checkpoint.LoadSavepoint(context.Background(), next)
		require.NoError(t, err)
		require.Greater(t, md.ID, lastID, "step %d", step)
		lastID = md.ID
		path = next
	}
	// The savepoint is self-contained: its metadata names state files
	// relative to its own directory, which exist.
	md, dir2, err := checkpoint.LoadSavepoint(context.Background(), path)
	require.NoError(t, err)
	require.Equal(t, path, dir2)
	require.Equal(t, checkpoint.KindSavepoint, md.Kind)
	files := 0
	for _, op := range md.Operators {
		for _, st := range op.Subtasks {
			for _, h := range append(st.Keyed, st.Operator...) {
				require.False(t, filepath.IsAbs(h.Path), h.Path)
				_, err := os.Stat(filepath.Join(fileOf(t, path), h.Path))
				require.NoError(t, err)
				files++
			}
		}
	}
	require.Positive(t, files)

	cfg := spConfig(3)
	cfg.FromSavepoint = path
	run := startSP(t, cfg, "sp-count", bad, sink)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := run.jc.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, path, res.RestoredFrom)
	require.Equal(t, int64(md.ID), res.RestoredCheckpoint)
	require.LessOrEqual(t, run.processed.Load(), int64(spTotal-3*300), "the last run resumed where the savepoint was")
	require.Positive(t, run.processed.Load())
	requireSPCounts(t, sink, bad)
}

func fileOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	require.NoError(t, err)
	require.Equal(t, "file", p.Scheme)
	return filepath.FromSlash(p.Path)
}

// takeSavepoint runs the job at parallelism 2 until it has counted some
// records, savepoints it into target and cancels it.
func takeSavepoint(t *testing.T, target string) string {
	t.Helper()
	run := startSP(t, spConfig(2), "sp-count", &violations{}, newSink())
	return savepointMidRun(t, run, 200, target)
}

// resumeErr starts a job from a savepoint that should be refused and
// returns the error the start failed with.
func resumeErr(t *testing.T, cfg strom.Config, countUID string) error {
	t.Helper()
	run := startSP(t, cfg, countUID, &violations{}, newSink())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := run.jc.Wait(ctx)
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.Zero(t, run.processed.Load(), "the refused job never ran")
	return err
}

// State of an operator the job no longer has (the keyed count's UID
// changed) is refused, naming its UID, unless AllowNonRestoredState drops
// it: then the job runs, its sources resume from the savepoint and the
// renamed count starts empty.
func TestSavepointAllowNonRestoredState(t *testing.T) {
	path := takeSavepoint(t, t.TempDir())
	cfg := spConfig(2)
	cfg.FromSavepoint = path
	err := resumeErr(t, cfg, "sp-count-v2")
	require.ErrorContains(t, err, `"sp-count"`)
	require.ErrorContains(t, err, "allow non-restored state")

	cfg.AllowNonRestoredState = true
	logger, logged := newRecordingLogger()
	cfg.Logger = logger
	sink := newSink()
	run := startSP(t, cfg, "sp-count-v2", &violations{}, sink)
	res, err := run.jc.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, path, res.RestoredFrom)
	// The compatibility report, at UID level: what maps, what is new, what
	// was dropped.
	var report, dropped map[string]string
	for _, r := range logged() {
		switch r.Msg {
		case "resuming from savepoint":
			report = r.Attrs
		case "savepoint state dropped (allow non-restored state)":
			dropped = r.Attrs
		}
	}
	require.NotNil(t, report, "the resume is logged")
	require.Contains(t, report["restored"], "sp-source")
	require.Contains(t, report["new"], "sp-count-v2")
	require.NotNil(t, dropped, "the dropped state is logged")
	require.Contains(t, dropped["operators"], `"sp-count"`)
	var total int64
	for _, n := range sink.last {
		total += n
	}
	require.Equal(t, run.processed.Load(), total, "the count started empty")
	require.Less(t, total, int64(spTotal), "the sources resumed from the savepoint")
}

// Resuming fails clearly, before the job runs, from a path holding no
// savepoint, from a corrupt _metadata, and with another maxParallelism.
func TestSavepointResumeRefused(t *testing.T) {
	base := t.TempDir()
	path := takeSavepoint(t, base)

	cfg := spConfig(2)
	cfg.FromSavepoint = filepath.Join(base, "no-such-savepoint")
	err := resumeErr(t, cfg, "sp-count")
	require.ErrorContains(t, err, "no-such-savepoint")
	require.ErrorContains(t, err, "not a savepoint")
	_, statErr := os.Stat(filepath.Join(base, "no-such-savepoint"))
	require.True(t, errors.Is(statErr, os.ErrNotExist), "a wrong path is not created")

	// The maxParallelism is fixed per job: the savepoint's keyed state is
	// in 128 key groups.
	cfg = spConfig(2)
	cfg.FromSavepoint = path
	cfg.MaxParallelism = 64
	err = resumeErr(t, cfg, "sp-count")
	require.ErrorContains(t, err, "maxParallelism 128")
	require.ErrorContains(t, err, "maxParallelism is 64")
	require.ErrorContains(t, err, `"sp-count"`)

	// The OS path of its _metadata file names the savepoint too; a
	// flipped byte in it is caught by the checksum.
	meta := filepath.Join(fileOf(t, path), "_metadata")
	data, err := os.ReadFile(meta)
	require.NoError(t, err)
	data[len(data)-2] ^= 0x20
	require.NoError(t, os.WriteFile(meta, data, 0o644))
	cfg = spConfig(2)
	cfg.FromSavepoint = meta
	err = resumeErr(t, cfg, "sp-count")
	require.ErrorContains(t, err, "corrupt")
	require.ErrorIs(t, err, checkpoint.ErrCorruptMetadata)
}

// A savepoint to a place that cannot be written (below a regular file)
// fails with an error naming the savepoint, the job and the target, while
// the job keeps running and finishes with exact counts; a savepoint with
// no directory at all fails at once.
func TestSavepointUnwritableTargetKeepsJobRunning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	target := "file://" + filepath.ToSlash(file) + "/savepoints"
	bad, sink := &violations{}, newSink()
	run := startSP(t, spConfig(2), "sp-count", bad, sink)
	require.Eventually(t, func() bool { return run.processed.Load() >= 100 }, 30*time.Second, time.Millisecond)

	_, err := run.jc.TriggerSavepoint(context.Background(), "")
	require.ErrorIs(t, err, strom.ErrNoSavepointDir)

	_, err = run.jc.TriggerSavepoint(context.Background(), target)
	require.Error(t, err)
	require.Regexp(t, `savepoint \d+ of job `+run.jc.JobID()+` to `+target+` failed: `, err.Error())
	require.Equal(t, "RUNNING", run.jc.Status(), "the job runs on")
	require.Less(t, run.processed.Load(), int64(spTotal), "the failed savepoint was taken mid-run")

	res, err := run.jc.Wait(context.Background())
	require.NoError(t, err)
	require.Zero(t, res.Restarts)
	requireSPCounts(t, sink, bad)
}

// Disposing deletes the savepoint's directory; resuming from it then fails
// clearly. A directory holding no savepoint is refused and left alone.
func TestDisposeSavepoint(t *testing.T) {
	base := t.TempDir()
	path := takeSavepoint(t, base)
	ctx := context.Background()
	require.NoError(t, strom.DisposeSavepoint(ctx, path))
	_, err := os.Stat(fileOf(t, path))
	require.True(t, errors.Is(err, os.ErrNotExist), "the savepoint's directory is gone: %v", err)
	entries, err := os.ReadDir(base)
	require.NoError(t, err)
	require.Empty(t, entries)

	cfg := spConfig(1)
	cfg.FromSavepoint = path
	require.ErrorContains(t, resumeErr(t, cfg, "sp-count"), "not a savepoint")

	other := filepath.Join(base, "not-a-savepoint")
	require.NoError(t, os.MkdirAll(other, 0o755))
	keep := filepath.Join(other, "keep.txt")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o644))
	err = strom.DisposeSavepoint(ctx, other)
	require.ErrorContains(t, err, "not a savepoint")
	_, err = os.Stat(keep)
	require.NoError(t, err, "a refused dispose deletes nothing")
}

// A savepoint to S3 (gofakes3 on loopback) is resumed at another
// parallelism with exact counts.
func TestSavepointS3(t *testing.T) {
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("sp"))
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}, "anonymous": {"true"}}
	target := "s3://sp/jobs?" + q.Encode()

	bad, sink := &violations{}, newSink()
	run := startSP(t, spConfig(2), "sp-count", bad, sink)
	path := savepointMidRun(t, run, 300, target)
	require.Regexp(t, `^s3://sp/jobs/savepoint-[0-9a-f]{6}-[0-9a-f]{12}\?`, path)

	cfg := spConfig(3)
	cfg.FromSavepoint = path
	run = startSP(t, cfg, "sp-count", bad, sink)
	res, err := run.jc.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, path, res.RestoredFrom)
	require.Less(t, run.processed.Load(), int64(spTotal))
	requireSPCounts(t, sink, bad)

	// Dispose deletes its objects, and only its.
	other := savepointMidRun(t, startSP(t, spConfig(1), "sp-count", &violations{}, newSink()), 50, target)
	require.NoError(t, strom.DisposeSavepoint(context.Background(), path))
	_, _, err = checkpoint.LoadSavepoint(context.Background(), path)
	require.ErrorIs(t, err, checkpoint.ErrNotSavepoint)
	_, _, err = checkpoint.LoadSavepoint(context.Background(), other)
	require.NoError(t, err, "the other savepoint under the same target is intact")
}

// A resumed job that fails before its first completed checkpoint (here:
// checkpointing off) restarts from the savepoint again: the counts rewind
// to the savepoint's and end exact.
func TestSavepointRestartBeforeFirstCheckpointRestoresSavepoint(t *testing.T) {
	bad, sink := &violations{}, newSink()
	path := savepointMidRun(t, startSP(t, spConfig(2), "sp-count", bad, sink), 300, t.TempDir())

	cfg := spConfig(2)
	cfg.FromSavepoint = path
	cfg.RestartStrategy = strom.FixedDelayRestart(1, time.Millisecond)
	run := startSPRun(t, cfg, "sp-count", &spRun{bad: bad, sink: sink, failAt: 200})
	res, err := run.jc.Wait(context.Background())
	require.NoError(t, err)
	require.True(t, run.failed.Load(), "the failure was injected")
	require.Equal(t, 1, res.Restarts)
	require.Equal(t, path, res.RestoredFrom, "the restart restored the savepoint")
	require.NotEmpty(t, sink.rewound, "counts went back to the savepoint's")
	for k, n := range sink.rewound {
		require.Greater(t, n, int64(1), "key %d rewound to the savepoint's count, not to a fresh start", k)
	}
	requireSPCounts(t, sink, bad)
}
