package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// The tests of barriers run real tasks over real channels. They make no
// assertion on timing: where they must know that a task has handled
// something, they ask the task itself with a mail (onTask), or wait for a
// later checkpoint, which a task takes only after everything before it.

// cpResult is one OnCheckpoint call.
type cpResult struct {
	task string
	id   int64
	snap runtime.TaskSnapshot
	err  error
}

// checkpoints collects the OnCheckpoint calls of several tasks.
type checkpoints struct {
	mu  sync.Mutex
	got []cpResult
}

func (c *checkpoints) hook(task string) func(int64, runtime.TaskSnapshot, error) {
	return func(id int64, snap runtime.TaskSnapshot, err error) {
		c.mu.Lock()
		c.got = append(c.got, cpResult{task, id, snap, err})
		c.mu.Unlock()
	}
}

func (c *checkpoints) all() []cpResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cpResult(nil), c.got...)
}

// wait returns the results once there are n.
func (c *checkpoints) wait(t *testing.T, n int) []cpResult {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.all()) >= n }, 30*time.Second, time.Millisecond,
		"waiting for %d checkpoint results, have %v", n, c.all())
	return c.all()
}

// stateOf is the state an operator of the test put in its snapshot.
func stateOf(t *testing.T, snap runtime.TaskSnapshot, op string) string {
	t.Helper()
	for _, os := range snap.Operators {
		if os.Name == op {
			return string(os.Keyed)
		}
	}
	t.Fatalf("no operator %q in the snapshot %+v", op, snap)
	return ""
}

func countOf(t *testing.T, snap runtime.TaskSnapshot, op string) int {
	t.Helper()
	n, err := strconv.Atoi(stateOf(t, snap, op))
	require.NoError(t, err)
	return n
}

// onTask runs fn on the task goroutine and waits for it.
func onTask(t *testing.T, task *runtime.Task, fn func()) {
	t.Helper()
	done := make(chan struct{})
	require.NoError(t, task.Mail(context.Background(), func() { fn(); close(done) }))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("mail did not run")
	}
}

// countSource emits 0, 1, 2, … up to limit, ten per step, then has nothing
// available (it never ends, so a test can trigger it at any point). Its
// state is its position: the number of records emitted.
type countSource struct {
	hooks
	out         runtime.Output[int]
	limit, next int
}

func (s *countSource) Step() runtime.SourceStep {
	for range 10 {
		if s.next >= s.limit {
			return runtime.SourceStep{Status: runtime.NothingAvailable}
		}
		s.out.Collect(s.next, int64(s.next))
		s.next++
	}
	return runtime.SourceStep{Status: runtime.More}
}

func (s *countSource) EndInput() {}

func (s *countSource) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: s.name, Name: s.name, Keyed: []byte(strconv.Itoa(s.next))}, nil
}

// countingMap counts the records it takes (its state). With an output it
// passes them on, holding up to three back until PrepareSnapshotPreBarrier
// (or Finish) emits them, like a pre-aggregating operator: so what it
// emits there must precede the barrier downstream.
type countingMap struct {
	hooks
	out   runtime.Output[int]
	n     int
	held  []int
	total atomic.Int64 // n, for the test goroutine
}

func (m *countingMap) ProcessElement(v int, _ int64) {
	m.n++
	m.total.Store(int64(m.n))
	if m.out == nil {
		return
	}
	m.held = append(m.held, v)
	if len(m.held) == 3 {
		m.flush()
	}
}

func (m *countingMap) flush() {
	for _, v := range m.held {
		m.out.Collect(v, int64(v))
	}
	m.held = m.held[:0]
}

func (m *countingMap) ProcessWatermark(int64)                {}
func (m *countingMap) ProcessIdle()                          {}
func (m *countingMap) PrepareSnapshotPreBarrier(int64) error { m.flush(); return nil }
func (m *countingMap) Finish() error                         { m.flush(); return nil }
func (m *countingMap) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: m.name, Name: m.name, Keyed: []byte(strconv.Itoa(m.n))}, nil
}

// source → map (2 subtasks, rebalanced) → sink (2 input channels), all real
// tasks: a checkpoint triggered at the source reaches every task once, and
// every snapshot holds exactly the records before the barrier: the map
// subtasks together and the sink counted as many records as the source had
// emitted, and the map's held-back records reached the sink before the
// barrier.
func TestCheckpointThroughPipeline(t *testing.T) {
	const limit = 20000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cps := &checkpoints{}
	var tasks []*runtime.Task

	mapNotify := []network.Notifier{network.NewNotifier(), network.NewNotifier()}
	sinkNotify := network.NewNotifier()
	toMap := []*network.Channel[int]{network.NewChannel[int](2, 8, mapNotify[0]), network.NewChannel[int](2, 8, mapNotify[1])}
	toSink := []*network.Channel[int]{network.NewChannel[int](2, 8, sinkNotify), network.NewChannel[int](2, 8, sinkNotify)}

	srcInfo := info(0, 1)
	srcInfo.VertexName = "Src"
	src := runtime.NewTask(srcInfo, network.NewNotifier(), nil, quiet)
	sw := runtime.NewWriter(ctx, runtime.Rebalance, toMap, nil, 128)
	src.Writers = []runtime.Flusher{sw}
	src.Chain = []runtime.ChainedOperator{{Name: "Src", Op: &countSource{hooks: hooks{name: "Src"}, out: sw, limit: limit}, Ctx: opCtx(srcInfo, "Src", src)}}
	src.OnCheckpoint = cps.hook("Src")
	tasks = append(tasks, src)

	maps := make([]*countingMap, 2)
	for i := range 2 {
		mi := info(i, 2)
		mi.VertexName = "Map"
		task := runtime.NewTask(mi, mapNotify[i], nil, quiet)
		w := runtime.NewWriter(ctx, runtime.Forward, toSink[i:i+1], nil, 128)
		maps[i] = &countingMap{hooks: hooks{name: "Map"}, out: w}
		in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{toMap[i]}, maps[i], "Map")
		task.Input = in
		task.Writers = []runtime.Flusher{w}
		task.Chain = []runtime.ChainedOperator{{Name: "Map", Op: maps[i], Ctx: opCtx(mi, "Map", task), In: cnt}}
		task.OnCheckpoint = cps.hook(fmt.Sprint("Map", i))
		tasks = append(tasks, task)
	}

	sinkInfo := info(0, 1)
	sinkInfo.VertexName = "Sink"
	sinkTask := runtime.NewTask(sinkInfo, sinkNotify, nil, quiet)
	sink := &countingMap{hooks: hooks{name: "Sink"}}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{toSink[0], toSink[1]}, sink, "Sink")
	sinkTask.Input = in
	sinkTask.Chain = []runtime.ChainedOperator{{Name: "Sink", Op: sink, Ctx: opCtx(sinkInfo, "Sink", sinkTask), In: cnt}}
	sinkTask.OnCheckpoint = cps.hook("Sink")
	tasks = append(tasks, sinkTask)

	var wg sync.WaitGroup
	errs := make([]error, len(tasks))
	for i, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = task.Run(ctx)
		}()
	}

	// check verifies checkpoint id: one result per task, all consistent.
	check := func(got []cpResult, id int64) int {
		t.Helper()
		require.Len(t, got, 4)
		seen := map[string]bool{}
		counts := map[string]int{}
		for _, r := range got {
			require.NoError(t, r.err, r.task)
			require.Equal(t, id, r.id, r.task)
			require.Equal(t, id, r.snap.CheckpointID)
			require.False(t, seen[r.task], "task %s reported checkpoint %d twice", r.task, id)
			seen[r.task] = true
			switch r.task {
			case "Src":
				counts["Src"] = countOf(t, r.snap, "Src")
			case "Sink":
				counts["Sink"] = countOf(t, r.snap, "Sink")
			default:
				counts["Map"] += countOf(t, r.snap, "Map")
			}
		}
		require.Equal(t, counts["Src"], counts["Map"], "the map subtasks took exactly the records before the barrier")
		require.Equal(t, counts["Src"], counts["Sink"], "the sink took exactly the records before the barrier, held-back ones included")
		return counts["Src"]
	}

	// Trigger while records flow.
	require.Eventually(t, func() bool { return sink.total.Load() > 100 }, 30*time.Second, time.Millisecond)
	require.NoError(t, src.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 1, Timestamp: 1000}))
	first := check(cps.wait(t, 4), 1)
	require.Greater(t, first, 0)

	// Alignment ended: everything flows on to the maps (which hold back up
	// to two records each until the next barrier).
	require.Eventually(t, func() bool { return maps[0].total.Load()+maps[1].total.Load() == limit }, 30*time.Second, time.Millisecond)
	require.NoError(t, src.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 2}))
	require.Equal(t, limit, check(cps.wait(t, 8)[4:], 2))

	cancel()
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	}
}

// recorder keeps the records it takes (its state, as text) and passes them
// on.
type recorder struct {
	hooks
	out  runtime.Output[int]
	mu   sync.Mutex
	vals []int
}

func (r *recorder) ProcessElement(v int, ts int64) {
	r.mu.Lock()
	r.vals = append(r.vals, v)
	r.mu.Unlock()
	r.out.Collect(v, ts)
}

func (r *recorder) ProcessWatermark(int64) {}
func (r *recorder) ProcessIdle()           {}

func (r *recorder) values() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.vals...)
}

func (r *recorder) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: "Rec", Name: "Rec", Keyed: []byte(fmt.Sprint(r.values()))}, nil
}

// outDrain reads a task's output channel on the test goroutine: records as
// "r<v>", events by kind and checkpoint id.
type outDrain struct {
	ch  *network.Channel[int]
	got []string
}

func (d *outDrain) stream() []string {
	for {
		b, ok := d.ch.Poll()
		if !ok {
			return d.got
		}
		for _, r := range b.Recs {
			d.got = append(d.got, fmt.Sprint("r", r.V))
		}
		switch b.Kind {
		case network.Barrier:
			d.got = append(d.got, fmt.Sprintf("barrier %d %v %v %d", b.Value, b.Barrier.Mode, b.Barrier.Kind, b.Barrier.Timestamp))
		case network.CancelBarrier:
			d.got = append(d.got, fmt.Sprint("cancel ", b.Value))
		case network.EndOfPartition:
			d.got = append(d.got, "end")
		}
		d.ch.Recycle(b)
	}
}

// waitStream waits until the output holds want.
func (d *outDrain) waitStream(t *testing.T, want ...string) {
	t.Helper()
	require.Eventually(t, func() bool { return len(d.stream()) >= len(want) }, 30*time.Second, time.Millisecond,
		"waiting for %v, have %v", want, d.got)
	require.Equal(t, want, d.stream())
}

// alignTask is a one-input task over n channels that the test writes
// through in[i]; it records its records and writes them to out.
type alignTask struct {
	task *runtime.Task
	rec  *recorder
	in   []*runtime.Writer[int]
	out  *outDrain
	cps  *checkpoints
	errc chan error
}

func newAlignTask(t *testing.T, n int) *alignTask { return newAlignTaskWith(t, n, nil) }

// newAlignTaskWith is newAlignTask with setup applied to the task before it
// runs.
func newAlignTaskWith(t *testing.T, n int, setup func(*runtime.Task)) *alignTask {
	ctx, cancel := context.WithCancel(context.Background())
	notify := network.NewNotifier()
	a := &alignTask{cps: &checkpoints{}, errc: make(chan error, 1)}
	chans := make([]any, n)
	for i := range n {
		ch := network.NewChannel[int](4, 8, notify)
		chans[i] = ch
		a.in = append(a.in, runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128))
	}
	out := network.NewChannel[int](4, 8, network.NewNotifier())
	a.out = &outDrain{ch: out}
	ti := info(0, 1)
	a.task = runtime.NewTask(ti, notify, nil, quiet)
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{out}, nil, 128)
	a.rec = &recorder{hooks: hooks{name: "Rec"}, out: w}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor(chans, a.rec, "Rec")
	a.task.Input = in
	a.task.Writers = []runtime.Flusher{w}
	a.task.Chain = []runtime.ChainedOperator{{Name: "Rec", Op: a.rec, Ctx: opCtx(ti, "Rec", a.task), In: cnt}}
	a.task.OnCheckpoint = a.cps.hook("Rec")
	if setup != nil {
		setup(a.task)
	}
	go func() { a.errc <- a.task.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-a.errc
	})
	return a
}

// blocked reports, from the task goroutine, which input channels are
// blocked and what the operator has taken.
func (a *alignTask) blocked(t *testing.T) (blocked []bool, vals []int) {
	g := a.task.Input.(interface{ Gate() *runtime.Gate }).Gate()
	onTask(t, a.task, func() {
		for i := range a.in {
			blocked = append(blocked, g.Blocked(i))
		}
		vals = a.rec.values()
	})
	return blocked, vals
}

// barrierBlocks sends exactly-once barrier id and then vals on channel 0
// and waits until the task has blocked the channel.
func (a *alignTask) barrierBlocks(t *testing.T, id int64, vals ...int) {
	t.Helper()
	a.in[0].EmitBarrier(id, exactlyOnce)
	send(a.in[0], vals...)
	require.Eventually(t, func() bool { b, _ := a.blocked(t); return b[0] }, 30*time.Second, time.Millisecond)
}

func send(w *runtime.Writer[int], vals ...int) {
	for _, v := range vals {
		w.Collect(v, 0)
	}
	w.Flush()
}

var exactlyOnce = network.BarrierOptions{}

// Exactly-once with a slow channel: the channel that delivered the barrier
// is blocked until the other one delivers it too, so the records behind the
// barrier on the fast channel are neither processed nor in the snapshot;
// the barrier goes downstream after the records before it and before those
// after it, with its options.
func TestAlignmentBlocksUntilEveryChannelDeliveredTheBarrier(t *testing.T) {
	a := newAlignTask(t, 2)
	send(a.in[0], 1, 2)
	a.in[0].EmitBarrier(1, network.BarrierOptions{Kind: network.Savepoint, Timestamp: 77})
	send(a.in[0], 3, 4)
	require.Eventually(t, func() bool { b, _ := a.blocked(t); return b[0] }, 30*time.Second, time.Millisecond)

	send(a.in[1], 10)
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 3 }, 30*time.Second, time.Millisecond)
	b, v := a.blocked(t)
	require.Equal(t, []bool{true, false}, b)
	require.Equal(t, []int{1, 2, 10}, v, "nothing behind the barrier of channel 0 was processed")
	require.Empty(t, a.cps.all())

	a.in[1].EmitBarrier(1, network.BarrierOptions{Kind: network.Savepoint, Timestamp: 77})
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, int64(1), got[0].id)
	require.Equal(t, "[1 2 10]", stateOf(t, got[0].snap, "Rec"))
	require.Equal(t, runtime.CheckpointOptions{ID: 1, Kind: network.Savepoint, Timestamp: 77}, got[0].snap.Options)

	a.out.waitStream(t, "r1", "r2", "r10", "barrier 1 exactly-once savepoint 77", "r3", "r4")
	b, v = a.blocked(t)
	require.Equal(t, []bool{false, false}, b)
	require.Equal(t, []int{1, 2, 10, 3, 4}, v)
	require.Len(t, a.cps.all(), 1)
}

// An ended channel counts as aligned (FLIP-147): one that ended before the
// barrier and one that ends while the others are aligned.
func TestAlignmentEndedChannelCountsAsAligned(t *testing.T) {
	a := newAlignTask(t, 3)
	a.in[2].EndOfPartition()
	send(a.in[0], 1)
	a.barrierBlocks(t, 1, 2)
	require.Empty(t, a.cps.all())

	send(a.in[1], 5)
	a.in[1].EndOfPartition()
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, "[1 5]", stateOf(t, got[0].snap, "Rec"))

	a.in[0].EndOfPartition()
	require.NoError(t, <-a.errc)
	a.errc <- nil // for the cleanup
	a.out.waitStream(t, "r1", "r5", "barrier 1 exactly-once checkpoint 0", "r2", "end")
}

// A barrier for a newer checkpoint aborts the one being aligned (reported
// with an error, cancel marker downstream) and starts aligning the new one;
// a barrier for an older one is ignored.
func TestNewerBarrierAbortsOlder(t *testing.T) {
	a := newAlignTask(t, 2)
	a.barrierBlocks(t, 1, 1)

	a.in[1].EmitBarrier(2, exactlyOnce)
	got := a.cps.wait(t, 1)
	require.Equal(t, int64(1), got[0].id)
	require.ErrorIs(t, got[0].err, runtime.ErrCheckpointAborted)
	require.ErrorContains(t, got[0].err, "superseded by barrier 2")

	// Channel 0 was unblocked; channel 1 now waits for it.
	a.in[0].EmitBarrier(2, exactlyOnce)
	got = a.cps.wait(t, 2)
	require.NoError(t, got[1].err)
	require.Equal(t, int64(2), got[1].id)
	require.Equal(t, "[1]", stateOf(t, got[1].snap, "Rec"))

	// A late barrier of checkpoint 1 changes nothing; checkpoint 3 fences.
	a.in[1].EmitBarrier(1, exactlyOnce)
	send(a.in[1], 7)
	a.in[0].EmitBarrier(3, exactlyOnce)
	a.in[1].EmitBarrier(3, exactlyOnce)
	got = a.cps.wait(t, 3)
	require.Len(t, got, 3)
	require.Equal(t, int64(3), got[2].id)
	require.Equal(t, "[1 7]", stateOf(t, got[2].snap, "Rec"))
	a.out.waitStream(t, "cancel 1", "r1", "barrier 2 exactly-once checkpoint 0", "r7", "barrier 3 exactly-once checkpoint 0")
}

// A cancel marker for the checkpoint being aligned aborts it and unblocks;
// the task forwards the marker once, however many channels deliver it, and
// ignores the checkpoint's late barriers.
func TestCancelMarkerAbortsAlignment(t *testing.T) {
	a := newAlignTask(t, 2)
	a.barrierBlocks(t, 1, 5)

	a.in[1].EmitCancelBarrier(1)
	got := a.cps.wait(t, 1)
	require.Equal(t, int64(1), got[0].id)
	require.ErrorIs(t, got[0].err, runtime.ErrCheckpointAborted)
	require.ErrorContains(t, got[0].err, "cancelled upstream")

	a.in[1].EmitBarrier(1, exactlyOnce)
	a.in[0].EmitCancelBarrier(1)
	a.in[0].EmitBarrier(2, exactlyOnce)
	a.in[1].EmitBarrier(2, exactlyOnce)
	got = a.cps.wait(t, 2)
	require.Len(t, got, 2)
	require.NoError(t, got[1].err)
	require.Equal(t, "[5]", stateOf(t, got[1].snap, "Rec"))
	a.out.waitStream(t, "cancel 1", "r5", "barrier 2 exactly-once checkpoint 0")
}

// AbortCheckpoint aborts the checkpoint being aligned, and one the task has
// not seen yet, whose barriers it then ignores; both are forwarded.
func TestAbortCheckpoint(t *testing.T) {
	a := newAlignTask(t, 2)
	ctx := context.Background()
	a.barrierBlocks(t, 3, 1)

	require.NoError(t, a.task.AbortCheckpoint(ctx, 3))
	got := a.cps.wait(t, 1)
	require.Equal(t, int64(3), got[0].id)
	require.ErrorIs(t, got[0].err, runtime.ErrCheckpointAborted)
	b, v := a.blocked(t)
	require.Equal(t, []bool{false, false}, b)
	require.Equal(t, []int{1}, v)

	require.NoError(t, a.task.AbortCheckpoint(ctx, 5))
	require.NoError(t, a.task.AbortCheckpoint(ctx, 3)) // taken care of: nothing
	a.in[0].EmitBarrier(5, exactlyOnce)
	a.in[1].EmitBarrier(5, exactlyOnce)
	a.in[0].EmitBarrier(6, exactlyOnce)
	a.in[1].EmitBarrier(6, exactlyOnce)
	got = a.cps.wait(t, 3)
	require.Len(t, got, 3)
	require.Equal(t, int64(5), got[1].id)
	require.ErrorIs(t, got[1].err, runtime.ErrCheckpointAborted)
	require.Equal(t, int64(6), got[2].id)
	require.NoError(t, got[2].err)
	a.out.waitStream(t, "cancel 3", "r1", "cancel 5", "barrier 6 exactly-once checkpoint 0")
}

// At-least-once never blocks a channel: records behind the barrier of a
// fast channel are processed, and in the snapshot, before the slow channel
// delivers it.
func TestAtLeastOnceDoesNotBlock(t *testing.T) {
	a := newAlignTask(t, 2)
	alo := network.BarrierOptions{Mode: network.AtLeastOnce}
	send(a.in[0], 1)
	a.in[0].EmitBarrier(1, alo)
	send(a.in[0], 2, 3)
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 3 }, 30*time.Second, time.Millisecond)
	b, _ := a.blocked(t)
	require.Equal(t, []bool{false, false}, b)
	require.Empty(t, a.cps.all())

	a.in[1].EmitBarrier(1, alo)
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, "[1 2 3]", stateOf(t, got[0].snap, "Rec"))
	a.out.waitStream(t, "r1", "r2", "r3", "barrier 1 at-least-once checkpoint 0")
}

// twoInputRecorder is a TwoInput operator whose state is what it took.
type twoInputRecorder struct {
	hooks
	mu   sync.Mutex
	ints []int
	strs []string
}

func (c *twoInputRecorder) ProcessElement1(v int, _ int64) {
	c.mu.Lock()
	c.ints = append(c.ints, v)
	c.mu.Unlock()
}

func (c *twoInputRecorder) ProcessElement2(v string, _ int64) {
	c.mu.Lock()
	c.strs = append(c.strs, v)
	c.mu.Unlock()
}

func (c *twoInputRecorder) ProcessWatermark(int64) {}
func (c *twoInputRecorder) ProcessIdle()           {}

func (c *twoInputRecorder) state() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.ints, c.strs)
}

func (c *twoInputRecorder) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: "Co", Name: "Co", Keyed: []byte(c.state())}, nil
}

// A two-input task aligns across both inputs: one gate.
func TestTwoInputAlignment(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	notify := network.NewNotifier()
	ci := network.NewChannel[int](2, 4, notify)
	cs := network.NewChannel[string](2, 4, notify)
	ti := info(0, 1)
	task := runtime.NewTask(ti, notify, nil, quiet)
	op := &twoInputRecorder{}
	in, cnt := runtime.NewTwoInput[int, string]([]any{ci}, []any{cs}, op, "Co")
	task.Input = in
	task.Chain = []runtime.ChainedOperator{{Name: "Co", Op: op, Ctx: opCtx(ti, "Co", task), In: cnt}}
	cps := &checkpoints{}
	task.OnCheckpoint = cps.hook("Co")
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-errc, runtime.ErrTaskCanceled)
	}()

	wi := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ci}, nil, 128)
	ws := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[string]{cs}, nil, 128)
	wi.Collect(1, 0)
	wi.EmitBarrier(1, exactlyOnce)
	wi.Collect(2, 0)
	wi.Flush()
	g := in.(interface{ Gate() *runtime.Gate }).Gate()
	blocked := func() (b bool) { onTask(t, task, func() { b = g.Blocked(0) }); return b }
	require.Eventually(t, blocked, 30*time.Second, time.Millisecond)
	ws.Collect("a", 0)
	ws.EmitBarrier(1, exactlyOnce)
	got := cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, "[1] [a]", stateOf(t, got[0].snap, "Co"))
	require.Eventually(t, func() bool { return op.state() == "[1 2] [a]" }, 30*time.Second, time.Millisecond)
	require.False(t, blocked())
}

// listener is a chained operator that logs its checkpoint notifications.
type listener struct {
	mapper
	log *lifecycle
	err error
}

func (l *listener) NotifyCheckpointComplete(id int64) error {
	l.log.add(fmt.Sprintf("complete %d %s", id, l.name))
	return l.err
}

func (l *listener) NotifyCheckpointAborted(id int64) error {
	l.log.add(fmt.Sprintf("aborted %d %s", id, l.name))
	return nil
}

// Notifications reach every CheckpointListener of the chain, tail first,
// also for an id older than one already notified. An error fails the task,
// after every operator was notified.
func TestNotifyCheckpointReachesListeners(t *testing.T) {
	ctx := context.Background()
	ti := info(0, 1)
	lc := &lifecycle{}
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	ops := runtime.Ops[int]{}
	tail := &listener{mapper: mapper{hooks: hooks{name: "B"}, fn: id, out: runtime.Discard[int]{}}, log: lc}
	var inB runtime.Counter
	head := &listener{mapper: mapper{hooks: hooks{name: "A"}, fn: id,
		out: ops.Chain(tail, &inB, "B", task.CurrentOperator(), 2, task.CancelFlag()).(runtime.Output[int])}, log: lc}
	src := &countSource{hooks: hooks{name: "Src"}, limit: 0}
	task.Chain = []runtime.ChainedOperator{
		{Name: "Src", Op: src, Ctx: opCtx(ti, "Src", task)},
		{Name: "A", Op: head, Ctx: opCtx(ti, "A", task)},
		{Name: "B", Op: tail, Ctx: opCtx(ti, "B", task), In: &inB},
	}
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()

	require.NoError(t, task.NotifyCheckpointComplete(ctx, 5))
	require.NoError(t, task.NotifyCheckpointAborted(ctx, 6))
	require.NoError(t, task.NotifyCheckpointComplete(ctx, 3))
	onTask(t, task, func() {})
	require.Equal(t, []string{"complete 5 B", "complete 5 A", "aborted 6 B", "aborted 6 A", "complete 3 B", "complete 3 A"}, lc.get())

	tail.err = errors.New("commit failed") // read on the task goroutine after the mail
	require.NoError(t, task.NotifyCheckpointComplete(ctx, 7))
	err := <-errc
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "B", te.Operator)
	require.ErrorContains(t, err, "notify checkpoint 7 complete: commit failed")
	require.Equal(t, []string{"complete 7 B", "complete 7 A"}, lc.get()[6:])
}

// A source task takes a checkpoint while backpressured: the trigger is mail,
// which runs while the task waits for its output.
func TestTriggerCheckpointUnderBackpressure(t *testing.T) {
	bp := newBackpressured(t)
	cps := &checkpoints{}
	bp.src.OnCheckpoint = cps.hook("Src")
	bp.start(t)
	require.NoError(t, bp.src.TriggerCheckpoint(bp.ctx, runtime.CheckpointOptions{ID: 1}))
	got := cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Positive(t, countOf(t, got[0].snap, "Src"))
	select {
	case <-bp.releaseCh:
		t.Fatal("the sink was released during the test")
	default:
	}
	for _, err := range bp.stop() {
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	}
}

// Triggers that cannot be taken are reported, never lost.
func TestTriggerCheckpointRefused(t *testing.T) {
	ctx := context.Background()

	// Not a source, and its input ends before a final checkpoint could be
	// taken (no WaitForFinalCheckpoint): the deferred trigger is reported
	// with ErrTaskStopped.
	a := newAlignTask(t, 1)
	require.NoError(t, a.task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 1}))
	require.Error(t, a.task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 0}))
	a.in[0].EndOfPartition()
	require.NoError(t, <-a.errc)
	a.errc <- nil // for the cleanup
	got := a.cps.wait(t, 1)
	require.Len(t, got, 1)
	require.ErrorIs(t, got[0].err, runtime.ErrTaskStopped)

	newSource := func(limit int) (*runtime.Task, *checkpoints) {
		ti := info(0, 1)
		task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
		w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{network.NewChannel[int](4, 64, network.NewNotifier())}, nil, 128)
		task.Writers = []runtime.Flusher{w}
		src := &intSource{hooks: hooks{name: "Src"}, n: limit, panicAt: -1, out: w}
		task.Chain = []runtime.ChainedOperator{{Name: "Src", Op: src, Ctx: opCtx(ti, "Src", task)}}
		cps := &checkpoints{}
		task.OnCheckpoint = cps.hook("Src")
		return task, cps
	}

	// The reader ended: the task stopped.
	ended, _ := newSource(10)
	require.NoError(t, ended.Run(ctx))
	require.ErrorIs(t, ended.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 1}), runtime.ErrTaskStopped)

	// Queued when the task stopped: reported with ErrTaskStopped.
	stopped, cps := newSource(10)
	require.NoError(t, stopped.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 1}))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, stopped.Run(cctx), runtime.ErrTaskCanceled)
	got = cps.all()
	require.Len(t, got, 1)
	require.ErrorIs(t, got[0].err, runtime.ErrTaskStopped)

	// Not newer than the last checkpoint taken.
	running, cps := newSource(-1)
	rctx, rcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- running.Run(rctx) }()
	require.NoError(t, running.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 2}))
	require.NoError(t, running.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 1}))
	got = cps.wait(t, 2)
	require.NoError(t, got[0].err)
	require.ErrorIs(t, got[1].err, runtime.ErrCheckpointAborted)

	// Aborted before its trigger arrived: the trigger is refused.
	require.NoError(t, running.AbortCheckpoint(ctx, 3))
	require.NoError(t, running.AbortCheckpoint(ctx, 2)) // taken: nothing
	require.NoError(t, running.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 3}))
	require.NoError(t, running.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 4}))
	got = cps.wait(t, 5)
	require.Len(t, got, 5)
	require.Equal(t, []int64{3, 3, 4}, []int64{got[2].id, got[3].id, got[4].id})
	require.ErrorContains(t, got[2].err, "aborted by the coordinator")
	require.ErrorContains(t, got[3].err, "not newer than checkpoint 3")
	require.NoError(t, got[4].err)
	rcancel()
	require.ErrorIs(t, <-errc, runtime.ErrTaskCanceled)
}

// A source task waiting for its final checkpoint (FLIP-147): at the end of
// its input it finishes, ends its output and reports it, then stays until
// notified of a checkpoint it took after that point. That checkpoint sends
// no barrier (the consumer's channel has ended); a notification of an
// earlier checkpoint does not release it.
func TestSourceWaitsForFinalCheckpoint(t *testing.T) {
	ctx := context.Background()
	ti := info(0, 1)
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	out := network.NewChannel[int](4, 64, network.NewNotifier())
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{out}, nil, 128)
	task.Writers = []runtime.Flusher{w}
	task.Chain = []runtime.ChainedOperator{{Name: "Src", Op: &intSource{hooks: hooks{name: "Src"}, n: 3, panicAt: -1, out: w}, Ctx: opCtx(ti, "Src", task)}}
	cps := &checkpoints{}
	task.OnCheckpoint = cps.hook("Src")
	task.WaitForFinalCheckpoint = true
	ended := make(chan struct{})
	task.OnEndOfInput = func() { close(ended) }
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()

	<-ended
	drain := &outDrain{ch: out}
	drain.waitStream(t, "r0", "r1", "r2", "end")
	require.NoError(t, task.NotifyCheckpointComplete(ctx, 7)) // nothing taken since the end
	require.NoError(t, task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 8}))
	got := cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, int64(8), got[0].id)
	select {
	case err := <-errc:
		t.Fatalf("the task ended before its final checkpoint was notified: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, task.NotifyCheckpointComplete(ctx, 8))
	require.NoError(t, <-errc)
	require.Equal(t, []string{"r0", "r1", "r2", "end"}, drain.stream(), "no barrier after the end of partition")
	require.ErrorIs(t, task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 9}), runtime.ErrTaskStopped)
}

// A task with inputs triggered directly (its producers finished) takes the
// checkpoint once its input has ended, after every record still queued; a
// second trigger of the same checkpoint is ignored, a newer one is taken,
// and its notification ends the task.
func TestTaskWithInputsTakesDirectTriggerAtEndOfInput(t *testing.T) {
	ctx := context.Background()
	ended := make(chan struct{})
	a := newAlignTaskWith(t, 2, func(task *runtime.Task) {
		task.WaitForFinalCheckpoint = true
		task.OnEndOfInput = func() { close(ended) }
	})
	send(a.in[0], 1, 2)
	require.NoError(t, a.task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 3}))
	send(a.in[1], 5)
	a.in[0].EndOfPartition()
	_, vals := a.blocked(t)
	require.Empty(t, a.cps.all(), "deferred until the input ends (processed so far: %v)", vals)
	a.in[1].EndOfPartition()
	<-ended
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, int64(3), got[0].id)
	require.ElementsMatch(t, []int{1, 2, 5}, a.rec.values())

	require.NoError(t, a.task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 3})) // taken: ignored
	require.NoError(t, a.task.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 4}))
	got = a.cps.wait(t, 2)
	require.Len(t, got, 2)
	require.NoError(t, got[1].err)
	require.Equal(t, int64(4), got[1].id)
	require.NoError(t, a.task.NotifyCheckpointComplete(ctx, 4))
	require.NoError(t, <-a.errc)
	a.errc <- nil // for the cleanup
	out := a.out.stream()
	require.Equal(t, "end", out[len(out)-1])
	for _, e := range out {
		require.NotContains(t, e, "barrier")
	}
	require.Len(t, a.cps.all(), 2)
}
