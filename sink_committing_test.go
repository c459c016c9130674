package strom_test

// Tests of the two-phase-commit sink operator through real jobs and the
// real task seam: snapshots are taken with Task.TriggerSnapshot, as a
// checkpoint's barrier would, notifications delivered with
// Task.NotifyCheckpointComplete / NotifyCheckpointAborted, and crashes are
// a cancelled job followed by a job restored from its snapshot. The fake
// writer hands back one committable per record, named by job, subtask,
// checkpoint and record, so a record written twice (replayed after a
// restore) would show up under two names, and a committable committed
// twice would show in the committer's counts.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
)

// chanSource reads the records sent on ch (shared by all its readers)
// until ch is closed. Its splits hold no position: a restored job reads
// what the test sends it.
type chanSource struct{ ch chan int }

type chanSplit struct{ id string }

func (s chanSplit) SplitID() string { return s.id }

func (s chanSource) Splits(p int) ([]strom.Split, error) {
	out := make([]strom.Split, p)
	for i := range out {
		out[i] = chanSplit{fmt.Sprint(i)}
	}
	return out, nil
}

func (s chanSource) Bounded() bool                              { return false }
func (s chanSource) EncodeSplit(sp strom.Split) ([]byte, error) { return []byte(sp.SplitID()), nil }
func (s chanSource) DecodeSplit(b []byte) (strom.Split, error)  { return chanSplit{string(b)}, nil }
func (r *chanReader) Snapshot() ([]strom.Split, error)          { return r.splits, nil }
func (r *chanReader) Close() error                              { return nil }
func (s chanSource) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[int], error) {
	return &chanReader{ch: s.ch, splits: splits}, nil
}

type chanReader struct {
	ch     chan int
	splits []strom.Split
}

func (r *chanReader) Read(out strom.SourceOutput[int]) (strom.ReadStatus, error) {
	for range 64 {
		select {
		case v, ok := <-r.ch:
			if !ok {
				return strom.ReadStatus{Done: true}, nil
			}
			out.Collect(v)
		default:
			return strom.ReadStatus{WakeAt: time.Now().Add(time.Millisecond)}, nil
		}
	}
	return strom.ReadStatus{}, nil
}

// fakeCommittable is one record's write, named apart from every other
// write of any job.
type fakeCommittable struct {
	ID    string
	Value int
}

// fakeStore is the "external system": committed writes, how often each
// was committed, and an optional failure injected into a Commit.
type fakeStore struct {
	mu        sync.Mutex
	committed map[string]int // ID → value
	commits   map[string]int // ID → Commit calls that applied it
	calls     int
	// failNext makes the next Commit apply half of its committables and
	// then fail.
	failNext bool
	// onCommit, if set, runs at the start of every Commit, under mu.
	onCommit func(*fakeStore, []fakeCommittable)
}

func newFakeStore() *fakeStore {
	return &fakeStore{committed: map[string]int{}, commits: map[string]int{}}
}

func (s *fakeStore) Commit(_ context.Context, cs []fakeCommittable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.onCommit != nil {
		s.onCommit(s, cs)
	}
	n := len(cs)
	fail := s.failNext
	if fail {
		s.failNext = false
		n = len(cs) / 2
	}
	for _, c := range cs[:n] {
		if _, ok := s.committed[c.ID]; ok {
			continue // idempotent: already committed
		}
		s.committed[c.ID] = c.Value
		s.commits[c.ID]++
	}
	if fail {
		return errors.New("injected commit failure")
	}
	return nil
}

// values are the committed records, sorted; each must appear once.
func (s *fakeStore) values() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, v := range s.committed {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (s *fakeStore) requireCommittedOnce(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range s.commits {
		require.Equal(t, 1, n, "committable %s applied %d times", id, n)
	}
}

// fakeWriter keeps the records since the last pre-commit as its open
// transaction.
type fakeWriter struct {
	job     string
	subtask int
	open    []int
	seq     int
}

func (w *fakeWriter) Write(v int, _ int64) error { w.open = append(w.open, v); return nil }
func (w *fakeWriter) Flush() error               { return nil }
func (w *fakeWriter) Close() error               { return nil }

func (w *fakeWriter) PrepareCommit(id int64) ([]fakeCommittable, error) {
	var out []fakeCommittable
	for _, v := range w.open {
		w.seq++
		out = append(out, fakeCommittable{ID: fmt.Sprintf("%s/%d/cp%d/%d", w.job, w.subtask, id, w.seq), Value: v})
	}
	w.open = nil
	return out, nil
}

// fakeSink builds a job chanSource → two-phase-commit sink (UID "sink")
// at parallelism p, storing committables with c (nil: the default).
func fakeSink(p int, job string, store *fakeStore, ch chan int, c ...codec.Codec[fakeCommittable]) *strom.Environment {
	var cc codec.Codec[fakeCommittable]
	if len(c) > 0 {
		cc = c[0]
	}
	env := strom.NewEnvironment().SetParallelism(p)
	src := strom.FromSource[int](env, chanSource{ch}, "chan").UID("src")
	strom.SinkToCommitting(src, "2pc",
		func(c strom.SinkContext) (strom.CommittingSinkWriter[int, fakeCommittable], error) {
			return &fakeWriter{job: job, subtask: c.Subtask}, nil
		},
		func(strom.SinkContext) (strom.Committer[fakeCommittable], error) { return store, nil },
		cc).UID("sink")
	return env
}

func send(ch chan int, from, to int) {
	for v := from; v < to; v++ {
		ch <- v
	}
}

// tasksOf waits until n tasks of j are deployed.
func (j *seamJob) tasksOf(n int) []*runtime.Task {
	j.t.Helper()
	var tasks []*runtime.Task
	require.Eventually(j.t, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		tasks = slices.Clone(j.tasks)
		return len(tasks) == n
	}, 10*time.Second, time.Millisecond)
	return tasks
}

// notify delivers checkpoint id's completion (or abort) to every task.
func (j *seamJob) notify(id int64, n int, complete bool) {
	j.t.Helper()
	for _, task := range j.tasksOf(n) {
		if complete {
			require.NoError(j.t, task.NotifyCheckpointComplete(context.Background(), id))
		} else {
			require.NoError(j.t, task.NotifyCheckpointAborted(context.Background(), id))
		}
	}
}

func waitValues(t *testing.T, s *fakeStore, want []int) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.Equal(s.values(), want) }, 10*time.Second, time.Millisecond,
		"committed %v", s.values())
}

// Without checkpoints, a bounded job commits at the end of its input.
func TestCommittingSinkCommitsAtEndWithoutCheckpoints(t *testing.T) {
	store := newFakeStore()
	ch := make(chan int, 100)
	send(ch, 0, 100)
	close(ch)
	env := fakeSink(2, "j1", store, ch)
	_, err := env.Execute(context.Background(), t.Name())
	require.NoError(t, err)
	require.Equal(t, rangeSlice(100), store.values())
	store.requireCommittedOnce(t)
}

// Checkpoint 1's notification is lost; checkpoint 2's commits both.
func TestCommittingSinkLostNotification(t *testing.T) {
	store := newFakeStore()
	ch := make(chan int)
	j := startSeamJob(t, fakeSink(2, "j1", store, ch), nil)
	send(ch, 0, 10)
	waitRecordsIn(t, j, "sink", 10)
	_, err := j.snapshot(1, 2)
	require.NoError(t, err)
	send(ch, 10, 20)
	waitRecordsIn(t, j, "sink", 20)
	_, err = j.snapshot(2, 2)
	require.NoError(t, err)
	send(ch, 20, 30) // after checkpoint 2: never committed
	waitRecordsIn(t, j, "sink", 30)
	require.Empty(t, store.values(), "nothing is visible before a notification")
	j.notify(2, 2, true)
	waitValues(t, store, rangeSlice(20))
	j.notify(1, 2, true) // late: a no-op
	j.cancel()
	require.Equal(t, rangeSlice(20), store.values())
	store.requireCommittedOnce(t)
}

// An aborted checkpoint's committables wait for the next complete one.
func TestCommittingSinkAbortKeepsCommittables(t *testing.T) {
	store := newFakeStore()
	ch := make(chan int)
	j := startSeamJob(t, fakeSink(1, "j1", store, ch), nil)
	send(ch, 0, 10)
	waitRecordsIn(t, j, "sink", 10)
	_, err := j.snapshot(1, 1)
	require.NoError(t, err)
	j.notify(1, 1, false)
	send(ch, 10, 20)
	waitRecordsIn(t, j, "sink", 20)
	_, err = j.snapshot(2, 1)
	require.NoError(t, err)
	require.Empty(t, store.values())
	j.notify(2, 1, true)
	waitValues(t, store, rangeSlice(20))
	j.cancel()
	store.requireCommittedOnce(t)
}

// A crash after the checkpoint completed but before its commit: the job
// restored from that checkpoint commits what it holds, once, even at
// another parallelism; had the old job committed, the restore's commit
// is a no-op.
func TestCommittingSinkCommitsRestoredCommittables(t *testing.T) {
	for _, tc := range []struct {
		name          string
		oldP, newP    int
		notifiedFirst bool
		codec         codec.Codec[fakeCommittable]
	}{
		{"crash before commit", 2, 2, false, nil},
		{"rescale down", 2, 1, false, nil},
		{"rescale up, own codec", 2, 3, false, codec.Of[fakeCommittable]()},
		{"committed before crash", 2, 2, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newFakeStore()
			ch := make(chan int)
			j := startSeamJob(t, fakeSink(tc.oldP, "j1", store, ch, tc.codec), nil)
			send(ch, 0, 50)
			waitRecordsIn(t, j, "sink", 50)
			snaps, err := j.snapshot(1, tc.oldP)
			require.NoError(t, err)
			send(ch, 50, 60) // after the checkpoint: lost with the job, replayed by the source
			waitRecordsIn(t, j, "sink", 60)
			if tc.notifiedFirst {
				j.notify(1, tc.oldP, true)
				waitValues(t, store, rangeSlice(50))
			}
			j.cancel()

			ch2 := make(chan int)
			j2 := startSeamJob(t, fakeSink(tc.newP, "j2", store, ch2, tc.codec), restoreAt(t, snaps, map[string]int{"sink": tc.newP}))
			j2.tasksOf(tc.newP)
			// Restored committables are committed before any record.
			waitValues(t, store, rangeSlice(50))
			send(ch2, 50, 60) // the replay
			waitRecordsIn(t, j2, "sink", 10)
			_, err = j2.snapshot(2, tc.newP)
			require.NoError(t, err)
			j2.notify(2, tc.newP, true)
			waitValues(t, store, rangeSlice(60))
			j2.cancel()
			store.requireCommittedOnce(t)
		})
	}
}

// A commit that fails half way fails the job; the restored job commits
// the rest, without committing the first half twice.
func TestCommittingSinkCommitFailureRetried(t *testing.T) {
	store := newFakeStore()
	ch := make(chan int)
	j := startSeamJob(t, fakeSink(1, "j1", store, ch), nil)
	send(ch, 0, 20)
	waitRecordsIn(t, j, "sink", 20)
	snaps, err := j.snapshot(1, 1)
	require.NoError(t, err)
	store.mu.Lock()
	store.failNext = true
	store.mu.Unlock()
	j.notify(1, 1, true)
	_, err = j.client.Wait(context.Background())
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "injected commit failure")
	require.Len(t, store.values(), 10, "half was committed")

	j2 := startSeamJob(t, fakeSink(1, "j2", store, make(chan int)), restoreAt(t, snaps, map[string]int{"sink": 1}))
	j2.tasksOf(1)
	waitValues(t, store, rangeSlice(20))
	j2.cancel()
	store.requireCommittedOnce(t)
}

// A committable type the default codec would drop data of is refused.
func TestCommittingSinkRefusesLossyCommittables(t *testing.T) {
	type lossy struct {
		Path   string
		secret int
	}
	env := strom.NewEnvironment()
	strom.SinkToCommitting(strom.FromElements(env, 1),
		"lossy", func(strom.SinkContext) (strom.CommittingSinkWriter[int, lossy], error) { return nil, nil },
		func(strom.SinkContext) (strom.Committer[lossy], error) { return nil, nil }, nil)
	_, err := env.Execute(context.Background(), t.Name())
	require.ErrorContains(t, err, "secret")
	_ = lossy{secret: 1}.secret
}
