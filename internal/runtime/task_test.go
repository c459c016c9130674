package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

var quiet = slog.New(slog.DiscardHandler)

// lifecycle records the life-cycle calls of a chain's operators, in order.
type lifecycle struct {
	mu  sync.Mutex
	log []string
}

func (l *lifecycle) add(s string) {
	l.mu.Lock()
	l.log = append(l.log, s)
	l.mu.Unlock()
}

func (l *lifecycle) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.log...)
}

type hooks struct {
	name                  string
	lc                    *lifecycle
	openErr, finErr, cErr error
}

func (h *hooks) Open(*runtime.Context) error {
	if h.lc != nil {
		h.lc.add("open " + h.name)
	}
	return h.openErr
}

func (h *hooks) Finish() error {
	if h.lc != nil {
		h.lc.add("finish " + h.name)
	}
	return h.finErr
}

func (h *hooks) Close() error {
	if h.lc != nil {
		h.lc.add("close " + h.name)
	}
	return h.cErr
}

// intSource emits 0..n-1 (n < 0: forever) in steps of 10 records.
type intSource struct {
	hooks
	out     runtime.Output[int]
	n, next int
	panicAt int // -1: never
}

func (s *intSource) Step() runtime.SourceStep {
	for range 10 {
		if s.n >= 0 && s.next >= s.n {
			return runtime.SourceStep{Status: runtime.EndOfInput}
		}
		if s.next == s.panicAt {
			panic("source broke")
		}
		s.out.Collect(s.next, int64(s.next))
		s.next++
	}
	return runtime.SourceStep{Status: runtime.More}
}

func (s *intSource) EndInput() { s.out.EmitWatermark(runtime.MaxWatermark) }

// mapper applies fn.
type mapper struct {
	hooks
	out runtime.Output[int]
	fn  func(int) int
}

func (m *mapper) ProcessElement(v int, ts int64) { m.out.Collect(m.fn(v), ts) }
func (m *mapper) ProcessWatermark(wm int64)      { m.out.EmitWatermark(wm) }
func (m *mapper) ProcessIdle()                   { m.out.MarkIdle() }

// collector keeps what it receives.
type collector struct {
	hooks
	mu   sync.Mutex
	vals []int
	wms  []int64
}

func (c *collector) ProcessElement(v int, _ int64) {
	c.mu.Lock()
	c.vals = append(c.vals, v)
	c.mu.Unlock()
}

func (c *collector) ProcessWatermark(wm int64) {
	c.mu.Lock()
	c.wms = append(c.wms, wm)
	c.mu.Unlock()
}

func (c *collector) ProcessIdle() {}

func (c *collector) values() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.vals...)
}

func info(sub, par int) runtime.TaskInfo {
	return runtime.TaskInfo{JobName: "test-job", JobID: "j1", VertexName: "Src -> B -> C", Subtask: sub, Parallelism: par, MaxParallelism: 128}
}

func opCtx(ti runtime.TaskInfo, name string, task *runtime.Task) *runtime.Context {
	return &runtime.Context{Ctx: context.Background(), Task: ti, OperatorName: name, KeyGroups: keygroup.RangeFor(ti.MaxParallelism, ti.Parallelism, ti.Subtask), Logger: quiet, Time: task.Time}
}

// sourceChain builds the task Src -> B -> C in which B and C apply fnB and
// records reaching C are collected (fnC may panic).
func sourceChain(n int, fnB, fnC func(int) int, lc *lifecycle) (*runtime.Task, *intSource, *collector) {
	ti := info(1, 3)
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	ops := runtime.Ops[int]{}
	col := &collector{hooks: hooks{name: "Sink", lc: lc}}
	var inSink, inC, inB runtime.Counter
	c := &mapper{hooks: hooks{name: "C", lc: lc}, fn: fnC, out: ops.Chain(col, &inSink, "Sink", task.CurrentOperator(), 3, task.CancelFlag()).(runtime.Output[int])}
	b := &mapper{hooks: hooks{name: "B", lc: lc}, fn: fnB, out: ops.Chain(c, &inC, "C", task.CurrentOperator(), 2, task.CancelFlag()).(runtime.Output[int])}
	src := &intSource{hooks: hooks{name: "Src", lc: lc}, n: n, panicAt: -1, out: ops.Chain(b, &inB, "B", task.CurrentOperator(), 1, task.CancelFlag()).(runtime.Output[int])}
	task.Chain = []runtime.ChainedOperator{
		{Name: "Src", Op: src, Ctx: opCtx(ti, "Src", task)},
		{Name: "B", Op: b, Ctx: opCtx(ti, "B", task), In: &inB},
		{Name: "C", Op: c, Ctx: opCtx(ti, "C", task), In: &inC},
		{Name: "Sink", Op: col, Ctx: opCtx(ti, "Sink", task), In: &inSink},
	}
	return task, src, col
}

func id(v int) int { return v }

func TestTaskRunsChainToTheEnd(t *testing.T) {
	lc := &lifecycle{}
	task, _, col := sourceChain(1000, func(v int) int { return v * 2 }, func(v int) int { return v + 1 }, lc)
	require.NoError(t, task.Run(context.Background()))
	vals := col.values()
	require.Len(t, vals, 1000)
	for i, v := range vals {
		require.Equal(t, 2*i+1, v)
	}
	require.Equal(t, []int64{runtime.MaxWatermark}, col.wms, "the end of input ends event time")
	require.Equal(t, int64(1000), task.Chain[1].In.Load(), "counters are published when the task ends")
	require.Equal(t, int64(1000), task.Chain[3].In.Load())
	require.Equal(t, []string{
		"open Sink", "open C", "open B", "open Src", // tail first
		"finish Src", "finish B", "finish C", "finish Sink", // head first
		"close Src", "close B", "close C", "close Sink",
	}, lc.get())
}

func TestTaskPanicAttributedToOperator(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name       string
		fnB, fnC   func(int) int
		srcPanicAt int
		wantOp     string
		wantMsg    string
		wantIs     error
	}{
		{name: "last in chain", fnB: id, fnC: func(v int) int {
			if v == 42 {
				panic(fmt.Sprintf("bad value %d", v))
			}
			return v
		}, srcPanicAt: -1, wantOp: "C", wantMsg: "panic: bad value 42"},
		{name: "middle of chain", fnB: func(v int) int {
			if v == 7 {
				panic(boom)
			}
			return v
		}, fnC: id, srcPanicAt: -1, wantOp: "B", wantMsg: "panic: boom", wantIs: boom},
		{name: "runtime.Fail without a name", fnB: id, fnC: func(v int) int {
			if v == 3 {
				runtime.Fail("", boom)
			}
			return v
		}, srcPanicAt: -1, wantOp: "C", wantMsg: "boom", wantIs: boom},
		{name: "runtime.Fail names its operator", fnB: func(v int) int {
			if v == 3 {
				runtime.Fail("Inner", boom)
			}
			return v
		}, fnC: id, srcPanicAt: -1, wantOp: "Inner", wantMsg: "boom", wantIs: boom},
		{name: "source", fnB: id, fnC: id, srcPanicAt: 55, wantOp: "Src", wantMsg: "panic: source broke"},
		{name: "runtime error", fnB: func(v int) int { return 10 / (v - 20) }, fnC: id, srcPanicAt: -1, wantOp: "B", wantMsg: "integer divide by zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lc := &lifecycle{}
			task, src, _ := sourceChain(100, tc.fnB, tc.fnC, lc)
			src.panicAt = tc.srcPanicAt
			err := task.Run(context.Background())
			var te *runtime.TaskError
			require.ErrorAs(t, err, &te)
			require.Equal(t, tc.wantOp, te.Operator)
			require.Equal(t, "test-job", te.Job)
			require.Equal(t, 1, te.Task.Subtask)
			require.ErrorContains(t, err, tc.wantMsg)
			require.Contains(t, err.Error(), `job "test-job"`)
			require.Contains(t, err.Error(), fmt.Sprintf("operator %q", tc.wantOp))
			require.Contains(t, err.Error(), "subtask 2/3")
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			// A failed task still closes every operator, and does not finish them.
			log := lc.get()
			require.Equal(t, []string{"close Src", "close B", "close C", "close Sink"}, log[len(log)-4:])
			require.NotContains(t, log, "finish Src")
		})
	}
}

func TestTaskOpenFailure(t *testing.T) {
	lc := &lifecycle{}
	task, _, _ := sourceChain(10, id, id, lc)
	task.Chain[1].Op.(*mapper).openErr = errors.New("no connection")
	err := task.Run(context.Background())
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "B", te.Operator)
	require.ErrorContains(t, err, "open: no connection")
	// B and the operators after it are closed (B may have acquired
	// something before failing); the head was never opened.
	require.Equal(t, []string{"open Sink", "open C", "open B", "close B", "close C", "close Sink"}, lc.get())
}

func TestTaskOpenPanic(t *testing.T) {
	task, _, _ := sourceChain(10, id, id, nil)
	task.Chain[2].Op = &panicOpen{mapper: task.Chain[2].Op.(*mapper)}
	err := task.Run(context.Background())
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "C", te.Operator)
	require.ErrorContains(t, err, "panic: open exploded")
}

type panicOpen struct{ *mapper }

func (p *panicOpen) Open(*runtime.Context) error { panic("open exploded") }

func TestTaskFinishAndCloseErrors(t *testing.T) {
	lc := &lifecycle{}
	task, _, _ := sourceChain(10, id, id, lc)
	task.Chain[2].Op.(*mapper).finErr = errors.New("flush failed")
	err := task.Run(context.Background())
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "C", te.Operator)
	require.ErrorContains(t, err, "finish: flush failed")
	require.NotContains(t, lc.get(), "finish Sink", "the chain stops at the first failure")

	task, _, _ = sourceChain(10, id, id, nil)
	task.Chain[3].Op.(*collector).cErr = errors.New("close failed")
	err = task.Run(context.Background())
	require.ErrorAs(t, err, &te)
	require.Equal(t, "Sink", te.Operator)
	require.ErrorContains(t, err, "close: close failed")

	// A close error does not hide the error the task failed with.
	task, src, _ := sourceChain(10, id, id, nil)
	src.panicAt = 5
	task.Chain[3].Op.(*collector).cErr = errors.New("close failed")
	err = task.Run(context.Background())
	require.ErrorAs(t, err, &te)
	require.Equal(t, "Src", te.Operator)
}

func TestTaskWithoutInputNeedsSourceHead(t *testing.T) {
	ti := info(0, 1)
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	col := &collector{}
	task.Chain = []runtime.ChainedOperator{{Name: "NotASource", Op: col, Ctx: opCtx(ti, "NotASource", task)}}
	err := task.Run(context.Background())
	require.ErrorContains(t, err, "head is not a source")

	empty := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	require.NoError(t, empty.Run(context.Background()))
}

// A source task whose only consumer never reads waits for its output once
// the channel's credits are spent; cancelling it must end Run with
// ErrTaskCanceled at once, close its operators and leave no goroutine.
func TestTaskCancelWhileBackpressured(t *testing.T) {
	ti := info(0, 1)
	task := runtime.NewTask(ti, network.NewNotifier(), nil, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := network.NewChannel[int](2, 4, network.NewNotifier())
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	task.Writers = []runtime.Flusher{w}
	lc := &lifecycle{}
	src := &intSource{hooks: hooks{name: "Src", lc: lc}, n: -1, panicAt: -1, out: w}
	task.Chain = []runtime.ChainedOperator{{Name: "Src", Op: src, Ctx: opCtx(ti, "Src", task)}}

	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	require.Eventually(t, func() bool { return w.BlockedCount() > 0 }, 5*time.Second, time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("task ended while its output was full: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled task blocked on backpressure did not stop")
	}
	require.Equal(t, []string{"open Src", "close Src"}, lc.get())
	// One source step of 10 records: 8 in the two credits, 2 in an
	// overdraft buffer; then the task waited for its output without taking
	// another step.
	require.Equal(t, 10, src.next, "the task took no step while its output was unavailable")
}

// oneInputTask is a consumer task reading chans into a collector.
func oneInputTask(ti runtime.TaskInfo, chans []*network.Channel[int], notify network.Notifier) (*runtime.Task, *collector) {
	task := runtime.NewTask(ti, notify, nil, quiet)
	col := &collector{}
	anyChans := make([]any, len(chans))
	for i, c := range chans {
		anyChans[i] = c
	}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor(anyChans, col, "Collect")
	task.Input = in
	task.Chain = []runtime.ChainedOperator{{Name: "Collect", Op: col, Ctx: opCtx(ti, "Collect", task), In: cnt}}
	return task, col
}

func TestTaskCancelWhileWaitingForInput(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 4, notify)
	task, _ := oneInputTask(info(0, 1), []*network.Channel[int]{ch}, notify)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()

	// Mail runs on the task goroutine while it waits.
	ran := make(chan struct{})
	require.NoError(t, task.Mail(ctx, func() { close(ran) }))
	<-ran

	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	case <-time.After(5 * time.Second):
		t.Fatal("an idle task did not stop on cancel")
	}
}

// Producer and consumer tasks wired by hash-partitioned channels, as the
// cluster wires them.
func TestTasksExchangeByKeyGroup(t *testing.T) {
	const n, par, maxPar = 5000, 3, 16
	ctx := context.Background()
	notifiers := make([]network.Notifier, par)
	chans := make([]*network.Channel[int], par)
	for i := range par {
		notifiers[i] = network.NewNotifier()
		chans[i] = network.NewChannel[int](2, 16, notifiers[i])
	}
	kgOf := runtime.KeyGroupOf[int](func(v int) int { return v % maxPar })
	prodInfo := info(0, 1)
	prod := runtime.NewTask(prodInfo, network.NewNotifier(), nil, quiet)
	w := runtime.NewWriter(ctx, runtime.Hash, chans, kgOf, maxPar)
	prod.Writers = []runtime.Flusher{w}
	src := &intSource{n: n, panicAt: -1, out: w}
	prod.Chain = []runtime.ChainedOperator{{Name: "Src", Op: src, Ctx: opCtx(prodInfo, "Src", prod)}}

	var wg sync.WaitGroup
	errs := make([]error, par+1)
	cols := make([]*collector, par)
	for i := range par {
		ti := runtime.TaskInfo{JobName: "test-job", VertexName: "Collect", Subtask: i, Parallelism: par, MaxParallelism: maxPar}
		task, col := oneInputTask(ti, chans[i:i+1], notifiers[i])
		cols[i] = col
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = task.Run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[par] = prod.Run(ctx)
	}()
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var all []int
	for i, col := range cols {
		r := keygroup.RangeFor(maxPar, par, i)
		for _, v := range col.vals {
			if !r.Contains(v % maxPar) {
				t.Fatalf("record %d reached subtask %d owning %v", v, i, r)
			}
		}
		require.Equal(t, []int64{runtime.MaxWatermark}, col.wms)
		all = append(all, col.vals...)
	}
	slices.Sort(all)
	require.Equal(t, seq(n), all)
}

// A consumer task with several input channels: the watermark it passes on
// is the minimum over them, and it ends when every channel has ended.
func TestTaskWatermarkAlignment(t *testing.T) {
	notify := network.NewNotifier()
	chans := []*network.Channel[int]{network.NewChannel[int](4, 4, notify), network.NewChannel[int](4, 4, notify)}
	task, col := oneInputTask(info(0, 1), chans, notify)
	ctx := context.Background()
	w0 := runtime.NewWriter(ctx, runtime.Forward, chans[:1], nil, 128)
	w1 := runtime.NewWriter(ctx, runtime.Forward, chans[1:], nil, 128)
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()

	wms := func() []int64 {
		col.mu.Lock()
		defer col.mu.Unlock()
		return append([]int64(nil), col.wms...)
	}
	// The writers' tasks would flush them before blocking: watermarks wait
	// for the next batch until then.
	w0.EmitWatermark(10)
	w1.EmitWatermark(5)
	w0.Flush()
	w1.Flush()
	require.Eventually(t, func() bool { return len(wms()) == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []int64{5}, wms())
	w1.EmitWatermark(20)
	w1.Flush()
	require.Eventually(t, func() bool { return len(wms()) == 2 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []int64{5, 10}, wms())
	w0.MarkIdle() // channel 0 no longer holds event time back
	require.Eventually(t, func() bool { return len(wms()) == 3 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []int64{5, 10, 20}, wms())
	w0.EndOfPartition()
	w1.Collect(1, 21)
	w1.EmitWatermark(runtime.MaxWatermark)
	w1.EndOfPartition()
	require.NoError(t, <-errc)
	require.Equal(t, []int64{5, 10, 20, runtime.MaxWatermark}, wms())
	require.Equal(t, []int{1}, col.values())
}

// Processing-time callbacks registered through the operator context wake
// an otherwise idle task.
func TestTaskProcessingTimeWakesIdleTask(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 4, notify)
	task, col := oneInputTask(info(0, 1), []*network.Channel[int]{ch}, notify)
	var fired atomic.Int64
	pt := task.Time
	start := pt.Now()
	var step func(ts int64)
	step = func(ts int64) {
		if fired.Add(1) < 3 {
			pt.Register(ts+2, step)
		}
	}
	pt.Register(start+5, step)
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	require.Eventually(t, func() bool { return fired.Load() == 3 }, 5*time.Second, time.Millisecond)
	require.GreaterOrEqual(t, pt.Now(), start+9, "callbacks run once their time has passed")
	w := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	w.EndOfPartition()
	require.NoError(t, <-errc)
	require.Empty(t, col.values())
}

// twoInputCollector is a TwoInput operator that records what it sees.
type twoInputCollector struct {
	hooks
	ints []int
	strs []string
	wms  []int64
}

func (c *twoInputCollector) ProcessElement1(v int, _ int64)    { c.ints = append(c.ints, v) }
func (c *twoInputCollector) ProcessElement2(v string, _ int64) { c.strs = append(c.strs, v) }
func (c *twoInputCollector) ProcessWatermark(wm int64)         { c.wms = append(c.wms, wm) }
func (c *twoInputCollector) ProcessIdle()                      {}

func TestTwoInputTask(t *testing.T) {
	notify := network.NewNotifier()
	ci := network.NewChannel[int](2, 4, notify)
	cs := network.NewChannel[string](2, 4, notify)
	ti := info(0, 1)
	task := runtime.NewTask(ti, notify, nil, quiet)
	op := &twoInputCollector{}
	in, cnt := runtime.NewTwoInput[int, string]([]any{ci}, []any{cs}, op, "Co")
	task.Input = in
	task.Chain = []runtime.ChainedOperator{{Name: "Co", Op: op, Ctx: opCtx(ti, "Co", task), In: cnt}}
	ctx := context.Background()
	wi := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ci}, nil, 128)
	ws := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[string]{cs}, nil, 128)
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	for i := range 10 {
		wi.Collect(i, 0)
		ws.Collect(fmt.Sprint(i), 0)
	}
	// Flush after each watermark, as the writers' tasks would before they
	// block, so none is coalesced with the next.
	wi.EmitWatermark(100)
	wi.Flush()
	ws.EmitWatermark(50)
	ws.Flush()
	wi.EmitWatermark(runtime.MaxWatermark)
	wi.EndOfPartition()
	ws.EmitWatermark(70)
	ws.Flush()
	ws.EmitWatermark(runtime.MaxWatermark)
	ws.EndOfPartition()
	require.NoError(t, <-errc)
	require.Equal(t, seq(10), op.ints)
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, op.strs)
	require.Equal(t, []int64{50, 70, runtime.MaxWatermark}, op.wms, "the minimum over both inputs")
	require.Equal(t, int64(20), cnt.Load())

	// A panic in a two-input operator names it.
	task2 := runtime.NewTask(ti, notify, nil, quiet)
	ci2 := network.NewChannel[int](2, 4, notify)
	cs2 := network.NewChannel[string](2, 4, notify)
	bad := &panicking2{}
	in2, _ := runtime.NewTwoInput[int, string]([]any{ci2}, []any{cs2}, bad, "Co2")
	task2.Input = in2
	task2.Chain = []runtime.ChainedOperator{{Name: "Co2", Op: bad, Ctx: opCtx(ti, "Co2", task2)}}
	go func() { errc <- task2.Run(ctx) }()
	runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[string]{cs2}, nil, 128).EndOfPartition()
	w2 := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ci2}, nil, 128)
	w2.Collect(1, 0)
	w2.Flush()
	err := <-errc
	var te *runtime.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "Co2", te.Operator)
}

type panicking2 struct{ twoInputCollector }

func (p *panicking2) ProcessElement1(int, int64) { panic("two-input broke") }

func TestGuardPassesCancellation(t *testing.T) {
	// A cancellation raised deep in a chain is not turned into a failure.
	r := func() (r any) {
		defer func() { r = recover() }()
		defer runtime.Guard("Outer")
		runtime.Cancelled()
		return nil
	}()
	require.Equal(t, r, runtime.Attribute("Other", r), "a cancellation passes every guard unchanged")
}

func TestMailToStoppedTaskFails(t *testing.T) {
	task := runtime.NewTask(runtime.TaskInfo{JobName: "j", VertexName: "v", Parallelism: 1}, network.NewNotifier(), nil, nil)
	require.NoError(t, task.Run(context.Background())) // no chain: returns at once
	err := task.Mail(context.Background(), func() { t.Fatal("mail ran on a stopped task") })
	require.ErrorIs(t, err, runtime.ErrTaskStopped)
}

// cancelAt cancels its task's context at its at-th record and waits until
// the task's flag is set, as if the cancellation arrived during the call.
type cancelAt struct {
	hooks
	at, seen int
	cancel   func()
	flag     *runtime.CancelFlag
}

func (c *cancelAt) ProcessElement(int, int64) {
	c.seen++
	if c.seen == c.at {
		c.cancel()
		for !c.flag.IsSet() {
			time.Sleep(time.Millisecond)
		}
	}
}
func (c *cancelAt) ProcessWatermark(int64) {}
func (c *cancelAt) ProcessIdle()           {}

// A cancelled task stops before the next record of a batch, not at the end
// of the batch: cancellation takes effect within one call of user code.
func TestTaskCancelStopsMidBatch(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 100, notify)
	ti := info(0, 1)
	task := runtime.NewTask(ti, notify, nil, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op := &cancelAt{at: 3, cancel: cancel, flag: task.CancelFlag()}
	in, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{ch}, op, "Op")
	task.Input = in
	task.Chain = []runtime.ChainedOperator{{Name: "Op", Op: op, Ctx: opCtx(ti, "Op", task), In: cnt}}
	w := runtime.NewWriter(context.Background(), runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	for i := range 50 {
		w.Collect(i, 0)
	}
	w.Flush()
	require.ErrorIs(t, task.Run(ctx), runtime.ErrTaskCanceled)
	require.Equal(t, 3, op.seen, "no record after the cancellation")

	// The same in a chain: a source fanning out into a chained operator.
	lc := &lifecycle{}
	task2, src, col := sourceChain(-1, id, id, lc)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	task2.Chain[2].Op.(*mapper).fn = func(v int) int {
		if v == 4 {
			cancel2()
			for !task2.CancelFlag().IsSet() {
				time.Sleep(time.Millisecond)
			}
		}
		return v
	}
	require.ErrorIs(t, task2.Run(ctx2), runtime.ErrTaskCanceled)
	require.Equal(t, []int{0, 1, 2, 3}, col.values(), "the record in flight stops at the next operator")
	require.Equal(t, 4, src.next, "the source's step stopped too")
}
