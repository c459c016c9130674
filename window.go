package strom

import (
	"errors"
	"strings"
	"time"

	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
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

// windowFuncs and wholeFn are the engine's window functions with the
// context this package's window functions see.
type (
	windowFuncs[T any, K comparable, S, OUT any] = operator.WindowFuncs[T, S, *WindowContext[K, OUT]]
	wholeFn[T any, K comparable, OUT any]        = operator.WholeFn[T, *WindowContext[K, OUT]]
)

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
		return &operator.WindowOp[T, K, S, OUT, *WindowContext[K, OUT]]{Out: out, Key: w.keyed.key, NewBackend: w.keyed.newBackend,
			Assigner: w.assigner, Trigger: w.effectiveTrigger(), Lateness: w.lateness, LateTag: w.lateTag,
			Fns: newFns(), NewContext: windowContextOf[K](out, w.keyed.hasher)}, nil
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
		return addWindowOperator(w, what, true, func() windowFuncs[T, K, []operator.TsVal[T], OUT] {
			return operator.EvictingFuncs(ev, newWhole())
		})
	}
	return addWindowOperator(w, what, canMerge, newInc)
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
			return operator.ReduceFuncs(fn, func(ctx *WindowContext[K, T], s *T) error {
				ctx.Collect(*s)
				return nil
			})
		},
		func() wholeFn[T, K, T] {
			return wholeFn[T, K, T]{Process: func(ctx *WindowContext[K, T], elems []T) error {
				if r, ok := operator.ReduceAll(fn, elems); ok {
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
			f := operator.ReduceFuncs(reduce, func(ctx *WindowContext[K, OUT], s *T) error { return fn(ctx, *s) })
			f.UserCtx = true
			return f
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{UserCtx: true, Process: func(ctx *WindowContext[K, OUT], elems []T) error {
				if r, ok := operator.ReduceAll(reduce, elems); ok {
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
			return operator.AggFuncs(agg, func(ctx *WindowContext[K, OUT], s *ACC) error {
				ctx.Collect(agg.Result(*s))
				return nil
			})
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{Process: func(ctx *WindowContext[K, OUT], elems []T) error {
				ctx.Collect(operator.AggregateAll(agg, elems))
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
			f := operator.AggFuncs(agg, func(ctx *WindowContext[K, OUT], s *ACC) error {
				return fn(ctx, agg.Result(*s))
			})
			f.UserCtx = true
			return f
		},
		func() wholeFn[T, K, OUT] {
			return wholeFn[T, K, OUT]{UserCtx: true, Process: func(ctx *WindowContext[K, OUT], elems []T) error {
				return fn(ctx, operator.AggregateAll(agg, elems))
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
			return wholeFn[T, K, OUT]{UserCtx: true, Process: func(*WindowContext[K, OUT], []T) error {
				return errors.New("WindowProcessWith: the factory returned a nil function")
			}}
		}
		f := wholeFn[T, K, OUT]{Process: pf.Process, UserCtx: true}
		if c, ok := pf.(WindowClearer[K, OUT]); ok {
			f.Clear = c.Clear
		}
		if c, ok := pf.(Closer); ok {
			f.Close = c.Close
		}
		return f
	}
	return addWindowFunction(w, "WindowProcess", true,
		func() windowFuncs[T, K, []T, OUT] { return operator.BufferedFuncs(whole()) }, whole)
}
