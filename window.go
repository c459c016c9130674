package strom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// Windowed is a keyed stream grouped into windows: the input of
// WindowReduce, WindowReduceWith, WindowAggregate, WindowAggregateWith,
// WindowProcess and WindowProcessWith (Flink's WindowedStream). Its
// configuration methods return a modified copy, so they chain:
//
//	w := strom.Window(keyed, window.Tumbling(time.Minute)).
//		AllowedLateness(10 * time.Second).
//		SideOutputLateData(lateTag)
//
// The window operator follows Flink's WindowOperator. For every record it
// asks the assigner for the record's windows; per key and window it keeps
// the window's contents in keyed state (an accumulator for the incremental
// functions, the records for WindowProcess or with an Evictor), and asks
// the trigger whether to fire. When a window fires, the function's results
// are emitted with the timestamp window.MaxTimestamp() (End − 1).
//
// With event-time assigners, a window is cleaned up (its state dropped)
// once the watermark passes MaxTimestamp + allowed lateness. Until then a
// late record — one whose window has already fired — is added and, with the
// default trigger, fires the window again at once with the updated
// contents. A record whose windows are all cleaned up already is late data:
// it goes to the late-data side output if one is set, else it is dropped and
// counted (logged when the operator closes). Event-time windows need records
// with timestamps (AssignTimestamps); a record without one fails the job.
//
// Processing-time windows fire when the wall clock passes their end; at the
// end of a bounded input they fire at once, so no contents are lost.
type Windowed[T any, K comparable] struct {
	keyed    Keyed[T, K]
	assigner window.Assigner
	trigger  window.Trigger
	evictor  window.Evictor
	lateness int64
	lateTag  string
	name     string
	all      bool // WindowAll: one constant key, parallelism 1
}

// AllWindowed is a non-keyed stream grouped into windows (Flink's
// AllWindowedStream), made by WindowAll. It is a Windowed stream with a
// single constant key, so it has the same settings and takes the same
// window functions (WindowReduce, WindowAggregate, WindowProcess, ...);
// their key is struct{}.
type AllWindowed[T any] = Windowed[T, struct{}]

// Window groups a keyed stream into the windows of assigner a (see package
// window): window.Tumbling, window.Sliding, window.Session and their
// processing-time variants, or a custom window.Assigner.
func Window[T any, K comparable](k Keyed[T, K], a window.Assigner) Windowed[T, K] {
	if a == nil {
		k.stream.env.fail(errorf("Window: nil assigner"))
	} else if err := validate(a); err != nil {
		k.stream.env.fail(errorf("Window: %w", err))
	}
	return Windowed[T, K]{keyed: k, assigner: a}
}

// WindowAll groups a whole (non-keyed) stream into the windows of assigner
// a (Flink's windowAll): every window holds the records of all subtasks of
// s. The window operator runs with parallelism 1, as in Flink: setting
// another parallelism on its result is an error. It is the keyed window
// operator with one constant key, so everything said of Windowed holds.
// Prefer Window on a keyed stream where the data allows it: one subtask
// processes all records here.
func WindowAll[T any](s Stream[T], a window.Assigner) AllWindowed[T] {
	k := Keyed[T, struct{}]{stream: s, key: func(T) struct{} { return struct{}{} }, hasher: func(struct{}) uint64 { return 0 }}
	w := Window(k, a)
	w.all = true
	return w
}

func validate(v any) error {
	if v, ok := v.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

func (w Windowed[T, K]) env() *Environment { return w.keyed.stream.env }

// Trigger replaces the assigner's default trigger (see window.Trigger).
// With merging (session) windows the trigger must support merging.
func (w Windowed[T, K]) Trigger(t window.Trigger) Windowed[T, K] {
	if t == nil {
		w.env().fail(errorf("Window: nil trigger"))
		return w
	}
	w.trigger = t
	return w
}

// Evictor removes elements from each window before and/or after the
// window function runs (see window.Evictor; Flink's evictor). With an
// evictor the operator keeps every element of a window, even for
// WindowReduce and WindowAggregate (which then fold what the evictor left
// when the window fires), so it costs the memory of WindowProcess.
func (w Windowed[T, K]) Evictor(e window.Evictor) Windowed[T, K] {
	if e == nil {
		w.env().fail(errorf("Window: nil evictor"))
		return w
	}
	if err := validate(e); err != nil {
		w.env().fail(errorf("Window: %w", err))
		return w
	}
	w.evictor = e
	return w
}

// AllowedLateness keeps event-time windows (and their state) for d after
// the watermark passed their end, so records up to d late still count and
// re-fire the window with its updated contents. It has no effect on
// processing-time windows. The default is 0.
func (w Windowed[T, K]) AllowedLateness(d time.Duration) Windowed[T, K] {
	if d < 0 {
		w.env().fail(errorf("Window: allowed lateness %v must not be negative", d))
		return w
	}
	w.lateness = wholeMillis(w.keyed.stream.env, "Window: allowed lateness", d)
	return w
}

// SideOutputLateData sends records that arrive after all their windows
// were cleaned up (later than the allowed lateness) to the side output tag,
// with their timestamps, instead of dropping them. Read them with
// SideOutput(result, tag).
func (w Windowed[T, K]) SideOutputLateData(tag OutputTag[T]) Windowed[T, K] {
	w.lateTag = tag.id
	return w
}

// Name names the window operator (default "WindowReduce",
// "WindowAggregate" or "WindowProcess"; "WindowAllReduce" and so on after
// WindowAll).
func (w Windowed[T, K]) Name(name string) Windowed[T, K] {
	w.name = name
	return w
}

func (w Windowed[T, K]) effectiveTrigger() window.Trigger {
	if w.trigger != nil {
		return w.trigger
	}
	if w.assigner == nil {
		return window.EventTimeTrigger()
	}
	return w.assigner.DefaultTrigger()
}

// windowFuncs are what distinguishes the window functions: how a record is
// added to a window's state S, how two states merge (nil if they cannot),
// what a firing emits, and what happens when a window is cleaned up. One
// windowFuncs value belongs to one subtask.
type windowFuncs[T any, K comparable, S, OUT any] struct {
	add   func(s *S, v T, ts int64, created bool)
	merge func(dst, src *S)
	emit  func(ctx *WindowContext[K, OUT], s *S) error
	// clear is the user's Clear, called when a window is cleaned up.
	clear func(ctx *WindowContext[K, OUT]) error
	close func() error
	// userCtx says the user function sees the WindowContext, so it may
	// keep per-window state, which the operator drops with the window.
	userCtx bool
}

// wholeFn is a window function over a window's whole contents: what runs
// when a window of records (WindowProcess, or any function with an
// evictor) fires.
type wholeFn[T any, K comparable, OUT any] struct {
	process func(ctx *WindowContext[K, OUT], elems []T) error
	clear   func(ctx *WindowContext[K, OUT]) error
	close   func() error
	userCtx bool
}

type windowOp[T any, K comparable, S, OUT any] struct {
	base[OUT]
	w    Windowed[T, K]
	fns  windowFuncs[T, K, S, OUT]
	core windowCore[K, S]
	late runtime.Output[T]
	// sides are the consumed side outputs (late data and what the window
	// function emits): watermarks reach them too.
	sides []eventOutput
	wctx  WindowContext[K, OUT]
}

func (o *windowOp[T, K, S, OUT]) Open(ctx *runtime.Context) error {
	if o.w.lateTag != "" {
		o.late, _ = ctx.SideOutput(o.w.lateTag).(runtime.Output[T])
	}
	o.sides = consumedSides(ctx, o.sides[:0])
	spec := windowSpec{assigner: o.w.assigner, trigger: o.w.effectiveTrigger(), lateness: o.w.lateness}
	b := o.w.keyed.newBackend(ctx)
	if err := o.core.open(ctx, b, spec, o.fns.merge, o.fire); err != nil {
		return err
	}
	o.wctx = WindowContext[K, OUT]{out: o.out, rt: ctx, backend: b, timers: o.core.timers,
		hasher: o.w.keyed.hasher, merging: o.core.merger != nil}
	if o.fns.userCtx {
		o.core.onClear = o.clearWindow
	}
	return nil
}

// consumedSides appends the operator's consumed side outputs to dst.
func consumedSides(ctx *runtime.Context, dst []eventOutput) []eventOutput {
	for _, so := range ctx.SideOutputs() {
		if e, ok := so.(eventOutput); ok {
			dst = append(dst, e)
		}
	}
	return dst
}

// fire runs the window function on window win of key.
func (o *windowOp[T, K, S, OUT]) fire(key K, win window.TimeWindow, s *S) {
	c := o.wctx.at(key, win)
	if err := o.fns.emit(c, s); err != nil {
		runtime.Fail(o.core.name, err)
	}
}

// clearWindow runs the user's Clear for a window being cleaned up and
// drops its per-window state.
func (o *windowOp[T, K, S, OUT]) clearWindow(key K, win window.TimeWindow) {
	c := o.wctx.at(key, win)
	if o.fns.clear != nil {
		if err := o.fns.clear(c); err != nil {
			runtime.Fail(o.core.name, fmt.Errorf("Clear: %w", err))
		}
	}
	c.dropWindowState()
}

func (o *windowOp[T, K, S, OUT]) ProcessElement(v T, ts int64) {
	o.core.backend.SetCurrentKey(o.w.keyed.key(v))
	if addElement(&o.core, v, ts, o.fns.add) && o.core.isElementLate(ts) {
		if o.late != nil {
			o.late.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *windowOp[T, K, S, OUT]) ProcessWatermark(wm int64) {
	o.core.timers.AdvanceWatermark(wm)
	o.out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *windowOp[T, K, S, OUT]) ProcessIdle() {
	o.out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *windowOp[T, K, S, OUT]) Finish() error { o.core.finish(); return nil }

func (o *windowOp[T, K, S, OUT]) Close() error {
	o.core.close()
	if o.fns.close != nil {
		return o.fns.close()
	}
	return nil
}

// addWindowOperator adds the window operator of w, checking the
// configuration at build time so mistakes fail Execute before anything runs.
// newFns makes the functions of one subtask; canMerge says whether its
// window state merges (merge != nil).
func addWindowOperator[T any, K comparable, S, OUT any](w Windowed[T, K], what string, canMerge bool, newFns func() windowFuncs[T, K, S, OUT]) Stream[OUT] {
	env := w.env()
	if w.all {
		what = "WindowAll" + strings.TrimPrefix(what, "Window")
	}
	name := w.name
	if name == "" {
		name = what
	}
	if _, ok := w.assigner.(window.MergingAssigner); ok {
		if !w.effectiveTrigger().CanMerge() {
			env.fail(errorf("%s %q: trigger %v cannot merge windows, but assigner %v merges them", what, name, w.effectiveTrigger(), w.assigner))
		}
		if !canMerge {
			env.fail(errorf("%s %q: assigner %v merges windows, so the Aggregator needs a Merge function", what, name, w.assigner))
		}
	}
	out := addKeyedOperator(w.keyed, "window", name, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[T], error) {
		return &windowOp[T, K, S, OUT]{base: base[OUT]{out}, w: w, fns: newFns()}, nil
	})
	if w.lateTag != "" {
		out.node().SideOutputTypes = map[string]runtime.TypeOps{w.lateTag: runtime.Ops[T]{}}
	}
	if w.all {
		out = out.Parallelism(1)
		out.node().NonParallel = "WindowAll runs with parallelism 1, as Flink's windowAll"
	}
	return out
}

// addWindowFunction adds the window operator of a function that has an
// incremental form (newInc, whose state S merges if canMerge) and a form
// over a window's whole contents (newWhole), which runs instead when the
// windows have an evictor.
func addWindowFunction[T any, K comparable, S, OUT any](w Windowed[T, K], what string, canMerge bool,
	newInc func() windowFuncs[T, K, S, OUT], newWhole func() wholeFn[T, K, OUT]) Stream[OUT] {
	if w.evictor != nil {
		ev := w.evictor
		return addWindowOperator(w, what, true, func() windowFuncs[T, K, []tsVal[T], OUT] {
			return evictingFuncs(ev, newWhole())
		})
	}
	return addWindowOperator(w, what, canMerge, newInc)
}

// bufferedFuncs keep a window's records and run f over them when it fires.
func bufferedFuncs[T any, K comparable, OUT any](f wholeFn[T, K, OUT]) windowFuncs[T, K, []T, OUT] {
	return windowFuncs[T, K, []T, OUT]{
		add:   func(s *[]T, v T, _ int64, _ bool) { *s = append(*s, v) },
		merge: func(dst, src *[]T) { *dst = append(*dst, *src...) },
		emit: func(ctx *WindowContext[K, OUT], s *[]T) error {
			return f.process(ctx, *s)
		},
		clear: f.clear, close: f.close, userCtx: f.userCtx,
	}
}

func reduceFuncs[T any, K comparable, OUT any](fn func(a, b T) T, emit func(ctx *WindowContext[K, OUT], s *T) error) windowFuncs[T, K, T, OUT] {
	return windowFuncs[T, K, T, OUT]{
		add: func(s *T, v T, _ int64, created bool) {
			if created {
				*s = v
			} else {
				*s = fn(*s, v)
			}
		},
		merge: func(dst, src *T) { *dst = fn(*dst, *src) },
		emit:  emit,
	}
}

// reduceAll folds elems with fn; false if there are none.
func reduceAll[T any](fn func(a, b T) T, elems []T) (T, bool) {
	var acc T
	if len(elems) == 0 {
		return acc, false
	}
	acc = elems[0]
	for _, v := range elems[1:] {
		acc = fn(acc, v)
	}
	return acc, true
}

// WindowReduce combines the records of each key and window with fn,
// incrementally (one value per key and window is kept), and emits the
// result when the window fires, with timestamp window.MaxTimestamp().
// With an evictor, it folds the records the evictor left (and emits
// nothing if it left none).
func WindowReduce[T any, K comparable](w Windowed[T, K], fn func(a, b T) T) Stream[T] {
	if fn == nil {
		w.env().fail(errorf("WindowReduce: nil reduce function"))
	}
	return addWindowFunction(w, "WindowReduce", true,
		func() windowFuncs[T, K, T, T] {
			return reduceFuncs(fn, func(ctx *WindowContext[K, T], s *T) error {
				ctx.Collect(*s)
				return nil
			})
		},
		func() wholeFn[T, K, T] {
			return wholeFn[T, K, T]{process: func(ctx *WindowContext[K, T], elems []T) error {
				if r, ok := reduceAll(fn, elems); ok {
					ctx.Collect(r)
				}
				return nil
			}}
		})
}

// WindowReduceWith reduces incrementally like WindowReduce and passes each
// firing's result to fn with the window's context (Flink's
// reduce(ReduceFunction, ProcessWindowFunction)): fn emits any number of
// records with ctx.Collect (timestamp window.MaxTimestamp()) and may use
// the context's state and side outputs. An error from fn fails the job.
func WindowReduceWith[T any, K comparable, OUT any](w Windowed[T, K], reduce func(a, b T) T,
	fn func(ctx *WindowContext[K, OUT], result T) error) Stream[OUT] {
	if reduce == nil {
		w.env().fail(errorf("WindowReduceWith: nil reduce function"))
	}
	if fn == nil {
		w.env().fail(errorf("WindowReduceWith: nil window function"))
	}
	return addWindowFunction(w, "WindowReduce", true,
		func() windowFuncs[T, K, T, OUT] {
			f := reduceFuncs(reduce, func(ctx *WindowContext[K, OUT], s *T) error { return fn(ctx, *s) })
			f.userCtx = true
			return f
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{userCtx: true, process: func(ctx *WindowContext[K, OUT], elems []T) error {
				if r, ok := reduceAll(reduce, elems); ok {
					return fn(ctx, r)
				}
				return nil
			}}
		})
}

func checkAggregator[T, ACC, OUT any](env *Environment, what string, agg state.Aggregator[T, ACC, OUT]) {
	if agg.Create == nil || agg.Add == nil || agg.Result == nil {
		env.fail(errorf("%s: the Aggregator needs Create, Add and Result", what))
	}
}

func aggFuncs[T any, K comparable, ACC, R, OUT any](agg state.Aggregator[T, ACC, R],
	emit func(ctx *WindowContext[K, OUT], s *ACC) error) windowFuncs[T, K, ACC, OUT] {
	f := windowFuncs[T, K, ACC, OUT]{
		add: func(s *ACC, v T, _ int64, created bool) {
			if created {
				*s = agg.Create()
			}
			*s = agg.Add(*s, v)
		},
		emit: emit,
	}
	if agg.Merge != nil {
		f.merge = func(dst, src *ACC) { *dst = agg.Merge(*dst, *src) }
	}
	return f
}

// aggregateAll aggregates elems from a new accumulator.
func aggregateAll[T, ACC, R any](agg state.Aggregator[T, ACC, R], elems []T) R {
	acc := agg.Create()
	for _, v := range elems {
		acc = agg.Add(acc, v)
	}
	return agg.Result(acc)
}

// WindowAggregate aggregates the records of each key and window
// incrementally with agg (Flink's aggregate(AggregateFunction)): one
// accumulator per key and window, Add per record, Result when the window
// fires (emitted with timestamp window.MaxTimestamp()). Merging (session)
// windows combine accumulators with agg.Merge, which must then be set.
// With an evictor, a firing aggregates the records the evictor left into a
// new accumulator.
func WindowAggregate[T any, K comparable, ACC, OUT any](w Windowed[T, K], agg state.Aggregator[T, ACC, OUT]) Stream[OUT] {
	checkAggregator(w.env(), "WindowAggregate", agg)
	return addWindowFunction(w, "WindowAggregate", agg.Merge != nil,
		func() windowFuncs[T, K, ACC, OUT] {
			return aggFuncs[T, K](agg, func(ctx *WindowContext[K, OUT], s *ACC) error {
				ctx.Collect(agg.Result(*s))
				return nil
			})
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{process: func(ctx *WindowContext[K, OUT], elems []T) error {
				ctx.Collect(aggregateAll(agg, elems))
				return nil
			}}
		})
}

// WindowAggregateWith aggregates incrementally like WindowAggregate and
// passes each firing's result to fn with the window's context (Flink's
// aggregate(AggregateFunction, ProcessWindowFunction)): fn emits any number
// of records with ctx.Collect (timestamp window.MaxTimestamp()) and may use
// the context's state and side outputs. An error from fn fails the job.
func WindowAggregateWith[T any, K comparable, ACC, R, OUT any](w Windowed[T, K], agg state.Aggregator[T, ACC, R],
	fn func(ctx *WindowContext[K, OUT], result R) error) Stream[OUT] {
	checkAggregator(w.env(), "WindowAggregateWith", agg)
	if fn == nil {
		w.env().fail(errorf("WindowAggregateWith: nil window function"))
	}
	return addWindowFunction(w, "WindowAggregate", agg.Merge != nil,
		func() windowFuncs[T, K, ACC, OUT] {
			f := aggFuncs[T, K](agg, func(ctx *WindowContext[K, OUT], s *ACC) error {
				return fn(ctx, agg.Result(*s))
			})
			f.userCtx = true
			return f
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{userCtx: true, process: func(ctx *WindowContext[K, OUT], elems []T) error {
				return fn(ctx, aggregateAll(agg, elems))
			}}
		})
}

// ProcessWindowFunction processes all records of a window when it fires
// (Flink's ProcessWindowFunction). Run it with WindowProcessWith, or a
// plain function with WindowProcess.
//
// It may also implement WindowClearer (Clear, called when a window is
// cleaned up) and Closer (Close, at the end). Every call runs on the
// subtask's goroutine: a function needs no locks.
type ProcessWindowFunction[K comparable, T, OUT any] interface {
	// Process is called when a window fires, with the window's records in
	// arrival order (elems is only valid during the call). It emits records
	// with ctx.Collect; an error fails the job.
	Process(ctx *WindowContext[K, OUT], elems []T) error
}

// WindowClearer is implemented by window functions that keep state of
// their own per window: Clear is called once per key and window when the
// window is cleaned up — when the watermark passes its end plus the
// allowed lateness (event time) or the clock passes its end (processing
// time) — before the operator drops the window's contents and per-window
// state (Flink's ProcessWindowFunction.clear). A trigger's Purge does not
// call it. ctx.Collect in Clear emits with the window's max timestamp,
// which is late for event-time operators downstream.
type WindowClearer[K comparable, OUT any] interface {
	Clear(ctx *WindowContext[K, OUT]) error
}

// WindowProcessFunc adapts a plain function to ProcessWindowFunction.
type WindowProcessFunc[K comparable, T, OUT any] func(ctx *WindowContext[K, OUT], elems []T) error

// Process calls f.
func (f WindowProcessFunc[K, T, OUT]) Process(ctx *WindowContext[K, OUT], elems []T) error {
	return f(ctx, elems)
}

// WindowProcess buffers every record of each key and window and calls fn
// with all of them when the window fires (Flink's ProcessWindowFunction):
// flexible, but it keeps all records in state, so prefer the incremental
// functions when they suffice. elems is in arrival order and only valid
// during the call. fn emits with ctx.Collect (timestamp
// window.MaxTimestamp()) and may use the context's key, window, times,
// state and side outputs; an error from fn fails the job.
func WindowProcess[T any, K comparable, OUT any](w Windowed[T, K], fn func(ctx *WindowContext[K, OUT], elems []T) error) Stream[OUT] {
	if fn == nil {
		w.env().fail(errorf("WindowProcess: nil window function"))
	}
	return WindowProcessWith(w, func() ProcessWindowFunction[K, T, OUT] { return WindowProcessFunc[K, T, OUT](fn) })
}

// WindowProcessWith runs a ProcessWindowFunction on the windows of w, like
// WindowProcess; newFn is called once per parallel subtask, so the
// function may keep per-subtask fields. If the function implements
// WindowClearer, its Clear runs when each window is cleaned up; if it
// implements Closer, Close runs when the operator closes.
func WindowProcessWith[T any, K comparable, OUT any](w Windowed[T, K], newFn func() ProcessWindowFunction[K, T, OUT]) Stream[OUT] {
	if newFn == nil {
		w.env().fail(errorf("WindowProcess: nil function factory"))
	}
	whole := func() wholeFn[T, K, OUT] {
		pf := newFn()
		if pf == nil {
			return wholeFn[T, K, OUT]{userCtx: true, process: func(*WindowContext[K, OUT], []T) error {
				return errors.New("WindowProcessWith: the factory returned a nil function")
			}}
		}
		f := wholeFn[T, K, OUT]{process: pf.Process, userCtx: true}
		if c, ok := pf.(WindowClearer[K, OUT]); ok {
			f.clear = c.Clear
		}
		if c, ok := pf.(Closer); ok {
			f.close = c.Close
		}
		return f
	}
	return addWindowFunction(w, "WindowProcess", true,
		func() windowFuncs[T, K, []T, OUT] { return bufferedFuncs(whole()) }, whole)
}

// ---- the window operator's core, shared by the window functions and the
// window join -------------------------------------------------------------

type windowSpec struct {
	assigner window.Assigner
	trigger  window.Trigger
	lateness int64
}

// Fast paths for the default triggers: their per-record work (register a
// timer at the window's end) is only needed when a window's state is
// created, which saves a timer-set lookup per record and window.
const (
	fastNone = iota
	fastEventTime
	fastProcessingTime
)

// trigNS is the namespace of trigger state: the window and the state name.
type trigNS struct {
	W    window.TimeWindow
	Name string
}

// windowCore is Flink's WindowOperator minus the record type: the windows
// of each key with their state S (a windowStore), the trigger with its
// per-window state, the timers (one runtime.Timers namespaced by window)
// and, for merging assigners, each key's MergingWindowSet. All of it is
// keyed state registered with the subtask's backend. It runs on the task
// goroutine; the operator sets the current key before calling it.
type windowCore[K comparable, S any] struct {
	windowSpec
	merger    window.MergingAssigner
	eventTime bool
	fast      int
	name      string
	rt        *runtime.Context
	backend   *statebackend.Keyed[K]
	contents  *windowStore[K, S]
	tstate    *statebackend.Namespaced[K, trigNS, int64]
	tnames    []string
	sets      *statebackend.Table[K, *mergingSet]
	timers    *runtime.Timers[K, window.TimeWindow]
	tctx      triggerCtx[K, S]
	wins      []window.TimeWindow
	mscratch  mergeScratch
	onMergeFn mergeFunc
	merge     func(dst, src *S)
	emit      func(key K, w window.TimeWindow, s *S)
	// onClear, if set, is called when a window of the current key is
	// cleaned up, after its contents and trigger state are dropped.
	onClear func(key K, w window.TimeWindow)
	dropped int64
	// stateCodec builds the codec of S for snapshots (nil: codec.For[S]);
	// set before open by operators whose S the default codec cannot handle.
	stateCodec func() (codec.Codec[S], error)
}

func (c *windowCore[K, S]) open(ctx *runtime.Context, b *statebackend.Keyed[K], spec windowSpec, merge func(dst, src *S), emit func(K, window.TimeWindow, *S)) error {
	if spec.assigner == nil {
		return errors.New("window operator without assigner")
	}
	c.windowSpec = spec
	c.name = ctx.OperatorName
	c.rt = ctx
	c.backend = b
	c.merge, c.emit = merge, emit
	c.eventTime = spec.assigner.IsEventTime()
	c.merger, _ = spec.assigner.(window.MergingAssigner)
	if c.merger != nil {
		if merge == nil {
			return fmt.Errorf("assigner %v merges windows but the window state cannot merge", spec.assigner)
		}
		if !spec.trigger.CanMerge() {
			return fmt.Errorf("trigger %v cannot merge windows", spec.trigger)
		}
	} else {
		switch spec.trigger {
		case window.EventTimeTrigger():
			if c.eventTime {
				c.fast = fastEventTime
			}
		case window.ProcessingTimeTrigger():
			if !c.eventTime {
				c.fast = fastProcessingTime
			}
		}
	}
	c.contents = newWindowStore[K, S](b)
	c.contents.t.SetValueCodecFunc(keyWindowsCodecFor(c.stateCodec))
	if _, err := b.Register("window-contents", c.contents.t); err != nil {
		return err
	}
	c.tstate = statebackend.NewNamespaced[K, trigNS, int64](b)
	if _, err := b.Register("window-trigger-state", c.tstate); err != nil {
		return err
	}
	if c.merger != nil {
		c.sets = statebackend.NewTable[K, *mergingSet](b.Range().Len())
		c.sets.SetCodecs(nil, mergingSetCodec{})
		if _, err := b.Register("window-merging-sets", c.sets); err != nil {
			return err
		}
		c.mscratch.init()
		c.onMergeFn = c.onMerge
	}
	c.timers = runtime.NewTimers[K, window.TimeWindow](b, ctx.Time)
	c.timers.OnEventTime = func(t runtime.Timer[K, window.TimeWindow]) { c.onTimer(t, true) }
	c.timers.OnProcessingTime = func(t runtime.Timer[K, window.TimeWindow]) { c.onTimer(t, false) }
	if _, err := b.Register(runtime.TimersStateName, c.timers.State()); err != nil {
		return err
	}
	c.tctx.c = c
	return nil
}

// CurrentProcessingTime implements window.AssignerContext.
func (c *windowCore[K, S]) CurrentProcessingTime() int64 { return c.rt.Time.Now() }

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// cleanupTime is when a window's state is dropped: its end plus the
// allowed lateness on event time, its end on processing time.
func (c *windowCore[K, S]) cleanupTime(w window.TimeWindow) int64 {
	if c.eventTime {
		return satAdd(w.MaxTimestamp(), c.lateness)
	}
	return w.MaxTimestamp()
}

func (c *windowCore[K, S]) isWindowLate(w window.TimeWindow) bool {
	return c.eventTime && c.cleanupTime(w) <= c.timers.CurrentWatermark()
}

func (c *windowCore[K, S]) isElementLate(ts int64) bool {
	return c.eventTime && satAdd(ts, c.lateness) <= c.timers.CurrentWatermark()
}

func (c *windowCore[K, S]) registerCleanupTimer(w window.TimeWindow) {
	t := c.cleanupTime(w)
	if t == math.MaxInt64 {
		return // never cleaned up (the window ends at the end of time)
	}
	if c.eventTime {
		c.timers.RegisterEventTime(w, t)
	} else {
		c.timers.RegisterProcessingTime(w, t)
	}
}

func (c *windowCore[K, S]) deleteCleanupTimer(w window.TimeWindow) {
	t := c.cleanupTime(w)
	if t == math.MaxInt64 {
		return
	}
	if c.eventTime {
		c.timers.DeleteEventTime(w, t)
	} else {
		c.timers.DeleteProcessingTime(w, t)
	}
}

var errNoTimestamp = errors.New("record without event timestamp in an event-time window: " +
	"assign timestamps with AssignTimestamps or use a processing-time window assigner")

// addElement adds a record of the current key to its windows and runs the
// trigger on each. It reports whether the record went into no window
// because they were all late (Flink's isSkippedElement).
func addElement[K comparable, S, T any](c *windowCore[K, S], v T, ts int64, add func(*S, T, int64, bool)) bool {
	if c.eventTime && ts == runtime.NoTimestamp {
		runtime.Fail(c.name, errNoTimestamp)
	}
	c.wins = c.assigner.AssignWindows(ts, c, c.wins[:0])
	if c.merger != nil {
		return addMerging(c, v, ts, add)
	}
	skipped := true
	wm := c.timers.CurrentWatermark()
	kw := c.contents.get(true) // the key's windows: one lookup per record
	for _, w := range c.wins {
		if c.eventTime && c.cleanupTime(w) <= wm {
			continue
		}
		skipped = false
		s, created := kw.upsert(w)
		add(s, v, ts, created)
		r := window.Continue
		switch c.fast {
		case fastEventTime:
			if w.MaxTimestamp() <= wm {
				r = window.Fire
			} else if created {
				c.timers.RegisterEventTime(w, w.MaxTimestamp())
			}
			if created && c.lateness > 0 {
				c.registerCleanupTimer(w)
			}
		case fastProcessingTime:
			if created {
				c.timers.RegisterProcessingTime(w, w.MaxTimestamp())
			}
		default:
			c.tctx.w = w
			r = c.trigger.OnElement(ts, w, &c.tctx)
			c.registerCleanupTimer(w)
		}
		if r.IsFire() {
			c.emit(c.backend.CurrentKey(), w, s)
		}
		if r.IsPurge() {
			kw.remove(w)
		}
	}
	c.contents.tidy(kw)
	return skipped
}

func addMerging[K comparable, S, T any](c *windowCore[K, S], v T, ts int64, add func(*S, T, int64, bool)) bool {
	kg, key := c.backend.KeyGroupIndex(), c.backend.CurrentKey()
	set, ok := c.sets.Get(kg, key)
	if !ok {
		set = &mergingSet{}
		c.sets.Put(kg, key, set)
	}
	skipped := true
	for _, nw := range c.wins {
		actual := set.addWindow(nw, c.merger, &c.mscratch, c.onMergeFn)
		if c.isWindowLate(actual) {
			set.retire(actual)
			continue
		}
		skipped = false
		sw, _ := set.stateWindow(actual)
		kw := c.contents.get(true)
		s, created := kw.upsert(sw)
		add(s, v, ts, created)
		c.tctx.w = actual
		r := c.trigger.OnElement(ts, actual, &c.tctx)
		if r.IsFire() {
			c.emit(key, actual, s)
		}
		if r.IsPurge() {
			kw.remove(sw)
		}
		c.registerCleanupTimer(actual)
		c.contents.tidy(kw)
	}
	if len(set.pairs) == 0 {
		c.sets.Delete(kg, key)
	}
	return skipped
}

// onMerge is the merge function of the MergingWindowSet: windows merged
// into result (stateResult holds the merged contents from now on).
func (c *windowCore[K, S]) onMerge(result window.TimeWindow, merged []window.TimeWindow, stateResult window.TimeWindow, mergedStates []window.TimeWindow) {
	if c.eventTime && c.cleanupTime(result) <= c.timers.CurrentWatermark() {
		runtime.Fail(c.name, fmt.Errorf("merging windows into %v: the end of an event-time window cannot become earlier than the current watermark %d by merging", result, c.timers.CurrentWatermark()))
	}
	if !c.eventTime && result.MaxTimestamp() <= c.CurrentProcessingTime() {
		runtime.Fail(c.name, fmt.Errorf("merging windows into %v: the end of a processing-time window cannot become earlier than the current processing time by merging", result))
	}
	c.tctx.w, c.tctx.merged = result, merged
	c.trigger.OnMerge(result, &c.tctx)
	c.tctx.merged = nil
	for _, m := range merged {
		c.tctx.w = m
		c.trigger.Clear(m, &c.tctx)
		c.dropTriggerState(m)
		c.deleteCleanupTimer(m)
	}
	// Merge the contents of the merged state windows into stateResult.
	kw := c.contents.get(false)
	if kw == nil {
		return
	}
	var acc S
	has := false
	if p := kw.get(stateResult); p != nil {
		acc, has = *p, true
	}
	for _, sw := range mergedStates {
		p := kw.get(sw)
		if p == nil {
			continue
		}
		if has {
			c.merge(&acc, p)
		} else {
			acc, has = *p, true
		}
		kw.remove(sw)
	}
	if has {
		p, _ := kw.upsert(stateResult)
		*p = acc
	}
}

func (c *windowCore[K, S]) onTimer(t runtime.Timer[K, window.TimeWindow], eventTime bool) {
	w := t.NS
	sw := w
	var set *mergingSet
	if c.merger != nil {
		var ok bool
		if set, ok = c.sets.Get(c.backend.KeyGroupIndex(), t.Key); !ok {
			return
		}
		if sw, ok = set.stateWindow(w); !ok {
			return // a timer of a window that was merged away
		}
	}
	c.tctx.w = w
	var r window.TriggerResult
	if eventTime {
		r = c.trigger.OnEventTime(t.TS, w, &c.tctx)
	} else {
		r = c.trigger.OnProcessingTime(t.TS, w, &c.tctx)
	}
	kw := c.contents.get(false)
	if r.IsFire() {
		if s := kw.get(sw); s != nil {
			c.emit(t.Key, w, s)
		}
	}
	if r.IsPurge() {
		kw.remove(sw)
	}
	if eventTime == c.eventTime && t.TS == c.cleanupTime(w) {
		kw.remove(sw)
		c.clearAll(w, set)
		if c.onClear != nil {
			c.onClear(t.Key, w)
		}
	}
	c.contents.tidy(kw)
}

// clearAll drops the trigger state and merging-set entry of window w of
// the current key (the caller drops its contents).
func (c *windowCore[K, S]) clearAll(w window.TimeWindow, set *mergingSet) {
	if c.fast == fastNone {
		// The default triggers' Clear deletes their timer at the window's
		// end, which has fired by the time the window is cleaned up.
		c.tctx.w = w
		c.trigger.Clear(w, &c.tctx)
		c.dropTriggerState(w)
	}
	if set != nil {
		set.retire(w)
		if len(set.pairs) == 0 {
			c.sets.Delete(c.backend.KeyGroupIndex(), c.backend.CurrentKey())
		}
	}
}

// dropTriggerState removes trigger state the trigger left behind.
func (c *windowCore[K, S]) dropTriggerState(w window.TimeWindow) {
	for _, n := range c.tnames {
		c.tstate.Delete(trigNS{W: w, Name: n})
	}
}

// finish fires what processing-time windows hold at the end of input.
func (c *windowCore[K, S]) finish() {
	if c.timers != nil && !c.eventTime {
		c.timers.DrainProcessingTimers(math.MaxInt64)
	}
}

func (c *windowCore[K, S]) close() {
	if c.dropped > 0 && c.rt != nil {
		c.rt.Logger.Info("late records dropped", "count", c.dropped)
	}
}

// triggerCtx is the window.TriggerContext (and OnMergeContext) of the
// current key and window w.
type triggerCtx[K comparable, S any] struct {
	c      *windowCore[K, S]
	w      window.TimeWindow
	merged []window.TimeWindow
}

func (t *triggerCtx[K, S]) CurrentWatermark() int64 { return t.c.timers.CurrentWatermark() }
func (t *triggerCtx[K, S]) CurrentProcessingTime() int64 {
	return t.c.rt.Time.Now()
}
func (t *triggerCtx[K, S]) RegisterEventTimeTimer(ts int64) { t.c.timers.RegisterEventTime(t.w, ts) }
func (t *triggerCtx[K, S]) DeleteEventTimeTimer(ts int64)   { t.c.timers.DeleteEventTime(t.w, ts) }
func (t *triggerCtx[K, S]) RegisterProcessingTimeTimer(ts int64) {
	t.c.timers.RegisterProcessingTime(t.w, ts)
}
func (t *triggerCtx[K, S]) DeleteProcessingTimeTimer(ts int64) {
	t.c.timers.DeleteProcessingTime(t.w, ts)
}

func (t *triggerCtx[K, S]) State(name string) (int64, bool) {
	if p := t.c.tstate.Get(trigNS{W: t.w, Name: name}); p != nil {
		return *p, true
	}
	return 0, false
}

func (t *triggerCtx[K, S]) SetState(name string, v int64) {
	p, created := t.c.tstate.Upsert(trigNS{W: t.w, Name: name})
	*p = v
	if created {
		for _, n := range t.c.tnames {
			if n == name {
				return
			}
		}
		t.c.tnames = append(t.c.tnames, name)
	}
}

func (t *triggerCtx[K, S]) ClearState(name string) { t.c.tstate.Delete(trigNS{W: t.w, Name: name}) }

func (t *triggerCtx[K, S]) MergeState(name string, merge func(a, b int64) int64) {
	v, has := t.State(name)
	for _, m := range t.merged {
		k := trigNS{W: m, Name: name}
		p := t.c.tstate.Get(k)
		if p == nil {
			continue
		}
		if has {
			v = merge(v, *p)
		} else {
			v, has = *p, true
		}
		t.c.tstate.Delete(k)
	}
	if has {
		t.SetState(name, v)
	}
}

// ---- window contents --------------------------------------------------------

// windowStore holds the window operator's contents: keyed state per key
// group (a statebackend.Table, registered with the backend) from a key to
// that key's windows and their state. Grouping a key's windows makes a
// record cost one hash lookup however many windows it belongs to (sliding
// windows), and keeps them on one or two cache lines.
type windowStore[K comparable, S any] struct {
	b    *statebackend.Keyed[K]
	t    *statebackend.Table[K, *keyWindows[S]]
	free []*keyWindows[S]
}

func newWindowStore[K comparable, S any](b *statebackend.Keyed[K]) *windowStore[K, S] {
	return &windowStore[K, S]{b: b, t: statebackend.NewTable[K, *keyWindows[S]](b.Range().Len())}
}

// get returns the current key's windows, creating them if asked (else nil).
func (s *windowStore[K, S]) get(create bool) *keyWindows[S] {
	kg, k := s.b.KeyGroupIndex(), s.b.CurrentKey()
	kw, ok := s.t.Get(kg, k)
	if !ok && create {
		if n := len(s.free); n > 0 {
			kw = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			kw = &keyWindows[S]{}
		}
		s.t.Put(kg, k, kw)
	}
	return kw
}

// tidy drops the current key's entry once it has no windows left, keeping
// its buffers for the next key.
func (s *windowStore[K, S]) tidy(kw *keyWindows[S]) {
	if kw == nil || len(kw.wins) > 0 {
		return
	}
	s.t.Delete(s.b.KeyGroupIndex(), s.b.CurrentKey())
	if len(s.free) < 1024 {
		s.free = append(s.free, kw)
	}
}

// Len is the number of (key, window) entries.
func (s *windowStore[K, S]) Len() int {
	n := 0
	for kg := range s.t.NumKeyGroups() {
		for _, kw := range s.t.KeyGroup(kg) {
			n += len(kw.wins)
		}
	}
	return n
}

// keyWindows is one key's windows, sorted by start and end, and their
// state. Pointers into vals are valid until the next upsert.
type keyWindows[S any] struct {
	wins []window.TimeWindow
	vals []S
}

func winLess(a, b window.TimeWindow) bool {
	return a.Start < b.Start || a.Start == b.Start && a.End < b.End
}

// search returns the position of w, or where it would be inserted.
func (kw *keyWindows[S]) search(w window.TimeWindow) (int, bool) {
	ws := kw.wins
	if len(ws) <= 8 {
		for i, x := range ws {
			if x == w {
				return i, true
			}
			if winLess(w, x) {
				return i, false
			}
		}
		return len(ws), false
	}
	lo, hi := 0, len(ws)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if winLess(ws[m], w) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(ws) && ws[lo] == w
}

func (kw *keyWindows[S]) get(w window.TimeWindow) *S {
	if kw == nil {
		return nil
	}
	if i, ok := kw.search(w); ok {
		return &kw.vals[i]
	}
	return nil
}

func (kw *keyWindows[S]) upsert(w window.TimeWindow) (*S, bool) {
	i, ok := kw.search(w)
	if ok {
		return &kw.vals[i], false
	}
	var zero S
	kw.wins = slices.Insert(kw.wins, i, w)
	kw.vals = slices.Insert(kw.vals, i, zero)
	return &kw.vals[i], true
}

func (kw *keyWindows[S]) remove(w window.TimeWindow) {
	if kw == nil {
		return
	}
	if i, ok := kw.search(w); ok {
		kw.wins = slices.Delete(kw.wins, i, i+1)
		kw.vals = slices.Delete(kw.vals, i, i+1) // zeroes the freed slot
	}
}

// ---- MergingWindowSet ----------------------------------------------------

// winPair maps a window to the window whose namespace holds its state: the
// state window stays fixed while windows merge, so merging never moves
// state twice (Flink's MergingWindowSet).
type winPair struct {
	W, State window.TimeWindow
}

// mergingSet is one key's current merging windows.
type mergingSet struct {
	pairs []winPair
}

type mergeFunc func(result window.TimeWindow, merged []window.TimeWindow, stateResult window.TimeWindow, mergedStates []window.TimeWindow)

type mergeGroup struct {
	result     window.TimeWindow
	start, end int
}

// mergeScratch holds the reusable buffers of addWindow.
type mergeScratch struct {
	windows []window.TimeWindow
	members []window.TimeWindow
	states  []window.TimeWindow
	groups  []mergeGroup
	collect func(merged []window.TimeWindow, result window.TimeWindow)
}

func (sc *mergeScratch) init() {
	sc.collect = func(merged []window.TimeWindow, result window.TimeWindow) {
		start := len(sc.members)
		sc.members = append(sc.members, merged...)
		sc.groups = append(sc.groups, mergeGroup{result: result, start: start, end: len(sc.members)})
	}
}

func (m *mergingSet) find(w window.TimeWindow) int {
	for i, p := range m.pairs {
		if p.W == w {
			return i
		}
	}
	return -1
}

func (m *mergingSet) stateWindow(w window.TimeWindow) (window.TimeWindow, bool) {
	if i := m.find(w); i >= 0 {
		return m.pairs[i].State, true
	}
	return window.TimeWindow{}, false
}

// remove deletes w's mapping and returns its state window.
func (m *mergingSet) remove(w window.TimeWindow) (window.TimeWindow, bool) {
	i := m.find(w)
	if i < 0 {
		return window.TimeWindow{}, false
	}
	s := m.pairs[i].State
	m.pairs[i] = m.pairs[len(m.pairs)-1]
	m.pairs = m.pairs[:len(m.pairs)-1]
	return s, true
}

func (m *mergingSet) put(w, state window.TimeWindow) {
	if i := m.find(w); i >= 0 {
		m.pairs[i].State = state
		return
	}
	m.pairs = append(m.pairs, winPair{W: w, State: state})
}

func (m *mergingSet) retire(w window.TimeWindow) { m.remove(w) }

// addWindow adds a new window, merging it with the existing ones as the
// assigner says, and returns the window it ended up in. merge is called for
// every merge with the result, the merged windows (without the new one,
// which has no state or timers yet) and the state windows to fold into the
// result's state window.
func (m *mergingSet) addWindow(nw window.TimeWindow, a window.MergingAssigner, sc *mergeScratch, merge mergeFunc) window.TimeWindow {
	if m.find(nw) >= 0 {
		return nw // already there: it intersects only itself
	}
	sc.windows = sc.windows[:0]
	for _, p := range m.pairs {
		sc.windows = append(sc.windows, p.W)
	}
	sc.windows = append(sc.windows, nw)
	sc.members, sc.groups = sc.members[:0], sc.groups[:0]
	a.MergeWindows(sc.windows, sc.collect)

	result, mergedNew := nw, false
	for _, g := range sc.groups {
		members := sc.members[g.start:g.end]
		for i, w := range members {
			if w == nw {
				mergedNew, result = true, g.result
				copy(members[i:], members[i+1:])
				members = members[:len(members)-1]
				break
			}
		}
		if len(members) == 0 {
			continue
		}
		target, _ := m.stateWindow(members[0])
		sc.states = sc.states[:0]
		for _, w := range members {
			if s, ok := m.remove(w); ok && s != target {
				sc.states = append(sc.states, s)
			}
		}
		m.put(g.result, target)
		if !(len(members) == 1 && members[0] == g.result) {
			merge(g.result, members, target, sc.states)
		}
	}
	if len(sc.groups) == 0 || (result == nw && !mergedNew) {
		m.put(result, result)
	}
	return result
}

// ---- snapshot codecs of the window state ------------------------------------

// keyWindowsCodecFor returns the builder of the window contents' codec: a
// key's windows with their states, S encoded by sc (codec.For[S] if nil).
func keyWindowsCodecFor[S any](sc func() (codec.Codec[S], error)) func() (codec.Codec[*keyWindows[S]], error) {
	return func() (codec.Codec[*keyWindows[S]], error) {
		var c codec.Codec[S]
		var err error
		if sc != nil {
			c, err = sc()
		} else {
			c, err = codec.For[S]()
		}
		if err != nil {
			return nil, fmt.Errorf("no codec for window state type %v: %w", reflect.TypeFor[S](), err)
		}
		return keyWindowsCodec[S]{c}, nil
	}
}

// keyWindowsCodec encodes a key's windows: uvarint n, then n × (varint
// start, varint end, state), in window order.
type keyWindowsCodec[S any] struct{ s codec.Codec[S] }

func (c keyWindowsCodec[S]) Append(dst []byte, kw *keyWindows[S]) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(kw.wins)))
	for i, w := range kw.wins {
		dst = binary.AppendVarint(dst, w.Start)
		dst = binary.AppendVarint(dst, w.End)
		dst = c.s.Append(dst, kw.vals[i])
	}
	return dst
}

func (c keyWindowsCodec[S]) Decode(src []byte) (*keyWindows[S], int, error) {
	n, off := binary.Uvarint(src)
	if off <= 0 || n > uint64(len(src)-off)/2 {
		return nil, 0, fmt.Errorf("%w: window count", codec.ErrCorrupt)
	}
	kw := &keyWindows[S]{wins: make([]window.TimeWindow, n), vals: make([]S, n)}
	for i := range kw.wins {
		w, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("window %d: %w", i, err)
		}
		off += k
		if i > 0 && !winLess(kw.wins[i-1], w) {
			return nil, 0, fmt.Errorf("%w: window %d: %v out of order", codec.ErrCorrupt, i, w)
		}
		kw.wins[i] = w
		v, k, err := c.s.Decode(src[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("state of window %v: %w", w, err)
		}
		if k < 0 || k > len(src)-off {
			return nil, 0, fmt.Errorf("%w: state of window %v: codec overran its input", codec.ErrCorrupt, w)
		}
		off += k
		kw.vals[i] = v
	}
	return kw, off, nil
}

func decodeWindow(src []byte) (window.TimeWindow, int, error) {
	start, a := binary.Varint(src)
	if a <= 0 {
		return window.TimeWindow{}, 0, fmt.Errorf("%w: window start", codec.ErrCorrupt)
	}
	end, b := binary.Varint(src[a:])
	if b <= 0 {
		return window.TimeWindow{}, 0, fmt.Errorf("%w: window end", codec.ErrCorrupt)
	}
	return window.TimeWindow{Start: start, End: end}, a + b, nil
}

// mergingSetCodec encodes a key's merging windows: uvarint n, then n ×
// (window, state window).
type mergingSetCodec struct{}

func (mergingSetCodec) Append(dst []byte, m *mergingSet) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.pairs)))
	for _, p := range m.pairs {
		dst = binary.AppendVarint(dst, p.W.Start)
		dst = binary.AppendVarint(dst, p.W.End)
		dst = binary.AppendVarint(dst, p.State.Start)
		dst = binary.AppendVarint(dst, p.State.End)
	}
	return dst
}

func (mergingSetCodec) Decode(src []byte) (*mergingSet, int, error) {
	n, off := binary.Uvarint(src)
	if off <= 0 || n > uint64(len(src)-off)/4 {
		return nil, 0, fmt.Errorf("%w: merging window count", codec.ErrCorrupt)
	}
	m := &mergingSet{pairs: make([]winPair, n)}
	for i := range m.pairs {
		w, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, err
		}
		off += k
		sw, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, err
		}
		off += k
		m.pairs[i] = winPair{W: w, State: sw}
	}
	return m, off, nil
}
