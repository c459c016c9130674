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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 4, notify)

	srcInfo := info(0, 1)
	src := runtime.NewTask(srcInfo, network.NewNotifier(), nil, quiet)
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	src.Writers = []runtime.Flusher{w}
	gen := &intSource{hooks: hooks{name: "Src"}, n: -1, panicAt: -1, out: w}
	src.Chain = []runtime.ChainedOperator{{Name: "Src", Op: gen, Ctx: opCtx(srcInfo, "Src", src)}}

	release := make(chan struct{})
	sinkInfo := info(0, 1)
	sinkInfo.VertexName = "Sink"
	sinkTask := runtime.NewTask(sinkInfo, notify, nil, quiet)
	sink := &stalledSink{hooks: hooks{name: "Sink"}, release: release, stalled: make(chan struct{})}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{ch}, sink, "Sink")
	sinkTask.Input = in
	sinkTask.Chain = []runtime.ChainedOperator{{Name: "Sink", Op: sink, Ctx: opCtx(sinkInfo, "Sink", sinkTask), In: cnt}}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, task := range []*runtime.Task{src, sinkTask} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = task.Run(ctx)
		}()
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
		cancel()
		wg.Wait()
	}()

	<-sink.stalled
	require.Eventually(t, func() bool { return w.BlockedCount() > 0 }, 10*time.Second, time.Millisecond,
		"the source's output never filled up")

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

	close(release)
	released = true
	cancel()
	wg.Wait()
	for _, err := range errs {
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
