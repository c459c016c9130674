package strom_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/window"
)

// Tests of Process, the non-keyed process operator with a watermark
// hook. Helpers shared with other tests: newEnv, run, mustRun, rangeSlice,
// requireTaskFailure, punctuated (a watermark ts−1 before every record),
// liveSink and runUntil.

// psTimed is rangeSlice(n) with timestamp = value and a watermark just
// behind every record.
func psTimed(env *strom.Environment, n int) strom.Stream[int] {
	return strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(n)),
		strom.CustomWatermarks[int](func() strom.WatermarkGenerator { return punctuated{} }).
			WithTimestamps(func(v int) int64 { return int64(v) }))
}

type psSeen struct {
	V, Subtask, NumSubtasks int
	Ts                      int64
	HasTs                   bool
	Wm                      int64
}

func TestProcessStreamPassThroughAndFilter(t *testing.T) {
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			env := newEnv(p)
			seen := strom.Process(psTimed(env, 1000), func() strom.ProcessFunction[int, psSeen] {
				return strom.ProcessElementFunc[int, psSeen](func(ctx *strom.ProcessContext[psSeen], v int) error {
					ts, ok := ctx.Timestamp()
					ctx.Collect(psSeen{V: v, Subtask: ctx.SubtaskIndex(), NumSubtasks: ctx.NumSubtasks(), Ts: ts, HasTs: ok,
						Wm: ctx.CurrentWatermark()})
					return nil
				})
			}).Name("Pass")
			odd := strom.Process(seen, func() strom.ProcessFunction[psSeen, int] {
				return strom.ProcessElementFunc[psSeen, int](func(ctx *strom.ProcessContext[int], s psSeen) error {
					if s.V%2 == 1 {
						ctx.CollectAt(s.V*10, int64(s.V)+1)
					}
					return nil
				})
			}).Name("Odd")
			all, odds := strom.Collect(seen), strom.Collect(odd)
			res := mustRun(t, env, "pass")

			got := all.Values()
			require.Len(t, got, 1000)
			vals := make([]int, len(got))
			subtasks := map[int]bool{}
			for i, s := range got {
				vals[i] = s.V
				require.True(t, s.HasTs)
				require.Equal(t, int64(s.V), s.Ts, "Timestamp is the record's")
				require.Equal(t, all.Timestamps()[i], s.Ts, "Collect keeps the record's timestamp")
				require.Equal(t, p, s.NumSubtasks)
				require.Less(t, s.Subtask, p)
				subtasks[s.Subtask] = true
				if s.Wm != math.MinInt64 { // the first record of a subtask's range
					require.Equal(t, int64(s.V-2), s.Wm, "the previous record's watermark came before the record, its own after it")
				}
			}
			require.ElementsMatch(t, rangeSlice(1000), vals)
			require.Len(t, subtasks, p, "every subtask ran its own function")

			var want []int
			for v := 1; v < 1000; v += 2 {
				want = append(want, v*10)
			}
			require.ElementsMatch(t, want, odds.Values())
			for i, v := range odds.Values() {
				require.Equal(t, int64(v/10+1), odds.Timestamps()[i], "CollectAt sets the timestamp")
			}
			pass, ok := res.Operator("Pass")
			require.True(t, ok)
			require.Equal(t, int64(1000), pass.RecordsIn)
			require.Equal(t, int64(1000), pass.RecordsOut)
			require.Equal(t, p, pass.Parallelism)
			o, _ := res.Operator("Odd")
			require.Equal(t, int64(500), o.RecordsOut)
		})
	}
}

// psPartial is one subtask's partial sum of a window.
type psPartial struct {
	Win, Sum, N int64
}

// psWindowSum sums the records of each tumbling window locally and emits a
// window's partial sum once the watermark says the window is complete.
type psWindowSum struct {
	size int64
	sums map[int64]*psPartial
	wms  int // watermarks seen
}

func (f *psWindowSum) Open(*strom.ProcessContext[psPartial]) error {
	f.sums = map[int64]*psPartial{}
	return nil
}

func (f *psWindowSum) ProcessElement(ctx *strom.ProcessContext[psPartial], v int) error {
	ts, ok := ctx.Timestamp()
	if !ok {
		return errors.New("no timestamp")
	}
	w := window.StartWithOffset(ts, 0, f.size)
	p := f.sums[w]
	if p == nil {
		p = &psPartial{Win: w}
		f.sums[w] = p
	}
	p.Sum += int64(v)
	p.N++
	return nil
}

func (f *psWindowSum) OnWatermark(ctx *strom.ProcessContext[psPartial], wm int64) error {
	f.wms++
	if _, ok := ctx.Timestamp(); ok {
		return errors.New("OnWatermark has a record timestamp")
	}
	if ctx.CurrentWatermark() != wm {
		return fmt.Errorf("CurrentWatermark %d in OnWatermark(%d)", ctx.CurrentWatermark(), wm)
	}
	for w, p := range f.sums {
		if end := w + f.size; end-1 <= wm {
			ctx.CollectAt(*p, end-1)
			delete(f.sums, w)
		}
	}
	return nil
}

func (f *psWindowSum) Finish(*strom.ProcessContext[psPartial]) error {
	if len(f.sums) != 0 {
		return fmt.Errorf("%d windows left after the final watermark", len(f.sums))
	}
	if f.wms == 0 {
		return errors.New("no watermark seen")
	}
	return nil
}

// Partial sums emitted on the watermark precede it: the global window
// downstream counts every one of them (a partial behind the watermark that
// completes its window would be late, and dropped).
func TestProcessStreamPreAggregatesPerWindowOnWatermark(t *testing.T) {
	const n, size = 20_000, 100
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			env := newEnv(p)
			partials := strom.Process(psTimed(env, n), func() strom.ProcessFunction[int, psPartial] {
				return &psWindowSum{size: size}
			}).Name("Pre-aggregate")
			totals := strom.WindowReduce(strom.Window(strom.KeyBy(partials, func(p psPartial) int64 { return p.Win }),
				window.Tumbling(size*time.Millisecond)), func(a, b psPartial) psPartial {
				return psPartial{Win: a.Win, Sum: a.Sum + b.Sum, N: a.N + b.N}
			})
			out := strom.Collect(totals)
			res := mustRun(t, env, "pre-aggregate")

			got := out.Values()
			slices.SortFunc(got, func(a, b psPartial) int { return int(a.Win - b.Win) })
			require.Len(t, got, n/size, "one total per window")
			for i, w := range got {
				start := int64(i * size)
				require.Equal(t, start, w.Win)
				require.Equal(t, int64(size), w.N, "window %d: no partial was late", start)
				require.Equal(t, int64(size)*start+size*(size-1)/2, w.Sum, "window %d", start)
			}
			pre, _ := res.Operator("Pre-aggregate")
			require.Equal(t, int64(n), pre.RecordsIn)
			require.LessOrEqual(t, pre.RecordsOut, int64(p*n/size+p), "at most one partial per window and subtask (+1 where a window spans two splits)")
		})
	}
}

// psStamp emits, in OnWatermark, a record whose timestamp is the watermark
// being handled (until the final one).
type psStamp struct{}

func (psStamp) ProcessElement(*strom.ProcessContext[int64], int) error { return nil }

func (psStamp) OnWatermark(ctx *strom.ProcessContext[int64], wm int64) error {
	if wm != strom.MaxWatermark {
		ctx.CollectAt(wm, wm)
	}
	return nil
}

// psArrival is a record with the watermark its operator had when it came.
type psArrival struct {
	Ts, Wm int64
}

// Records emitted in OnWatermark(wm) with timestamp wm reach the next
// operators before wm — whether they are chained or behind a shuffle — so
// those operators' watermark is still below the record's timestamp.
func TestProcessStreamOnWatermarkEmitsBeforeTheWatermark(t *testing.T) {
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			env := newEnv(p)
			stamps := strom.Process(psTimed(env, 3000), func() strom.ProcessFunction[int, int64] { return psStamp{} })
			chained := strom.Process(stamps, func() strom.ProcessFunction[int64, psArrival] {
				return strom.ProcessElementFunc[int64, psArrival](func(ctx *strom.ProcessContext[psArrival], v int64) error {
					ts, _ := ctx.Timestamp()
					ctx.Collect(psArrival{Ts: ts, Wm: ctx.CurrentWatermark()})
					return nil
				})
			})
			keyed := strom.KeyedProcessFunc(strom.KeyBy(stamps, func(v int64) int64 { return v % 7 }),
				func(ctx *strom.KeyedContext[int64, psArrival], v int64) error {
					ts, _ := ctx.Timestamp()
					ctx.Collect(psArrival{Ts: ts, Wm: ctx.CurrentWatermark()})
					return nil
				})
			a, b := strom.Collect(chained), strom.Collect(keyed)
			mustRun(t, env, "order")
			for name, c := range map[string]*strom.Collected[psArrival]{"chained": a, "keyed": b} {
				got := c.Values()
				require.GreaterOrEqual(t, len(got), 3000-p, name)
				advanced := 0
				for _, r := range got {
					require.Less(t, r.Wm, r.Ts, "%s: a record emitted in OnWatermark arrived after the watermark", name)
					if r.Wm != math.MinInt64 {
						advanced++
					}
					if p == 1 && r.Ts > -1 {
						// One channel: the previous watermark, ts − 1
						// (none before the first, −1); coalescing keeps a
						// channel's records and watermarks in order.
						require.Equal(t, r.Ts-1, r.Wm, name)
					}
				}
				require.Positive(t, advanced, "%s: watermarks arrive", name)
			}
		})
	}
}

// psLog records the life-cycle calls of every subtask's function.
type psLog struct {
	mu    sync.Mutex
	calls map[int][]string
}

func (l *psLog) add(subtask int, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[int][]string{}
	}
	l.calls[subtask] = append(l.calls[subtask], s)
}

// psBatcher emits records in batches of up to size, the last (partial)
// batch in Finish.
type psBatcher struct {
	size    int
	buf     []int
	log     *psLog
	subtask int
	lastWM  int64
}

func (f *psBatcher) Open(ctx *strom.ProcessContext[[]int]) error {
	f.subtask = ctx.SubtaskIndex()
	f.log.add(f.subtask, "open")
	return nil
}

func (f *psBatcher) ProcessElement(ctx *strom.ProcessContext[[]int], v int) error {
	f.buf = append(f.buf, v)
	if len(f.buf) == f.size {
		ctx.Collect(f.buf)
		f.buf = nil // emitted records must not be mutated
	}
	return nil
}

func (f *psBatcher) OnWatermark(_ *strom.ProcessContext[[]int], wm int64) error {
	if wm <= f.lastWM {
		return fmt.Errorf("watermark %d after %d", wm, f.lastWM)
	}
	f.lastWM = wm
	if wm == strom.MaxWatermark {
		f.log.add(f.subtask, "final watermark")
	}
	return nil
}

func (f *psBatcher) Finish(ctx *strom.ProcessContext[[]int]) error {
	f.log.add(f.subtask, "finish")
	if ctx.CurrentWatermark() != strom.MaxWatermark {
		return fmt.Errorf("Finish at watermark %d", ctx.CurrentWatermark())
	}
	if len(f.buf) > 0 {
		ctx.Collect(f.buf)
		f.buf = nil
	}
	return nil
}

func (f *psBatcher) Close() error {
	f.log.add(f.subtask, "close")
	return nil
}

// Finish runs once per subtask after the final watermark and flushes what
// the function buffers; its records reach chained and shuffled consumers.
func TestProcessStreamFinishFlushesAtEndOfInput(t *testing.T) {
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			env := newEnv(p)
			log := &psLog{}
			batches := strom.Process(strom.FromSlice(env, rangeSlice(1003)), func() strom.ProcessFunction[int, []int] {
				return &psBatcher{size: 10, log: log, lastWM: math.MinInt64}
			}).Name("Batch")
			chained := strom.Collect(batches)
			shuffled := strom.Collect(strom.Rebalance(batches).Parallelism(1))
			mustRun(t, env, "finish")
			for name, c := range map[string]*strom.Collected[[]int]{"chained": chained, "shuffled": shuffled} {
				var all []int
				partial := 0
				for _, b := range c.Values() {
					all = append(all, b...)
					if len(b) < 10 {
						partial++
					}
				}
				require.ElementsMatch(t, rangeSlice(1003), all, name)
				require.LessOrEqual(t, partial, p, "%s: one partial batch per subtask at most", name)
				require.Positive(t, partial, name)
			}
			require.Len(t, log.calls, p)
			for st, calls := range log.calls {
				require.Equal(t, []string{"open", "final watermark", "finish", "close"}, calls, "subtask %d", st)
			}
		})
	}
}

type psTick struct {
	Subtask int
	N       int
	Timer   int64
	Now     int64
	HasTs   bool
}

// psTimers registers a processing-time callback on its first record that
// re-registers itself twice.
type psTimers struct{ started bool }

func (f *psTimers) ProcessElement(ctx *strom.ProcessContext[psTick], _ int64) error {
	if f.started {
		return nil
	}
	f.started = true
	n := 0
	var tick func(ctx *strom.ProcessContext[psTick], ts int64) error
	tick = func(ctx *strom.ProcessContext[psTick], ts int64) error {
		n++
		_, hasTs := ctx.Timestamp()
		ctx.Collect(psTick{Subtask: ctx.SubtaskIndex(), N: n, Timer: ts, Now: ctx.CurrentProcessingTime(), HasTs: hasTs})
		if n < 3 {
			ctx.RegisterProcessingTimer(ctx.CurrentProcessingTime()+5, tick)
		}
		return nil
	}
	ctx.RegisterProcessingTimer(ctx.CurrentProcessingTime()+5, tick)
	return nil
}

func TestProcessStreamProcessingTimers(t *testing.T) {
	const p = 2
	env := newEnv(p)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.RatePerSecond(1000))
	ticks := strom.Process(gen, func() strom.ProcessFunction[int64, psTick] { return &psTimers{} })
	out := &liveSink[psTick]{}
	strom.SinkFunc(ticks, out.add)
	runUntil(t, env, "processing timers", func() bool { return len(out.values()) >= 3*p })
	got := out.values()
	require.Len(t, got, 3*p, "each subtask's callback fired three times, then stopped")
	per := map[int][]psTick{}
	for _, tk := range got {
		per[tk.Subtask] = append(per[tk.Subtask], tk)
		require.False(t, tk.HasTs, "a processing-time callback has no record timestamp")
		require.GreaterOrEqual(t, tk.Now, tk.Timer, "it fired once its time had come")
	}
	require.Len(t, per, p)
	for _, ticks := range per {
		for i, tk := range ticks {
			require.Equal(t, i+1, tk.N)
			if i > 0 {
				require.Greater(t, tk.Timer, ticks[i-1].Timer)
			}
		}
	}
}

var psOddTag = strom.NewOutputTag[string]("ps-odd")
var psUnusedTag = strom.NewOutputTag[int]("ps-unused")

// Side outputs get records (with the emitted timestamp) and watermarks.
func TestProcessStreamSideOutputs(t *testing.T) {
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			env := newEnv(p)
			main := strom.Process(psTimed(env, 600), func() strom.ProcessFunction[int, int] {
				return strom.ProcessElementFunc[int, int](func(ctx *strom.ProcessContext[int], v int) error {
					if v%2 == 1 {
						psOddTag.Emit(ctx, fmt.Sprint(v))
						psUnusedTag.Emit(ctx, v) // no stream takes it: dropped
						return nil
					}
					ctx.Collect(v)
					return nil
				})
			}).Name("Split")
			side := strom.SideOutput(main, psOddTag)
			arrivals := strom.KeyedProcessFunc(strom.KeyBy(side, func(s string) string { return s }),
				func(ctx *strom.KeyedContext[string, psArrival], s string) error {
					ts, _ := ctx.Timestamp()
					if fmt.Sprint(ts) != s {
						return fmt.Errorf("side record %s has timestamp %d", s, ts)
					}
					ctx.Collect(psArrival{Ts: ts, Wm: ctx.CurrentWatermark()})
					return nil
				}).Parallelism(1)
			evens, odds := strom.Collect(main), strom.Collect(arrivals)
			mustRun(t, env, "side")
			var wantEven, wantOdd []int
			for v := range 600 {
				if v%2 == 0 {
					wantEven = append(wantEven, v)
				} else {
					wantOdd = append(wantOdd, v)
				}
			}
			require.ElementsMatch(t, wantEven, evens.Values())
			var gotOdd []int
			advanced := 0
			for _, a := range odds.Values() {
				gotOdd = append(gotOdd, int(a.Ts))
				require.Less(t, a.Wm, a.Ts)
				if a.Wm != math.MinInt64 {
					advanced++
				}
				if p == 1 {
					require.Equal(t, a.Ts-2, a.Wm, "the side output got the previous record's watermark before the record")
				}
			}
			require.ElementsMatch(t, wantOdd, gotOdd)
			if p == 1 {
				require.Positive(t, advanced, "watermarks reach the side output")
			}
		})
	}
}

// psFaulty fails (by error or panic) in the stage named by fail.
type psFaulty struct {
	fail   string
	panic  bool
	closed *atomic.Int32
}

var errPS = errors.New("process function broke")

func (f *psFaulty) maybe(stage string) error {
	if f.fail != stage {
		return nil
	}
	if f.panic {
		panic("process function panicked in " + stage)
	}
	return errPS
}

func (f *psFaulty) Open(*strom.ProcessContext[int]) error { return f.maybe("open") }
func (f *psFaulty) ProcessElement(ctx *strom.ProcessContext[int], v int) error {
	if v == 77 {
		if err := f.maybe("element"); err != nil {
			return err
		}
	}
	if v == 5 && f.fail == "timer" {
		ctx.RegisterProcessingTimer(ctx.CurrentProcessingTime(), func(*strom.ProcessContext[int], int64) error { return f.maybe("timer") })
	}
	ctx.Collect(v)
	return nil
}
func (f *psFaulty) OnWatermark(_ *strom.ProcessContext[int], wm int64) error {
	if wm < 50 {
		return nil
	}
	return f.maybe("watermark")
}
func (f *psFaulty) Finish(*strom.ProcessContext[int]) error { return f.maybe("finish") }
func (f *psFaulty) Close() error {
	f.closed.Add(1)
	return f.maybe("close")
}

func TestProcessStreamErrors(t *testing.T) {
	cases := []struct {
		fail    string
		panic   bool
		contain string
	}{
		{fail: "open", contain: "open: process function broke"},
		{fail: "element", contain: "process function broke"},
		{fail: "element", panic: true, contain: "panic: process function panicked in element"},
		{fail: "watermark", contain: "OnWatermark("},
		{fail: "watermark", panic: true, contain: "panic: process function panicked in watermark"},
		{fail: "finish", contain: "finish: process function broke"},
		{fail: "finish", panic: true, contain: "panic: process function panicked in finish"},
		{fail: "close", contain: "close: process function broke"},
		{fail: "timer", contain: "processing timer at"},
		{fail: "timer", panic: true, contain: "panic: process function panicked in timer"},
	}
	for _, c := range cases {
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/panic=%v/p%d", c.fail, c.panic, p), func(t *testing.T) {
				env := newEnv(p)
				var closed atomic.Int32
				// Behind a Map in the same chain, so attribution must name it,
				// not the chain's head. An unbounded generator keeps the job up
				// until a processing timer fires.
				var src strom.Stream[int]
				if c.fail == "timer" {
					src = datagen.FromGenerator(env, func(i int64) int { return int(i) }, datagen.RatePerSecond(1000))
				} else {
					src = psTimed(env, 200)
				}
				m := strom.Map(src, func(v int) int { return v }).Name("Before")
				strom.Discard(strom.Process(m, func() strom.ProcessFunction[int, int] {
					return &psFaulty{fail: c.fail, panic: c.panic, closed: &closed}
				}).Name("Faulty"))
				_, err := run(t, env, "faulty")
				requireTaskFailure(t, err, "faulty", "Faulty")
				require.ErrorContains(t, err, c.contain)
				if !c.panic {
					require.ErrorIs(t, err, errPS, "the user's error is wrapped")
				}
				require.Positive(t, closed.Load(), "Close is always called")
			})
		}
	}
}

func TestProcessStreamNilFunction(t *testing.T) {
	env := newEnv(1)
	strom.Discard(strom.Process(strom.FromSlice(env, rangeSlice(3)), func() strom.ProcessFunction[int, int] { return nil }).Name("Nil"))
	_, err := run(t, env, "nil")
	require.Error(t, err)
	require.ErrorContains(t, err, "newFn returned nil")
}

// pausingSource emits n records quickly, then stays open without data, so
// processing-time callbacks pending after the last record can still fire.
type pausingSource struct{ n int }

func (pausingSource) Bounded() bool { return false }
func (s pausingSource) Splits(p int) ([]strom.Split, error) {
	out := make([]strom.Split, p)
	for i := range out {
		out[i] = split(fmt.Sprint(i))
	}
	return out, nil
}
func (s pausingSource) NewReader(strom.SourceContext, []strom.Split) (strom.SourceReader[int], error) {
	return &pausingReader{n: s.n}, nil
}

type pausingReader struct{ i, n int }

func (r *pausingReader) Read(out strom.SourceOutput[int]) (strom.ReadStatus, error) {
	if r.i >= r.n {
		return strom.ReadStatus{WakeAt: time.Now().Add(time.Hour)}, nil
	}
	out.Collect(r.i)
	r.i++
	return strom.ReadStatus{}, nil
}
func (r *pausingReader) Snapshot() ([]strom.Split, error) { return nil, nil }
func (r *pausingReader) Close() error                     { return nil }

type timeoutFired struct {
	Subtask, Records, Stopped int
	StopAfterFire             bool
}

// inactivity pushes a processing-time timeout back with every record:
// Stop the pending callback, register a new one.
type inactivity struct {
	pending *strom.ProcessingTimer
	records int
	stopped int
}

func (f *inactivity) ProcessElement(ctx *strom.ProcessContext[timeoutFired], v int) error {
	f.records++
	if f.pending.Stop() {
		f.stopped++
	}
	f.pending = ctx.RegisterProcessingTimer(ctx.CurrentProcessingTime()+50, func(ctx *strom.ProcessContext[timeoutFired], ts int64) error {
		ctx.Collect(timeoutFired{Subtask: ctx.SubtaskIndex(), Records: f.records, Stopped: f.stopped, StopAfterFire: f.pending.Stop()})
		return nil
	})
	return nil
}

// Processing-time callbacks of a non-keyed process function can be
// stopped: a timeout pushed back by every record fires once, after the
// last record, and never for the stopped registrations.
func TestProcessProcessingTimerStop(t *testing.T) {
	const p, n = 2, 300
	env := newEnv(p)
	src := strom.FromSource[int](env, pausingSource{n: n}, "Pausing")
	fired := &liveSink[timeoutFired]{}
	strom.SinkFunc(strom.Process(src, func() strom.ProcessFunction[int, timeoutFired] { return &inactivity{} }), fired.add)
	var allFired time.Time
	runUntil(t, env, "timeouts", func() bool {
		if allFired.IsZero() && len(fired.values()) >= p {
			allFired = time.Now()
		}
		// Keep the job running a while longer: a stopped callback that
		// still fired would show up in this time.
		return !allFired.IsZero() && time.Since(allFired) > 150*time.Millisecond
	})
	got := fired.values()
	require.Len(t, got, p, "one timeout per subtask: %+v", got)
	for _, f := range got {
		require.Equal(t, n, f.Records, "the timeout fired after the last record")
		require.Equal(t, n-1, f.Stopped, "every earlier registration was stopped before it fired")
		require.False(t, f.StopAfterFire, "Stop of a timer that is firing reports false")
	}
}
