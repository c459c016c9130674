package operator

import (
	"fmt"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// WindowFuncs are what distinguishes the window functions: how a record is
// added to a window's state S, how two states merge (nil if they cannot),
// what a firing emits, and what happens when a window is cleaned up. C is
// the context the user's function sees (the API's *WindowContext), which
// the engine only passes along. One WindowFuncs value belongs to one
// subtask.
type WindowFuncs[T, S, C any] struct {
	Add   func(s *S, v T, ts int64, created bool)
	Merge func(dst, src *S)
	Emit  func(ctx C, s *S) error
	// Clear is the user's Clear, called when a window is cleaned up.
	Clear func(ctx C) error
	Close func() error
	// UserCtx says the user function sees the context, so it may keep
	// per-window state, which the operator drops with the window.
	UserCtx bool
}

// WholeFn is a window function over a window's whole contents: what runs
// when a window of records (WindowProcess, or any function with an
// evictor) fires.
type WholeFn[T, C any] struct {
	Process func(ctx C, elems []T) error
	Clear   func(ctx C) error
	Close   func() error
	UserCtx bool
}

// Context is how the engine reaches the context its window functions see,
// a type of the API package it cannot name: At makes key and window current
// before a user call and returns the context; DropWindowState drops the
// per-window state of the window At made current.
type Context[K comparable, C any] struct {
	At              func(key K, w window.TimeWindow) C
	DropWindowState func()
}

// WindowOp is Flink's WindowOperator for one input: the window core plus
// the record type, late-data side output and the window functions. The
// exported fields are its configuration, set before Open.
type WindowOp[T any, K comparable, S, OUT, C any] struct {
	Out        runtime.Output[OUT]
	Key        func(T) K
	NewBackend func(*runtime.Context) *statebackend.Keyed[K]
	Assigner   window.Assigner
	Trigger    window.Trigger
	Lateness   int64
	LateTag    string
	Fns        WindowFuncs[T, S, C]
	// NewContext makes the subtask's context for the window functions once
	// the backend and timers exist; merging says the windows merge.
	NewContext func(rt *runtime.Context, b *statebackend.Keyed[K], timers *runtime.Timers[K, window.TimeWindow], merging bool) Context[K, C]

	core windowCore[K, S]
	late runtime.Output[T]
	// sides are the consumed side outputs (late data and what the window
	// function emits): watermarks reach them too.
	sides []eventOutput
	wctx  Context[K, C]
}

func (o *WindowOp[T, K, S, OUT, C]) Open(ctx *runtime.Context) error {
	if o.LateTag != "" {
		o.late, _ = ctx.SideOutput(o.LateTag).(runtime.Output[T])
	}
	o.sides = consumedSides(ctx, o.sides[:0])
	spec := windowSpec{assigner: o.Assigner, trigger: o.Trigger, lateness: o.Lateness}
	b := o.NewBackend(ctx)
	if err := o.core.open(ctx, b, spec, o.Fns.Merge, o.fire); err != nil {
		return err
	}
	o.wctx = o.NewContext(ctx, b, o.core.timers, o.core.merger != nil)
	if o.Fns.UserCtx {
		o.core.onClear = o.clearWindow
	}
	return nil
}

// eventOutput is what every runtime.Output[U] has regardless of U: how
// watermarks and idleness reach side outputs.
type eventOutput interface {
	EmitWatermark(wm int64)
	MarkIdle()
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
func (o *WindowOp[T, K, S, OUT, C]) fire(key K, win window.TimeWindow, s *S) {
	c := o.wctx.At(key, win)
	if err := o.Fns.Emit(c, s); err != nil {
		runtime.Fail(o.core.name, err)
	}
}

// clearWindow runs the user's Clear for a window being cleaned up and
// drops its per-window state.
func (o *WindowOp[T, K, S, OUT, C]) clearWindow(key K, win window.TimeWindow) {
	c := o.wctx.At(key, win)
	if o.Fns.Clear != nil {
		if err := o.Fns.Clear(c); err != nil {
			runtime.Fail(o.core.name, fmt.Errorf("Clear: %w", err))
		}
	}
	o.wctx.DropWindowState()
}

func (o *WindowOp[T, K, S, OUT, C]) ProcessElement(v T, ts int64) {
	o.core.backend.SetCurrentKey(o.Key(v))
	if addElement(&o.core, v, ts, o.Fns.Add) && o.core.isElementLate(ts) {
		if o.late != nil {
			o.late.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *WindowOp[T, K, S, OUT, C]) ProcessWatermark(wm int64) {
	o.core.timers.AdvanceWatermark(wm)
	o.Out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *WindowOp[T, K, S, OUT, C]) ProcessIdle() {
	o.Out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *WindowOp[T, K, S, OUT, C]) Finish() error { o.core.finish(); return nil }

func (o *WindowOp[T, K, S, OUT, C]) Close() error {
	o.core.close()
	if o.Fns.Close != nil {
		return o.Fns.Close()
	}
	return nil
}

// BufferedFuncs keep a window's records and run f over them when it fires.
func BufferedFuncs[T, C any](f WholeFn[T, C]) WindowFuncs[T, []T, C] {
	return WindowFuncs[T, []T, C]{
		Add:   func(s *[]T, v T, _ int64, _ bool) { *s = append(*s, v) },
		Merge: func(dst, src *[]T) { *dst = append(*dst, *src...) },
		Emit: func(ctx C, s *[]T) error {
			return f.Process(ctx, *s)
		},
		Clear: f.Clear, Close: f.Close, UserCtx: f.UserCtx,
	}
}

// ReduceFuncs keep one value per window, folded with fn as records arrive.
func ReduceFuncs[T, C any](fn func(a, b T) T, emit func(ctx C, s *T) error) WindowFuncs[T, T, C] {
	return WindowFuncs[T, T, C]{
		Add: func(s *T, v T, _ int64, created bool) {
			if created {
				*s = v
			} else {
				*s = fn(*s, v)
			}
		},
		Merge: func(dst, src *T) { *dst = fn(*dst, *src) },
		Emit:  emit,
	}
}

// ReduceAll folds elems with fn; false if there are none.
func ReduceAll[T any](fn func(a, b T) T, elems []T) (T, bool) {
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

// AggFuncs keep one accumulator of agg per window; windows merge only if
// agg has a Merge.
func AggFuncs[T, ACC, R, C any](agg state.Aggregator[T, ACC, R],
	emit func(ctx C, s *ACC) error) WindowFuncs[T, ACC, C] {
	f := WindowFuncs[T, ACC, C]{
		Add: func(s *ACC, v T, _ int64, created bool) {
			if created {
				*s = agg.Create()
			}
			*s = agg.Add(*s, v)
		},
		Emit: emit,
	}
	if agg.Merge != nil {
		f.Merge = func(dst, src *ACC) { *dst = agg.Merge(*dst, *src) }
	}
	return f
}

// AggregateAll aggregates elems from a new accumulator.
func AggregateAll[T, ACC, R any](agg state.Aggregator[T, ACC, R], elems []T) R {
	acc := agg.Create()
	for _, v := range elems {
		acc = agg.Add(acc, v)
	}
	return agg.Result(acc)
}
