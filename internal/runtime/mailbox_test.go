package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// stalledSink blocks in its first record until the test closes release: a
// sink that is slow on purpose, under the test's control.
type stalledSink struct {
	hooks
	release <-chan struct{}
	stalled chan struct{} // closed when the first record arrived
	once    sync.Once
}

func (s *stalledSink) ProcessElement(int, int64) {
	s.once.Do(func() { close(s.stalled) })
	<-s.release
}
func (s *stalledSink) ProcessWatermark(int64) {}
func (s *stalledSink) ProcessIdle()           {}

// A task whose outputs are full runs its mail while it waits. The sink
// downstream is stalled on a channel the test controls, so the upstream
// task's output channel fills and stays full; every mail must run before
// the test releases the sink, which is deterministic however slow the
// machine. How many mails took longer than 50 ms is logged, not asserted:
// raw timings are noisy on a shared machine.
func TestBackpressuredTaskRunsMail(t *testing.T) {
	bp := newBackpressured(t)
	bp.start(t)
	ctx, src, w, ch := bp.ctx, bp.src, bp.w, bp.ch
	release := bp.releaseCh

	const mails = 20
	var late int
	var worst time.Duration
	for range mails {
		ran := make(chan time.Duration, 1)
		sent := time.Now()
		require.NoError(t, src.Mail(ctx, func() { ran <- time.Since(sent) }))
		select {
		case d := <-ran:
			if d > 50*time.Millisecond {
				late++
			}
			worst = max(worst, d)
		case <-time.After(30 * time.Second):
			t.Fatal("a backpressured task did not run its mail while the sink was stalled")
		}
		require.Greater(t, w.BlockedCount(), int64(0))
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d mails to a backpressured task: %d ran later than 50 ms, worst %v", mails, late, worst)
	select {
	case <-release:
		t.Fatal("the sink was released during the test")
	default:
	}
	_, ok := ch.TryAcquire()
	require.False(t, ok, "the source's output stayed full while the mail ran")

	for _, err := range bp.stop() {
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	}
}

// Mail never blocks its sender, however much is queued while the task is
// busy, and runs in the order it was sent.
func TestMailNeverBlocksSender(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 4, notify)
	task, _ := oneInputTask(info(0, 1), []*network.Channel[int]{ch}, notify)
	const n = 1000 // far beyond any fixed mailbox
	var got []int
	for i := range n {
		require.NoError(t, task.Mail(context.Background(), func() { got = append(got, i) }))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	require.NoError(t, task.Mail(ctx, func() { close(done) }))
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	<-done
	cancel()
	require.ErrorIs(t, <-errc, runtime.ErrTaskCanceled)
	require.Equal(t, seq(n), got)
}

// backpressured is a source task (countSource, endless) whose only
// consumer stalls in its first record until the test releases it, so the
// source's output channel fills and stays full.
type backpressured struct {
	ctx       context.Context
	src       *runtime.Task
	w         *runtime.Writer[int]
	ch        *network.Channel[int]
	releaseCh chan struct{}
	sink      *stalledSink
	sinkTask  *runtime.Task
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	errs      []error
	once      sync.Once
}

// newBackpressured builds the tasks; the test may set up the source task
// before start runs them.
func newBackpressured(t *testing.T) *backpressured {
	bp := &backpressured{releaseCh: make(chan struct{}), errs: make([]error, 2)}
	bp.ctx, bp.cancel = context.WithCancel(context.Background())
	notify := network.NewNotifier()
	bp.ch = network.NewChannel[int](2, 4, notify)

	srcInfo := info(0, 1)
	bp.src = runtime.NewTask(srcInfo, network.NewNotifier(), nil, quiet)
	bp.w = runtime.NewWriter(bp.ctx, runtime.Forward, []*network.Channel[int]{bp.ch}, nil, 128)
	bp.src.Writers = []runtime.Flusher{bp.w}
	gen := &countSource{hooks: hooks{name: "Src"}, out: bp.w, limit: 1 << 40}
	bp.src.Chain = []runtime.ChainedOperator{{Name: "Src", Op: gen, Ctx: opCtx(srcInfo, "Src", bp.src)}}

	sinkInfo := info(0, 1)
	sinkInfo.VertexName = "Sink"
	bp.sinkTask = runtime.NewTask(sinkInfo, notify, nil, quiet)
	bp.sink = &stalledSink{hooks: hooks{name: "Sink"}, release: bp.releaseCh, stalled: make(chan struct{})}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{bp.ch}, bp.sink, "Sink")
	bp.sinkTask.Input = in
	bp.sinkTask.Chain = []runtime.ChainedOperator{{Name: "Sink", Op: bp.sink, Ctx: opCtx(sinkInfo, "Sink", bp.sinkTask), In: cnt}}
	t.Cleanup(func() { bp.stop() })
	return bp
}

// start runs both tasks and waits until the source is backpressured.
func (bp *backpressured) start(t *testing.T) {
	for i, task := range []*runtime.Task{bp.src, bp.sinkTask} {
		bp.wg.Add(1)
		go func() {
			defer bp.wg.Done()
			bp.errs[i] = task.Run(bp.ctx)
		}()
	}
	<-bp.sink.stalled
	require.Eventually(t, func() bool { return bp.w.BlockedCount() > 0 }, 10*time.Second, time.Millisecond,
		"the source's output never filled up")
}

// stop releases the sink, cancels both tasks and returns what they
// returned.
func (bp *backpressured) stop() []error {
	bp.once.Do(func() {
		close(bp.releaseCh)
		bp.cancel()
		bp.wg.Wait()
	})
	return bp.errs
}
