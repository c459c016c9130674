package strom_test

// End-to-end tests of the state seam through real jobs in the embedded
// cluster, without checkpoints (checkpoint_test.go has those): the tests
// drive snapshots the way a checkpoint trigger reaches a task: a mailbox action on the task
// goroutine (runtime.Task.TriggerSnapshot), between two batches. The test
// hook strom.SetStateSeam (export_test.go) hands the test every task before
// it runs and starts the job from a runtime.JobRestore computed by
// runtime.Redistribute from the snapshots of an earlier job. Sources are gated: they read their
// input, then wait (without ending) until the test releases them, so a
// snapshot sees a quiet job with every record processed.

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

// gatedSource reads a slice like FromSlice (with its split codec), but a
// reader that has read pauseAfter batches, or all of its splits, waits
// until gate is closed (a nil gate never holds it).
type gatedSource[T any] struct {
	strom.Source[T]
	gate       <-chan struct{}
	pauseAfter int // 0: read everything before waiting
}

func gated[T any](data []T, gate <-chan struct{}, pauseAfter int) gatedSource[T] {
	return gatedSource[T]{Source: strom.SliceSource(data), gate: gate, pauseAfter: pauseAfter}
}

func (s gatedSource[T]) EncodeSplit(sp strom.Split) ([]byte, error) {
	return s.Source.(strom.SplitCodec).EncodeSplit(sp)
}

func (s gatedSource[T]) DecodeSplit(b []byte) (strom.Split, error) {
	return s.Source.(strom.SplitCodec).DecodeSplit(b)
}

func (s gatedSource[T]) NewReader(ctx strom.SourceContext, splits []strom.Split) (strom.SourceReader[T], error) {
	r, err := s.Source.NewReader(ctx, splits)
	return &gatedReader[T]{SourceReader: r, src: s}, err
}

type gatedReader[T any] struct {
	strom.SourceReader[T]
	src     gatedSource[T]
	batches int
}

func (r *gatedReader[T]) held() bool {
	if r.src.gate == nil {
		return false
	}
	select {
	case <-r.src.gate:
		return false
	default:
		return true
	}
}

func (r *gatedReader[T]) Read(out strom.SourceOutput[T]) (strom.ReadStatus, error) {
	wait := strom.ReadStatus{WakeAt: time.Now().Add(2 * time.Millisecond)}
	if r.src.pauseAfter > 0 && r.batches >= r.src.pauseAfter && r.held() {
		return wait, nil
	}
	st, err := r.SourceReader.Read(out)
	r.batches++
	if st.Done && r.held() {
		return wait, err
	}
	return st, err
}

// seamJob is a job started with the test's state seam.
type seamJob struct {
	t      *testing.T
	client *strom.JobClient
	mu     sync.Mutex
	tasks  []*runtime.Task
}

func startSeamJob(t *testing.T, env *strom.Environment, restore runtime.JobRestore) *seamJob {
	t.Helper()
	j := &seamJob{t: t}
	strom.SetStateSeam(env, restore, func(task *runtime.Task) {
		j.mu.Lock()
		j.tasks = append(j.tasks, task)
		j.mu.Unlock()
	})
	c, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	j.client = c
	t.Cleanup(c.Close)
	return j
}

// snapshot waits until n tasks are deployed and snapshots each.
func (j *seamJob) snapshot(id int64, n int) ([]runtime.TaskSnapshot, error) {
	j.t.Helper()
	var tasks []*runtime.Task
	require.Eventually(j.t, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		tasks = slices.Clone(j.tasks)
		return len(tasks) == n
	}, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var snaps []runtime.TaskSnapshot
	for _, task := range tasks {
		s, err := task.TriggerSnapshot(ctx, id)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, s)
	}
	return snaps, nil
}

// cancel stops the job, which is held by its gated sources.
func (j *seamJob) cancel() {
	j.client.Cancel()
	_, err := j.client.Wait(context.Background())
	require.ErrorIs(j.t, err, strom.ErrJobCanceled)
}

// waitFor waits until l holds n records.
func waitFor[T any](t *testing.T, l *liveSink[T], n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(l.values()) >= n }, 10*time.Second, time.Millisecond)
}

// waitRecordsIn waits until operator uid has received n records over all
// its subtasks (records that travel over the network are not processed
// when the sender's sink has seen them).
func waitRecordsIn(t *testing.T, j *seamJob, uid string, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, m := range j.client.Metrics() {
			if m.UID == uid && m.RecordsIn == n {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
}

// restoreAt is the restore of the operators in p (UID → new parallelism)
// from snaps; other operators start empty.
func restoreAt(t *testing.T, snaps []runtime.TaskSnapshot, p map[string]int) runtime.JobRestore {
	t.Helper()
	r, err := runtime.Redistribute(snaps, func(uid string) int { return p[uid] })
	require.NoError(t, err)
	for uid := range r {
		if _, ok := p[uid]; !ok {
			delete(r, uid)
		}
	}
	return r
}

var (
	seenList  = state.OperatorListDescriptor[int]{Name: "seen"}
	seenUnion = state.UnionListDescriptor[int]{Name: "seen-everywhere"}
)

// restoredState records what each subtask of a listFn found restored.
type restoredState struct {
	mu          sync.Mutex
	list, union map[int][]int // subtask → elements
}

// listFn keeps every record it sees in list state, and in union state its
// share of all records (those ≡ its subtask index mod its parallelism),
// as union state is used: every subtask reads all, keeps its part.
type listFn struct {
	rec  *restoredState
	l, u state.ListState[int]
}

func (f *listFn) Open(ctx *strom.ProcessContext[int]) error {
	var err error
	if f.l, err = state.GetOperatorList(ctx, seenList); err != nil {
		return err
	}
	if f.u, err = state.GetUnionList(ctx, seenUnion); err != nil {
		return err
	}
	f.rec.mu.Lock()
	f.rec.list[ctx.SubtaskIndex()] = slices.Clone(f.l.Get())
	f.rec.union[ctx.SubtaskIndex()] = slices.Clone(f.u.Get())
	f.rec.mu.Unlock()
	var mine []int
	for _, v := range f.u.Get() {
		if v%ctx.NumSubtasks() == ctx.SubtaskIndex() {
			mine = append(mine, v)
		}
	}
	f.u.Update(mine)
	return nil
}

func (f *listFn) ProcessElement(ctx *strom.ProcessContext[int], v int) error {
	f.l.Add(v)
	if v%ctx.NumSubtasks() == ctx.SubtaskIndex() {
		f.u.Add(v)
	}
	ctx.Collect(v)
	return nil
}

// TestOperatorStateRescale runs a job at parallelism 1 that puts 100
// records into list and union state, snapshots it, restores it at 3,
// snapshots again and restores at 2: every list element must be restored
// exactly once, every union element in every subtask.
func TestOperatorStateRescale(t *testing.T) {
	gate := make(chan struct{}) // never opened: jobs end by cancellation
	run := func(p int, data []int, restore runtime.JobRestore) (*restoredState, []runtime.TaskSnapshot) {
		rec := &restoredState{list: map[int][]int{}, union: map[int][]int{}}
		out := &liveSink[int]{}
		env := strom.NewEnvironment().SetParallelism(p)
		src := strom.FromSource[int](env, gated(data, gate, 0), "gated").UID("src")
		strom.SinkFunc(strom.Process(src, func() strom.ProcessFunction[int, int] { return &listFn{rec: rec} }).UID("lists"), out.add)
		j := startSeamJob(t, env, restore)
		waitFor(t, out, len(data))
		snaps, err := j.snapshot(1, p)
		require.NoError(t, err)
		j.cancel()
		return rec, snaps
	}

	rec, snaps := run(1, rangeSlice(100), nil)
	require.Equal(t, map[int][]int{0: nil}, rec.list)
	rec, snaps = run(3, nil, restoreAt(t, snaps, map[string]int{"src": 3, "lists": 3}))
	checkRestored(t, rec, 3, rangeSlice(100))
	// Round robin: subtask 1 of 3 got elements 1, 4, 7, ...
	require.Equal(t, []int{1, 4, 7}, rec.list[1][:3])
	rec, _ = run(2, nil, restoreAt(t, snaps, map[string]int{"src": 2, "lists": 2}))
	checkRestored(t, rec, 2, rangeSlice(100))
}

func checkRestored(t *testing.T, rec *restoredState, p int, all []int) {
	t.Helper()
	require.Len(t, rec.list, p)
	var got []int
	for i := range p {
		got = append(got, rec.list[i]...)
		require.ElementsMatch(t, all, rec.union[i], "union state of subtask %d", i)
	}
	require.ElementsMatch(t, all, got, "list state, over all subtasks")
}

// TestSourcePositionsRescale snapshots slice readers part-way (two
// subtasks, each paused after two batches) and restores the source at
// parallelism 3: the restored readers resume at their positions, so every
// record is read exactly once over both runs.
func TestSourcePositionsRescale(t *testing.T) {
	data := rangeSlice(5000)
	out := &liveSink[int]{}
	env := strom.NewEnvironment().SetParallelism(2)
	strom.SinkFunc(strom.FromSource[int](env, gated(data, make(chan struct{}), 2), "gated").UID("src"), out.add)
	j := startSeamJob(t, env, nil)
	waitFor(t, out, 4*strom.ReadBatch)
	snaps, err := j.snapshot(1, 2)
	require.NoError(t, err)
	j.cancel()
	first := out.values()
	require.Len(t, first, 4*strom.ReadBatch)

	out2 := &liveSink[int]{}
	env = strom.NewEnvironment().SetParallelism(3)
	strom.SinkFunc(strom.FromSource[int](env, gated(data, nil, 0), "gated").UID("src"), out2.add)
	// Not gated: this run ends by itself, once the readers are through.
	j = startSeamJob(t, env, restoreAt(t, snaps, map[string]int{"src": 3}))
	_, err = j.client.Wait(context.Background())
	require.NoError(t, err)
	require.Len(t, out2.values(), len(data)-len(first))
	require.ElementsMatch(t, data, append(first, out2.values()...))
}

var seamCountDesc = state.ValueDescriptor[int64]{Name: "count"}

// countFn counts records per key and reports each key's count on an
// event-time timer at the key's second 100 ms, so the timers are
// pending while the job runs (no watermark before the end of input).
type countFn struct{}

func (countFn) ProcessElement(ctx *strom.KeyedContext[string, string], v seamRec) error {
	c, err := state.GetValue(ctx, seamCountDesc)
	if err != nil {
		return err
	}
	n, _ := c.Value()
	// One timer per key (registering it again is a no-op), whichever of
	// the key's records, which come from two source subtasks, is first.
	ctx.RegisterEventTimeTimer(v.TS - v.TS%1000 + 100)
	c.Update(n + 1)
	return nil
}

func (countFn) OnTimer(ctx *strom.KeyedContext[string, string], ts int64) error {
	c, err := state.GetValue(ctx, seamCountDesc)
	if err != nil {
		return err
	}
	n, _ := c.Value()
	ctx.Collect(fmt.Sprintf("%s=%d@%d", ctx.Key(), n, ts))
	return nil
}

type seamRec struct {
	Key string
	TS  int64
}

// TestKeyedStateAndTimersThroughSeam snapshots a keyed function's counts
// and pending timers at parallelism 2 and restores them at 3 in a job
// whose source is empty: the restored timers fire at the end of input and
// read the restored counts.
func TestKeyedStateAndTimersThroughSeam(t *testing.T) {
	var recs []seamRec
	want := map[string]bool{}
	for k := range 10 {
		key := fmt.Sprintf("k%d", k)
		for i := range k + 1 {
			recs = append(recs, seamRec{Key: key, TS: int64(1000*k + i)})
		}
		want[fmt.Sprintf("%s=%d@%d", key, k+1, 1000*k+100)] = true
	}
	build := func(env *strom.Environment, src strom.Stream[seamRec], out *liveSink[string]) {
		strom.SinkFunc(strom.KeyedProcess(strom.KeyBy(src, func(r seamRec) string { return r.Key }), func() strom.KeyedProcessFunction[string, seamRec, string] { return countFn{} }).
			UID("counts"), out.add)
	}
	processed := &liveSink[seamRec]{}
	env := strom.NewEnvironment().SetParallelism(2)
	src := strom.FromSource[seamRec](env, gated(recs, make(chan struct{}), 0), "gated").UID("src")
	strom.SinkFunc(src, processed.add)
	out := &liveSink[string]{}
	build(env, src, out)
	j := startSeamJob(t, env, nil)
	waitFor(t, processed, len(recs))
	// The keyed function's records travel over the network: wait until it
	// has counted them all, through its metrics.
	waitRecordsIn(t, j, "counts", int64(len(recs)))
	snaps, err := j.snapshot(1, 4)
	require.NoError(t, err)
	j.cancel()
	require.Empty(t, out.values(), "no timer fires before the end of input")

	env = strom.NewEnvironment().SetParallelism(3)
	out = &liveSink[string]{}
	build(env, strom.FromElements[seamRec](env), out)
	j = startSeamJob(t, env, restoreAt(t, snaps, map[string]int{"counts": 3}))
	_, err = j.client.Wait(context.Background())
	require.NoError(t, err)
	got := map[string]bool{}
	for _, s := range out.values() {
		got[s] = true
	}
	require.Equal(t, want, got)
}

// sumFn pre-aggregates in a field, as Nexmark q5 and q7 do; its
// PrepareSnapshot hook stores the partial sum in operator state and
// emits it downstream.
type sumFn struct {
	sum     int64
	partial state.ListState[int64]
}

func (f *sumFn) Open(ctx *strom.ProcessContext[int64]) (err error) {
	f.partial, err = state.GetOperatorList(ctx, state.OperatorListDescriptor[int64]{Name: "partial"})
	return err
}

func (f *sumFn) ProcessElement(_ *strom.ProcessContext[int64], v int) error {
	f.sum += int64(v)
	return nil
}

func (f *sumFn) PrepareSnapshot(ctx *strom.ProcessContext[int64]) error {
	f.partial.Update([]int64{f.sum})
	ctx.Collect(-f.sum)
	return nil
}

// countingWriter counts what it writes and stores the count in operator
// state in its own PrepareSnapshot hook.
type countingWriter struct {
	n     int64
	count state.ListState[int64]
	out   *liveSink[int64]
}

func (w *countingWriter) Write(v int64, _ int64) error {
	w.n++
	return w.out.add(v)
}
func (w *countingWriter) Flush() error { return nil }
func (w *countingWriter) Close() error { return nil }
func (w *countingWriter) PrepareSnapshot(int64) error {
	w.count.Update([]int64{w.n})
	return nil
}

// TestPreSnapshotHooks: a Process function's hook runs before the
// snapshot — its flushed record reaches the chained sink, whose own hook
// then counts it — and what the hooks store is in the snapshot.
func TestPreSnapshotHooks(t *testing.T) {
	env := strom.NewEnvironment().SetParallelism(1)
	out := &liveSink[int64]{}
	src := strom.FromSource[int](env, gated(rangeSlice(11), make(chan struct{}), 0), "gated").UID("src")
	summed := strom.Process(src, func() strom.ProcessFunction[int, int64] { return &sumFn{} }).UID("sum")
	strom.SinkTo(summed, "counting", func(ctx strom.SinkContext) (strom.SinkWriter[int64], error) {
		l, err := state.GetOperatorList(ctx, state.OperatorListDescriptor[int64]{Name: "count"})
		return &countingWriter{count: l, out: out}, err
	}).UID("sink")
	j := startSeamJob(t, env, nil)
	// Nothing is emitted before the snapshot: wait for the source to read.
	waitRecordsIn(t, j, "sum", 11)
	snaps, err := j.snapshot(7, 1)
	require.NoError(t, err)
	j.cancel()
	require.Equal(t, []int64{-55}, out.values())
	require.Len(t, snaps, 1)
	require.EqualValues(t, 7, snaps[0].CheckpointID)
	lists := map[string][]statebackend.OperatorState{}
	for _, o := range snaps[0].Operators {
		lists[o.UID] = o.Operator
	}
	require.Equal(t, []int64{55}, decodeList[int64](t, lists["sum"], "partial"))
	require.Equal(t, []int64{1}, decodeList[int64](t, lists["sink"], "count"))
}

func decodeList[T any](t *testing.T, lists []statebackend.OperatorState, name string) []T {
	t.Helper()
	for _, l := range lists {
		if l.Name == name {
			var out []T
			for _, b := range l.Elements {
				v, _, err := codec.Of[T]().Decode(b)
				require.NoError(t, err)
				out = append(out, v)
			}
			return out
		}
	}
	t.Fatalf("no operator state %q in %v", name, lists)
	return nil
}

// TestFromIteratorSnapshotFails: an iterator cannot be replayed, so a
// snapshot of a job reading one fails, naming the source; the job goes on.
func TestFromIteratorSnapshotFails(t *testing.T) {
	env := strom.NewEnvironment().SetParallelism(1)
	var endless iter.Seq[int] = func(yield func(int) bool) {
		for i := 0; yield(i); i++ {
		}
	}
	strom.Discard(strom.FromIterator(env, endless))
	j := startSeamJob(t, env, nil)
	_, err := j.snapshot(1, 1)
	require.ErrorContains(t, err, `operator "Iterator Source": source "Iterator Source" cannot be snapshotted: FromIterator reads an iterator, which cannot be replayed`)
	require.Equal(t, "RUNNING", j.client.Status())
	j.cancel()
}
