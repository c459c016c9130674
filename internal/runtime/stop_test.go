package runtime_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// Stop-with-savepoint (barrier.go, "Stop with savepoint") on real tasks:
// a source task → a sink task over one channel.

// stopSource emits 0..n-1 with their values as timestamps and a watermark
// (the value) after each record, ten per step; then EndOfInput (n < 0:
// never, it has nothing available instead). EndInput emits the maximum
// watermark, as the real sources do. Its state is its position.
const idleAfter = 3000

type stopSource struct {
	hooks
	out     runtime.Output[int]
	n, next int
	mu      sync.Mutex
	ended   bool // EndInput ran
}

func (s *stopSource) Step() runtime.SourceStep {
	for range 10 {
		if s.n >= 0 && s.next >= s.n {
			return runtime.SourceStep{Status: runtime.EndOfInput}
		}
		if s.n < 0 && s.next >= idleAfter {
			return runtime.SourceStep{Status: runtime.NothingAvailable}
		}
		s.out.Collect(s.next, int64(s.next))
		s.out.EmitWatermark(int64(s.next))
		s.next++
	}
	return runtime.SourceStep{Status: runtime.More}
}

func (s *stopSource) EndInput() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.out.EmitWatermark(runtime.MaxWatermark)
}

func (s *stopSource) didEnd() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *stopSource) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: s.name, Name: s.name, Keyed: []byte(strconv.Itoa(s.next))}, nil
}

// stopSink records what reaches it: records, watermarks, Finish and
// checkpoint notifications, like a two-phase-commit sink would see them.
type stopSink struct {
	collector
	mu2      sync.Mutex
	finished bool
	complete []int64
	aborted  []int64
}

func (s *stopSink) Finish() error {
	s.mu2.Lock()
	s.finished = true
	s.mu2.Unlock()
	return nil
}

func (s *stopSink) NotifyCheckpointComplete(id int64) error {
	s.mu2.Lock()
	s.complete = append(s.complete, id)
	s.mu2.Unlock()
	return nil
}

func (s *stopSink) NotifyCheckpointAborted(id int64) error {
	s.mu2.Lock()
	s.aborted = append(s.aborted, id)
	s.mu2.Unlock()
	return nil
}

func (s *stopSink) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: "Sink", Name: "Sink", Keyed: []byte(strconv.Itoa(len(s.values())))}, nil
}

func (s *stopSink) state() (finished bool, complete, aborted []int64) {
	s.mu2.Lock()
	defer s.mu2.Unlock()
	return s.finished, append([]int64(nil), s.complete...), append([]int64(nil), s.aborted...)
}

func (s *stopSink) maxWM() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := int64(runtime.MinWatermark)
	for _, w := range s.wms {
		m = max(m, w)
	}
	return m
}

type stopJob struct {
	src, sink       *runtime.Task
	source          *stopSource
	out             *stopSink
	cps             *checkpoints
	srcErr, sinkErr chan error
	srcEnded        chan struct{}
	sinkEnded       chan struct{}
}

// startStopJob runs source → sink with WaitForFinalCheckpoint set on both
// (as a job with checkpointing has it), the source emitting n records.
func startStopJob(t *testing.T, n int) *stopJob {
	ctx, cancel := context.WithCancel(context.Background())
	j := &stopJob{cps: &checkpoints{}, srcErr: make(chan error, 1), sinkErr: make(chan error, 1),
		srcEnded: make(chan struct{}), sinkEnded: make(chan struct{})}
	sinkNotify := network.NewNotifier()
	ch := network.NewChannel[int](2, 8, sinkNotify)

	si := info(0, 1)
	si.VertexName = "Src"
	j.src = runtime.NewTask(si, network.NewNotifier(), nil, quiet)
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	j.source = &stopSource{hooks: hooks{name: "Src"}, out: w, n: n}
	j.src.Writers = []runtime.Flusher{w}
	j.src.Chain = []runtime.ChainedOperator{{Name: "Src", UID: "Src", Op: j.source, Ctx: opCtx(si, "Src", j.src)}}
	j.src.OnCheckpoint = j.cps.hook("Src")
	j.src.WaitForFinalCheckpoint = true
	j.src.OnEndOfInput = func() { close(j.srcEnded) }

	ki := info(0, 1)
	ki.VertexName = "Sink"
	j.sink = runtime.NewTask(ki, sinkNotify, nil, quiet)
	j.out = &stopSink{collector: collector{hooks: hooks{name: "Sink"}}}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{ch}, j.out, "Sink")
	j.sink.Input = in
	j.sink.Chain = []runtime.ChainedOperator{{Name: "Sink", UID: "Sink", Op: j.out, Ctx: opCtx(ki, "Sink", j.sink), In: cnt}}
	j.sink.OnCheckpoint = j.cps.hook("Sink")
	j.sink.WaitForFinalCheckpoint = true
	j.sink.OnEndOfInput = func() { close(j.sinkEnded) }

	go func() { j.srcErr <- j.src.Run(ctx) }()
	go func() { j.sinkErr <- j.sink.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-j.srcErr
		<-j.sinkErr
	})
	return j
}

// result returns a task's result and puts it back for the cleanup.
func result(t *testing.T, errc chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		errc <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the task did not end")
		return nil
	}
}

// running fails if the task has ended.
func running(t *testing.T, errc chan error, what string) {
	t.Helper()
	select {
	case err := <-errc:
		errc <- err
		t.Fatalf("%s ended: %v", what, err)
	case <-time.After(20 * time.Millisecond):
	}
}

var stopSavepoint = runtime.CheckpointOptions{ID: 1, Kind: network.Savepoint, Stop: true, Timestamp: 1}

// Without drain: the source takes the savepoint and then reads nothing
// more; its completion stops it, and the sink ends too, without Finish,
// without the maximum watermark and without the FLIP-147 final checkpoint,
// but only after it was notified of the savepoint itself.
func TestStopWithSavepointWithoutDrain(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t, -1)
	require.Eventually(t, func() bool { return len(j.out.values()) > 100 }, 30*time.Second, time.Millisecond)

	require.NoError(t, j.src.TriggerCheckpoint(ctx, stopSavepoint))
	got := j.cps.wait(t, 2)
	counts := map[string]int{}
	for _, r := range got {
		require.NoError(t, r.err, r.task)
		require.Equal(t, int64(1), r.id)
		counts[r.task] = countOf(t, r.snap, r.task)
	}
	require.Equal(t, counts["Src"], counts["Sink"], "the sink took exactly what preceded the barrier")
	// The source reads no more while the savepoint is pending: a mail
	// round trip on each task later, nothing has followed the barrier.
	onTask(t, j.src, func() {})
	onTask(t, j.sink, func() {})
	require.Len(t, j.out.values(), counts["Src"], "records after the stop-with-savepoint's barrier")

	require.NoError(t, j.src.NotifyCheckpointComplete(ctx, 1))
	require.NoError(t, result(t, j.srcErr))
	require.Equal(t, int64(1), j.src.StoppedAt())
	// The sink's input has stopped, but it has not been notified yet.
	running(t, j.sinkErr, "the sink before its notification of the savepoint")
	require.NoError(t, j.sink.NotifyCheckpointComplete(ctx, 1))
	require.NoError(t, result(t, j.sinkErr))
	require.Equal(t, int64(1), j.sink.StoppedAt())

	finished, complete, _ := j.out.state()
	require.False(t, finished, "Finish ran in a stopped task")
	require.Equal(t, []int64{1}, complete, "the sink was notified of the savepoint before it ended")
	require.Less(t, j.out.maxWM(), int64(runtime.MaxWatermark), "the maximum watermark reached a stopped task")
	require.False(t, j.source.didEnd(), "EndInput ran in a stopped source")
	require.Len(t, j.out.values(), counts["Src"])
	for _, c := range []chan struct{}{j.srcEnded, j.sinkEnded} {
		select {
		case <-c:
			t.Fatal("a stopped task took the FLIP-147 end-of-input path")
		default:
		}
	}
	require.Len(t, j.cps.all(), 2, "no final checkpoint")
	require.ErrorIs(t, j.src.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 2}), runtime.ErrTaskStopped)
}

// The sink may be notified before its input stops (the JobMaster notifies
// every task at once): then it ends as soon as it has.
func TestStopWithSavepointNotifiedBeforeTheInputStops(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t, -1)
	require.Eventually(t, func() bool { return len(j.out.values()) > 10 }, 30*time.Second, time.Millisecond)
	require.NoError(t, j.src.TriggerCheckpoint(ctx, stopSavepoint))
	j.cps.wait(t, 2)
	require.NoError(t, j.sink.NotifyCheckpointComplete(ctx, 1))
	onTask(t, j.sink, func() {})
	running(t, j.sinkErr, "the sink before its input stopped")
	require.NoError(t, j.src.NotifyCheckpointComplete(ctx, 1))
	require.NoError(t, result(t, j.srcErr))
	require.NoError(t, result(t, j.sinkErr))
	require.Equal(t, int64(1), j.sink.StoppedAt())
	finished, complete, _ := j.out.state()
	require.False(t, finished)
	require.Equal(t, []int64{1}, complete)
}

// An aborted stop-with-savepoint (AbortCheckpoint, NotifyCheckpointAborted
// or a newer checkpoint) lets the source read on, and the job then ends
// normally with every record, Finish and the maximum watermark.
func TestStopWithSavepointAbortedResumes(t *testing.T) {
	for _, how := range []string{"abort", "notify-aborted", "newer-checkpoint"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			const n = 5000
			j := startStopJob(t, n)
			require.NoError(t, j.src.TriggerCheckpoint(ctx, stopSavepoint))
			got := j.cps.wait(t, 2)
			var at int
			for _, r := range got {
				require.NoError(t, r.err)
				if r.task == "Src" {
					at = countOf(t, r.snap, "Src")
				}
			}
			require.Less(t, at, n, "the savepoint came after the source's end: the test proves nothing")
			onTask(t, j.src, func() {})
			require.Len(t, j.out.values(), at, "the source read on before the outcome")
			switch how {
			case "abort":
				require.NoError(t, j.src.AbortCheckpoint(ctx, 1))
			case "notify-aborted":
				require.NoError(t, j.src.NotifyCheckpointAborted(ctx, 1))
			case "newer-checkpoint":
				require.NoError(t, j.src.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 2}))
			}
			<-j.srcEnded
			<-j.sinkEnded
			require.Len(t, j.out.values(), n, "every record after the resume")
			finished, _, _ := j.out.state()
			require.True(t, finished)
			require.Equal(t, int64(runtime.MaxWatermark), j.out.maxWM())
			// The final checkpoint ends both (FLIP-147), not stopped.
			require.NoError(t, j.src.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 3}))
			require.NoError(t, j.sink.TriggerCheckpoint(ctx, runtime.CheckpointOptions{ID: 3}))
			require.NoError(t, j.src.NotifyCheckpointComplete(ctx, 3))
			require.NoError(t, j.sink.NotifyCheckpointComplete(ctx, 3))
			require.NoError(t, result(t, j.srcErr))
			require.NoError(t, result(t, j.sinkErr))
			require.Zero(t, j.src.StoppedAt())
			require.Zero(t, j.sink.StoppedAt())
		})
	}
}

// With drain: EndInput ends the source's input as a bounded one's end does,
// also while it is idle (nothing available) or waiting for a stop, and the
// drained savepoint is the final checkpoint. A drained savepoint triggered
// before EndInput is declined.
func TestStopWithSavepointDrain(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t, -1)
	// Idle: everything read, nothing available.
	require.Eventually(t, func() bool { return len(j.out.values()) == idleAfter }, 60*time.Second, time.Millisecond)
	drain := runtime.CheckpointOptions{ID: 1, Kind: network.Savepoint, Stop: true, Drain: true}
	require.NoError(t, j.src.TriggerCheckpoint(ctx, drain))
	got := j.cps.wait(t, 1)
	require.ErrorIs(t, got[0].err, runtime.ErrCheckpointAborted)
	require.Contains(t, got[0].err.Error(), "EndInput")

	require.NoError(t, j.src.EndInput(ctx))
	<-j.srcEnded
	<-j.sinkEnded
	finished, _, _ := j.out.state()
	require.True(t, finished, "the sink finished (a window operator flushes there)")
	require.Equal(t, int64(runtime.MaxWatermark), j.out.maxWM())
	require.True(t, j.source.didEnd())

	drain.ID = 2
	require.NoError(t, j.src.TriggerCheckpoint(ctx, drain))
	require.NoError(t, j.sink.TriggerCheckpoint(ctx, drain))
	got = j.cps.wait(t, 3)
	for _, r := range got[1:] {
		require.NoError(t, r.err)
		require.Equal(t, int64(2), r.id)
		require.True(t, r.snap.Options.Drain)
	}
	require.NoError(t, j.src.NotifyCheckpointComplete(ctx, 2))
	require.NoError(t, j.sink.NotifyCheckpointComplete(ctx, 2))
	require.NoError(t, result(t, j.srcErr))
	require.NoError(t, result(t, j.sinkErr))
	require.Zero(t, j.sink.StoppedAt())
	require.ErrorContains(t, j.sink.EndInput(ctx), "only a source")
}

// EndInput reaches a backpressured source promptly (a mail between steps).
func TestEndInputUnderBackpressure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ti := info(0, 1)
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	out := network.NewChannel[int](1, 4, network.NewNotifier()) // never read
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{out}, nil, 128)
	src := &stopSource{hooks: hooks{name: "Src"}, out: w, n: -1}
	task.Writers = []runtime.Flusher{w}
	task.Chain = []runtime.ChainedOperator{{Name: "Src", Op: src, Ctx: opCtx(ti, "Src", task)}}
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	require.Eventually(t, func() bool { return w.BlockedCount() > 0 }, 30*time.Second, time.Millisecond)
	require.NoError(t, task.EndInput(ctx))
	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("a backpressured source did not end its input")
	}
	require.True(t, src.didEnd())
}

// A task whose input stops with a savepoint it never took (it aborted it)
// does not wait for a notification that will not come: it ends at once,
// stopped, without end-of-input processing.
func TestStoppedEndOfASavepointNotTaken(t *testing.T) {
	a := newAlignTaskWith(t, 2, func(task *runtime.Task) { task.WaitForFinalCheckpoint = true })
	send(a.in[0], 1)
	a.in[0].EmitWatermark(5)
	a.in[1].EmitWatermark(3)
	a.in[1].EndOfPartition() // a producer that had finished earlier: drained
	a.in[0].EndOfPartitionStopped(9)
	require.NoError(t, <-a.errc)
	a.errc <- nil
	require.Equal(t, int64(9), a.task.StoppedAt())
	require.Equal(t, []int{1}, a.rec.values())
	var ends []int64
	for {
		b, ok := a.out.ch.Poll()
		if !ok {
			break
		}
		if b.Kind == network.EndOfPartition {
			ends = append(ends, b.Value)
		}
		a.out.ch.Recycle(b)
	}
	require.Equal(t, []int64{9}, ends, "the task's own output ends stopped by the same savepoint")
	require.Empty(t, a.cps.all())
}
