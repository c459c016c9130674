package strom_test

// Failures injected at the points of a checkpoint's life that a user
// function cannot reach (issue 11.11): while a snapshot is taken, while its
// files are uploaded, while a restore reads them, in the middle of a sink's
// commit, and a lost notification. Each test guards against passing
// vacuously: the fault fired, a checkpoint completed before it, and the
// job restarted (or the next checkpoint committed) as the test says.

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/rpc"
)

// faultyStore is checkpoint storage that misbehaves as the test injects:
// a Faulty over a fresh mem:// store, reachable as its URL.
func faultyStore(t *testing.T) (string, *blob.Faulty) {
	t.Helper()
	memURL, _ := memStore(t)
	inner, err := blob.Open(context.Background(), memURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = inner.Close() })
	f := blob.NewFaulty(inner)
	name := memURL[len("mem://"):]
	t.Cleanup(blob.RegisterFaulty(name, f))
	return "faulty://" + name, f
}

// The upload of a keyed-state file fails after checkpoints completed: the
// checkpoint is declined, which with no tolerable failures fails the job
// over, and it restarts from the latest completed checkpoint with exact
// counts.
func TestFailureDuringUpload(t *testing.T) {
	url, f := faultyStore(t)
	// The 6th keyed-state file: checkpoint 3 at parallelism 2.
	f.Inject(blob.Fault{Op: blob.OpWrite, Match: blob.KeySuffix("-keyed"), Nth: 6})
	r, sink, err := runCounting(t, ckConfig(url), nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, f.Count(blob.OpWrite), 6, "the faulty write happened")
	require.GreaterOrEqual(t, r.Restarts, 1, "the failed upload failed the job over")
	require.Positive(t, r.RestoredCheckpoint)
	requireExactCounts(t, sink)
}

// The first restore cannot read a state file: the restarted tasks fail
// while deploying, the job restarts again, and the second restore reads
// the same checkpoint with exact counts.
func TestFailureDuringRestore(t *testing.T) {
	url, f := faultyStore(t)
	// State files are read only by restores.
	f.Inject(blob.Fault{Op: blob.OpRead, Match: blob.KeySuffix("-keyed"), Nth: 1})
	var failed atomic.Bool
	r, sink, err := runCounting(t, ckConfig(url), func(seen int) {
		if !failed.Load() && seen >= 300 && seen%10 == 0 && f.Count(blob.OpWrite) > 8 && failed.CompareAndSwap(false, true) {
			panic("injected failure after checkpoints")
		}
	})
	require.NoError(t, err)
	require.True(t, failed.Load())
	require.GreaterOrEqual(t, f.Count(blob.OpRead), 2, "a failed read and a successful one")
	require.GreaterOrEqual(t, r.Restarts, 2, "the failed restore failed the job again")
	require.Positive(t, r.RestoredCheckpoint)
	requireExactCounts(t, sink)
}

// snapshotFailingWriter is the counting job's sink, failing in its
// pre-snapshot hook once the failure is armed: by a panic (the task
// fails) or an error (the snapshot is declined).
type snapshotFailingWriter struct {
	sink  *lastCounts
	arm   func(id int64) bool
	panic bool
}

func (w *snapshotFailingWriter) Write(kc keyCount, _ int64) error { return w.sink.put(kc) }
func (w *snapshotFailingWriter) Flush() error                     { return nil }
func (w *snapshotFailingWriter) Close() error                     { return nil }
func (w *snapshotFailingWriter) PrepareSnapshot(id int64) error {
	if !w.arm(id) {
		return nil
	}
	if w.panic {
		panic("injected failure while taking a snapshot")
	}
	return errors.New("injected snapshot error")
}

// A task fails while taking a snapshot (its synchronous part), after an
// earlier checkpoint completed: by a panic, and by an error that declines
// the checkpoint (no tolerable failures: the job fails over).
func TestFailureDuringSnapshot(t *testing.T) {
	for _, panics := range []bool{true, false} {
		t.Run(map[bool]string{true: "panic", false: "error"}[panics], func(t *testing.T) {
			url, store := memStore(t)
			var fired atomic.Bool
			data := make([]int64, ckRecords)
			for i := range data {
				data[i] = int64(i % ckKeys)
			}
			env := strom.NewEnvironment(ckConfig(url))
			src := strom.FromSource(env, strom.SliceSource(data), "numbers")
			counts := strom.KeyedProcess(strom.KeyBy(src, func(v int64) int64 { return v }),
				func() strom.KeyedProcessFunction[int64, int64, keyCount] { return &ckCountFn{} })
			sink := &lastCounts{last: map[int64]int64{}, rewound: map[int64]int64{}}
			strom.SinkTo(counts, "fails in snapshot", func(strom.SinkContext) (strom.SinkWriter[keyCount], error) {
				return &snapshotFailingWriter{sink: sink, panic: panics, arm: func(int64) bool {
					_, id, _ := latestRetained(t, store)
					return id > 0 && fired.CompareAndSwap(false, true)
				}}, nil
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := env.Execute(ctx, t.Name())
			require.NoError(t, err)
			require.True(t, fired.Load(), "the snapshot failure was injected")
			require.GreaterOrEqual(t, r.Restarts, 1)
			require.Positive(t, r.RestoredCheckpoint)
			requireExactCounts(t, sink)
		})
	}
}

// committingJob runs numbers → (slow) map → two-phase-commit sink into
// store with real checkpoints, dropping the messages drop accepts.
func committingJob(t *testing.T, url string, n int, store *fakeStore, drop func(string, rpc.Message) bool) (*strom.JobResult, error) {
	t.Helper()
	data := make([]int, n)
	for i := range data {
		data[i] = i
	}
	env := strom.NewEnvironment(ckConfig(url))
	if drop != nil {
		strom.DropMessages(env, drop)
	}
	src := strom.FromSource(env, strom.SliceSource(data), "numbers")
	var seen atomic.Int64
	slow := strom.Map(src, func(v int) int {
		if seen.Add(1)%20 == 0 {
			time.Sleep(time.Millisecond)
		}
		return v
	})
	strom.SinkToCommitting(slow, "2pc",
		func(c strom.SinkContext) (strom.CommittingSinkWriter[int, fakeCommittable], error) {
			return &fakeWriter{job: "a" + itoa(int64(c.Attempt)), subtask: c.Subtask}, nil
		},
		func(strom.SinkContext) (strom.Committer[fakeCommittable], error) { return store, nil }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return env.Execute(ctx, t.Name())
}

// A sink's commit fails after applying half of what it commits: the task
// fails, the job restarts from the checkpoint, whose committables the
// restored sink commits again — the half already applied is not applied
// twice — and every record is committed exactly once.
func TestFailureDuringSinkCommit(t *testing.T) {
	url, _ := memStore(t)
	store := newFakeStore()
	var armed atomic.Bool
	store.onCommit = func(s *fakeStore, _ []fakeCommittable) {
		// Fail the first commit that has something already committed
		// before it: a checkpoint completed and its output is visible.
		if len(s.committed) > 0 && armed.CompareAndSwap(false, true) {
			s.failNext = true
		}
	}
	r, err := committingJob(t, url, ckRecords, store, nil)
	require.NoError(t, err)
	require.True(t, armed.Load(), "the commit failure was injected")
	require.GreaterOrEqual(t, r.Restarts, 1)
	require.Positive(t, r.RestoredCheckpoint)
	require.Equal(t, rangeSlice(ckRecords), store.values())
	store.requireCommittedOnce(t)
}

// The notification of one checkpoint never reaches the tasks: nothing of
// it is committed until the next checkpoint's notification, which commits
// both; every record is committed exactly once.
func TestLostCheckpointNotification(t *testing.T) {
	url, _ := memStore(t)
	store := newFakeStore()
	var dropped atomic.Int64
	var lost atomic.Int64 // the checkpoint whose notifications are lost
	// Whether one Commit call held committables of the lost checkpoint
	// and of the next: that notification committed both.
	var both atomic.Bool
	store.onCommit = func(_ *fakeStore, cs []fakeCommittable) {
		l := lost.Load()
		if l == 0 {
			return
		}
		var hasLost, hasNext bool
		for _, c := range cs {
			hasLost = hasLost || strings.Contains(c.ID, "/cp"+itoa(l)+"/")
			hasNext = hasNext || strings.Contains(c.ID, "/cp"+itoa(l+1)+"/")
		}
		if hasLost && hasNext {
			both.Store(true)
		}
	}
	r, err := committingJob(t, url, ckRecords, store, func(_ string, m rpc.Message) bool {
		n, ok := m.(rpc.NotifyCheckpointComplete)
		if !ok || n.CheckpointID < 2 {
			return false
		}
		lost.CompareAndSwap(0, n.CheckpointID)
		if n.CheckpointID != lost.Load() {
			return false
		}
		dropped.Add(1)
		return true
	})
	require.NoError(t, err)
	require.Positive(t, dropped.Load(), "a notification was lost")
	require.True(t, both.Load(), "the next checkpoint's notification committed the lost one's committables with its own")
	require.Equal(t, rangeSlice(ckRecords), store.values())
	store.requireCommittedOnce(t)
	require.Zero(t, r.Restarts, "a lost notification needs no restart")
}
