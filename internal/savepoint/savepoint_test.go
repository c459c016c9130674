package savepoint_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/savepoint"
	"github.com/strom-dev/strom/internal/savepoint/savepointtest"
)

// One real checkpoint, written once for the tests of the package that
// only read it, under chkRoot.
var chkRoot, chkDir, fullChkDir string

func TestMain(m *testing.M) {
	var err error
	if chkRoot, err = os.MkdirTemp("", "savepoint-test"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(chkRoot)
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		code = 1
	}
	os.Exit(code)
}

func checkpointDir(t *testing.T) string {
	if chkDir == "" {
		chkDir = savepointtest.CountingCheckpoint(t, chkRoot)
	}
	return chkDir
}

// fullCheckpointDir is a checkpoint whose files all lie in its directory
// (full checkpoints), for the tests that copy or change them.
func fullCheckpointDir(t *testing.T) string {
	if fullChkDir == "" {
		// A root of its own: the helper returns its root's newest
		// checkpoint.
		root := filepath.Join(chkRoot, "full")
		require.NoError(t, os.MkdirAll(root, 0o755))
		fullChkDir = savepointtest.CountingCheckpointFull(t, root)
	}
	return fullChkDir
}

// A checkpoint written by a real job opens by directory, by _metadata
// path and by URL, and lists its operators and the count state with its
// type, key count and size.
func TestSummarizeRealCheckpoint(t *testing.T) {
	dir := checkpointDir(t)
	ctx := context.Background()
	for _, loc := range []string{dir, filepath.Join(dir, "_metadata"), "file://" + filepath.ToSlash(dir) + "/"} {
		s, err := savepoint.Open(ctx, loc)
		require.NoError(t, err, loc)
		sum, err := s.Summarize(ctx)
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.Equal(t, "CHECKPOINT", sum.Kind)
		var counts *savepoint.OperatorSummary
		for i := range sum.Operators {
			if sum.Operators[i].UID == savepointtest.CountUID {
				counts = &sum.Operators[i]
			}
		}
		require.NotNil(t, counts, "operators %+v", sum.Operators)
		require.Equal(t, 2, counts.Parallelism)
		require.Positive(t, counts.MaxParallelism)
		var ks savepoint.KeyedStateSummary
		for _, k := range counts.KeyedStates {
			if k.Name == savepointtest.CountState {
				ks = k
			}
		}
		require.Equal(t, savepointtest.CountState, ks.Name, "%+v", counts.KeyedStates)
		require.Equal(t, "value<string,int64>", ks.Type)
		require.NotNil(t, ks.Schema)
		require.Equal(t, "string", ks.Schema.Key.Kind)
		require.NotNil(t, ks.Keys)
		require.Equal(t, int64(savepointtest.Keys), *ks.Keys)
		require.Positive(t, ks.Bytes)

		// The source keeps its splits as operator state.
		found := false
		for _, op := range sum.Operators {
			for _, l := range op.OperatorStates {
				if l.Name == "_source_splits" {
					found = true
					require.Equal(t, 2, l.Elements, "one generator split per subtask")
				}
			}
		}
		require.True(t, found, "source splits in %+v", sum.Operators)
	}
}

// Dumping the count state gives every key with its exact final count.
func TestDumpCounts(t *testing.T) {
	dir := checkpointDir(t)
	ctx := context.Background()
	s, err := savepoint.Open(ctx, dir)
	require.NoError(t, err)
	defer s.Close()
	var out bytes.Buffer
	require.NoError(t, s.Dump(ctx, savepointtest.CountUID, savepointtest.CountState, &out))
	got := map[string]int64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var line struct {
			KeyGroup *int   `json:"key_group"`
			Key      string `json:"key"`
			Value    int64  `json:"value"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.NotNil(t, line.KeyGroup)
		_, dup := got[line.Key]
		require.False(t, dup, "key %s twice", line.Key)
		got[line.Key] = line.Value
	}
	want := map[string]int64{}
	for i := range int64(savepointtest.Records) {
		want[savepointtest.Key(i)]++
	}
	require.Equal(t, want, got)

	// Operator state: one line per element.
	out.Reset()
	srcUID := ""
	for _, op := range s.Metadata.Operators {
		if op.UID != savepointtest.CountUID && len(op.Subtasks) > 0 && len(op.Subtasks[0].Operator) > 0 {
			srcUID = op.UID
		}
	}
	require.NotEmpty(t, srcUID)
	require.NoError(t, s.Dump(ctx, srcUID, "_source_splits", &out))
	require.Equal(t, 2, bytes.Count(out.Bytes(), []byte("\n")), out.String())
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, err := savepoint.Open(ctx, filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, savepoint.ErrNotFound)

	_, err = savepoint.Open(ctx, t.TempDir())
	require.ErrorIs(t, err, savepoint.ErrNotSnapshot)

	corrupt := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(corrupt, "_metadata"), []byte("STROMCKP garbage"), 0o644))
	_, err = savepoint.Open(ctx, corrupt)
	require.ErrorIs(t, err, checkpoint.ErrCorruptMetadata)

	s, err := savepoint.Open(ctx, checkpointDir(t))
	require.NoError(t, err)
	defer s.Close()
	err = s.Dump(ctx, "nope", "count", &bytes.Buffer{})
	require.ErrorIs(t, err, savepoint.ErrUnknownOperator)
	require.ErrorContains(t, err, savepointtest.CountUID, "lists the operators")
	err = s.Dump(ctx, savepointtest.CountUID, "nope", &bytes.Buffer{})
	require.ErrorIs(t, err, savepoint.ErrUnknownState)
	require.ErrorContains(t, err, "states: _timers, count")
}

// A state file that does not match its checksum is reported, naming it.
func TestCorruptStateFile(t *testing.T) {
	src := fullCheckpointDir(t)
	dir := filepath.Join(t.TempDir(), "job", "chk-1")
	require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
	keyed := filepath.Join(dir, savepointtest.CountUID, "0-keyed")
	data, err := os.ReadFile(keyed)
	require.NoError(t, err)
	data[len(data)-8] ^= 0xff
	require.NoError(t, os.WriteFile(keyed, data, 0o644))
	ctx := context.Background()
	s, err := savepoint.Open(ctx, dir)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Summarize(ctx)
	require.ErrorContains(t, err, "keyed state of operator counts subtask 0")
	require.ErrorContains(t, err, "checksum mismatch")
}

// A savepoint's handles are relative to its own directory (the layout
// savepoints are written in, so they can be moved): made here from the
// checkpoint by rewriting its metadata.
func TestSavepointLayout(t *testing.T) {
	src := fullCheckpointDir(t)
	dir := filepath.Join(t.TempDir(), "my-savepoint")
	require.NoError(t, os.CopyFS(dir, os.DirFS(src)))
	data, err := os.ReadFile(filepath.Join(dir, "_metadata"))
	require.NoError(t, err)
	md, err := checkpoint.DecodeMetadata("_metadata", data)
	require.NoError(t, err)
	prefix := checkpoint.CheckpointDir(md.JobID, md.Kind, md.ID)
	md.Kind = checkpoint.KindSavepoint
	for i := range md.Operators {
		for j := range md.Operators[i].Subtasks {
			st := &md.Operators[i].Subtasks[j]
			for _, hs := range [][]checkpoint.StateHandle{st.Keyed, st.Operator} {
				for k := range hs {
					hs[k].Path = strings.TrimPrefix(hs[k].Path, prefix)
				}
			}
		}
	}
	data, err = checkpoint.EncodeMetadata(md)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "_metadata"), data, 0o644))

	ctx := context.Background()
	s, err := savepoint.Open(ctx, dir)
	require.NoError(t, err)
	defer s.Close()
	sum, err := s.Summarize(ctx)
	require.NoError(t, err)
	require.Equal(t, "SAVEPOINT", sum.Kind)
	var out bytes.Buffer
	require.NoError(t, s.Dump(ctx, savepointtest.CountUID, savepointtest.CountState, &out))
	require.Equal(t, savepointtest.Keys, bytes.Count(out.Bytes(), []byte("\n")))
}

// Every retained checkpoint of the counting job, incremental chains (a
// base and deltas of the count state's key groups) among them, reads as
// what a restore would see: each key once, as many as the summary counts.
func TestInspectIncrementalChains(t *testing.T) {
	dir := checkpointDir(t)
	jobDir := filepath.Dir(dir)
	entries, err := os.ReadDir(jobDir)
	require.NoError(t, err)
	ctx := context.Background()
	chains := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "chk-") {
			continue
		}
		s, err := savepoint.Open(ctx, filepath.Join(jobDir, e.Name()))
		require.NoError(t, err)
		op, err := s.Operator(savepointtest.CountUID)
		require.NoError(t, err)
		for _, st := range op.Subtasks {
			if len(st.Keyed) > 1 {
				chains++
				for _, h := range st.Keyed {
					require.True(t, h.Shared, "a chain's files are shared")
				}
			}
		}
		sum, err := s.Summarize(ctx)
		require.NoError(t, err)
		var keys *int64
		for _, o := range sum.Operators {
			for _, ks := range o.KeyedStates {
				if o.UID == savepointtest.CountUID && ks.Name == savepointtest.CountState {
					keys = ks.Keys
				}
			}
		}
		var out bytes.Buffer
		require.NoError(t, s.Dump(ctx, savepointtest.CountUID, savepointtest.CountState, &out))
		require.NoError(t, s.Close())
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		seen := map[string]bool{}
		for _, l := range lines {
			var entry struct{ Key string }
			require.NoError(t, json.Unmarshal([]byte(l), &entry), l)
			require.False(t, seen[entry.Key], "%s: key %s twice", e.Name(), entry.Key)
			seen[entry.Key] = true
		}
		require.NotNil(t, keys, e.Name())
		require.Equal(t, int(*keys), len(seen), e.Name())
	}
	require.Positive(t, chains, "some retained checkpoint's keyed state is a chain of files")
}
