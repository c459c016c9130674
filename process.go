package strom

import (
	"context"
	"fmt"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/state"
)

// ProcessFunction processes a (non-keyed) stream one record at a time
// (Flink's ProcessFunction), with a hook on every watermark, so it can
// buffer and pre-aggregate locally — before a KeyBy shuffle, in the task
// that produces the records — and emit what is complete once event time
// has passed it. Run it with Process (ProcessFunc for a plain function).
//
// A function may also implement any of these optional interfaces:
//
//	Open(ctx *ProcessContext[OUT]) error                  // ProcessOpener: before the first record
//	OnWatermark(ctx *ProcessContext[OUT], wm int64) error // WatermarkHandler: on every watermark
//	Finish(ctx *ProcessContext[OUT]) error                // Finisher: at the end of bounded input
//	Close() error                                         // Closer: always, also after failures
//
// Every call runs on the subtask's goroutine: a function needs no locks.
// An error returned by any of them fails the job, naming the operator.
type ProcessFunction[IN, OUT any] interface {
	ProcessElement(ctx *ProcessContext[OUT], v IN) error
}

// ProcessOpener is implemented by process functions that prepare before
// the first record.
type ProcessOpener[OUT any] interface {
	Open(ctx *ProcessContext[OUT]) error
}

// WatermarkHandler is implemented by process functions that act when event
// time advances. OnWatermark(ctx, wm) is called for every watermark wm the
// operator receives (watermarks only increase), before wm is forwarded
// downstream: records it emits — to the main output or to side outputs —
// precede wm, so downstream event-time operators (windows, timers) see them
// as on time if their timestamps are after the previous watermark. A
// watermark w promises that no later record has a timestamp ≤ w, so a
// buffered window [start, end) is complete once w ≥ end − 1. At the end of
// a bounded input the operator receives MaxWatermark: flush everything
// event-time related there.
type WatermarkHandler[OUT any] interface {
	OnWatermark(ctx *ProcessContext[OUT], wm int64) error
}

// Finisher is implemented by process functions that buffer records: Finish
// is called once at the end of a bounded input, after the final watermark
// (MaxWatermark, which OnWatermark has already seen), so what it emits
// follows that watermark: event-time operators downstream count it as late.
// Emit event-time results from OnWatermark; use Finish for what has no
// event time (batches for a sink, processing-time buffers). Finish is not
// called when the job is cancelled or fails.
type Finisher[OUT any] interface {
	Finish(ctx *ProcessContext[OUT]) error
}

// ProcessElementFunc adapts a plain function to ProcessFunction.
type ProcessElementFunc[IN, OUT any] func(ctx *ProcessContext[OUT], v IN) error

// ProcessElement calls f.
func (f ProcessElementFunc[IN, OUT]) ProcessElement(ctx *ProcessContext[OUT], v IN) error {
	return f(ctx, v)
}

// ProcessContext is what a ProcessFunction sees: the current record's timestamp,
// the output, side outputs (OutputTag.Emit), the current watermark and
// processing-time callbacks. It belongs to one subtask and is only to be
// used during the call it was passed to.
type ProcessContext[OUT any] struct {
	out  runtime.Output[OUT]
	rt   *runtime.Context
	name string
	ts   int64
	wm   int64
	// opState is the subtask's operator state, made on first use.
	opState *state.OperatorStore
}

// Collect emits v with the current record's timestamp. In OnWatermark,
// Finish and processing-time callbacks there is no current record, so v
// carries no timestamp: use CollectAt to give it event time.
func (c *ProcessContext[OUT]) Collect(v OUT) { c.out.Collect(v, c.ts) }

// CollectAt emits v with timestamp ts (epoch ms, or NoTimestamp).
func (c *ProcessContext[OUT]) CollectAt(v OUT, ts int64) { c.out.Collect(v, ts) }

// Timestamp is the current record's event time, and false if it has none
// (also in OnWatermark, Finish and processing-time callbacks).
func (c *ProcessContext[OUT]) Timestamp() (int64, bool) { return c.ts, c.ts != runtime.NoTimestamp }

// CurrentWatermark is the last watermark the operator received (in
// OnWatermark, the one being handled), MinWatermark before the first.
func (c *ProcessContext[OUT]) CurrentWatermark() int64 { return c.wm }

// CurrentProcessingTime is the wall clock in epoch ms.
func (c *ProcessContext[OUT]) CurrentProcessingTime() int64 { return c.rt.Time.Now() }

// RegisterProcessingTimer calls fn on the subtask's goroutine, between
// records, once the wall clock reaches ts (epoch ms); fn gets the context
// and ts. Every registration fires once (none is deduplicated) unless it is
// stopped first with the returned timer's Stop. Callbacks still pending at
// the end of a bounded input are dropped: flush in Finish. An error from fn
// fails the job.
func (c *ProcessContext[OUT]) RegisterProcessingTimer(ts int64, fn func(ctx *ProcessContext[OUT], ts int64) error) *ProcessingTimer {
	t := &ProcessingTimer{pt: c.rt.Time}
	t.id = c.rt.Time.Register(ts, func(at int64) {
		t.done = true
		// Runs from the task's timer service, outside any record's call
		// chain: name this operator if fn panics.
		defer runtime.Guard(c.name)
		c.ts = runtime.NoTimestamp
		if err := fn(c, at); err != nil {
			runtime.Fail(c.name, fmt.Errorf("processing timer at %d: %w", at, err))
		}
	})
	return t
}

// ProcessingTimer is a pending processing-time callback of a
// ProcessFunction (as time.AfterFunc's Timer). Use it only from the
// function's own calls: it belongs to the subtask's goroutine.
type ProcessingTimer struct {
	pt   *runtime.ProcessingTime
	id   uint64
	done bool
}

// Stop cancels the callback. It reports whether this call stopped it:
// false if it already ran or was stopped.
func (t *ProcessingTimer) Stop() bool {
	if t == nil || t.done {
		return false
	}
	t.done = true
	t.pt.Cancel(t.id)
	return true
}

// SubtaskIndex is the 0-based index of the running subtask.
func (c *ProcessContext[OUT]) SubtaskIndex() int { return c.rt.Task.Subtask }

// Context is the subtask's context, cancelled when the job is cancelled or
// fails: pass it to blocking calls (I/O, RPCs) so they give up at once.
func (c *ProcessContext[OUT]) Context() context.Context { return c.rt.Ctx }

// NumSubtasks is the operator's parallelism.
func (c *ProcessContext[OUT]) NumSubtasks() int { return c.rt.Task.Parallelism }

func (c *ProcessContext[OUT]) sideOutput(tag string) sideTarget {
	return sideTarget{out: c.rt.SideOutput(tag), operator: c.name, ts: c.ts}
}

// eventOutput is what every runtime.Output[U] has regardless of U: how
// watermarks and idleness reach side outputs.
type eventOutput interface {
	EmitWatermark(wm int64)
	MarkIdle()
}

type streamProcessOp[IN, OUT any] struct {
	base[OUT]
	fn     ProcessFunction[IN, OUT]
	onWM   WatermarkHandler[OUT]
	ctx    ProcessContext[OUT]
	name   string
	sides  []eventOutput
	finish Finisher[OUT]
}

func (o *streamProcessOp[IN, OUT]) Open(ctx *runtime.Context) error {
	o.name = ctx.OperatorName
	o.ctx = ProcessContext[OUT]{out: o.out, rt: ctx, name: ctx.OperatorName, ts: runtime.NoTimestamp, wm: runtime.MinWatermark}
	o.onWM, _ = o.fn.(WatermarkHandler[OUT])
	o.finish, _ = o.fn.(Finisher[OUT])
	for _, s := range ctx.SideOutputs() {
		if e, ok := s.(eventOutput); ok {
			o.sides = append(o.sides, e)
		}
	}
	if op, ok := o.fn.(ProcessOpener[OUT]); ok {
		return op.Open(&o.ctx)
	}
	return nil
}

func (o *streamProcessOp[IN, OUT]) ProcessElement(v IN, ts int64) {
	o.ctx.ts = ts
	if err := o.fn.ProcessElement(&o.ctx, v); err != nil {
		runtime.Fail(o.name, err)
	}
}

// ProcessWatermark runs OnWatermark, then forwards the watermark to the
// main and side outputs, so what OnWatermark emitted precedes it.
func (o *streamProcessOp[IN, OUT]) ProcessWatermark(wm int64) {
	o.ctx.wm = wm
	if o.onWM != nil {
		o.ctx.ts = runtime.NoTimestamp
		if err := o.onWM.OnWatermark(&o.ctx, wm); err != nil {
			runtime.Fail(o.name, fmt.Errorf("OnWatermark(%d): %w", wm, err))
		}
	}
	o.out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *streamProcessOp[IN, OUT]) ProcessIdle() {
	o.out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *streamProcessOp[IN, OUT]) Finish() error {
	if o.finish == nil {
		return nil
	}
	o.ctx.ts = runtime.NoTimestamp
	return o.finish.Finish(&o.ctx)
}

func (o *streamProcessOp[IN, OUT]) Close() error {
	if c, ok := o.fn.(Closer); ok {
		return c.Close()
	}
	return nil
}

// Process runs a ProcessFunction on every record of a (non-keyed) stream
// (Flink's DataStream.process). newFn is called once per parallel subtask,
// so the function may keep per-subtask fields — buffers, partial
// aggregates — and it sees that subtask's records and watermarks only. The
// operator is connected like Map (a forward edge): it chains into the task
// of its input when the parallelism matches, so pre-aggregating there
// costs no hand-off.
//
// Order of calls per subtask: Open; then ProcessElement for each record
// and OnWatermark for each watermark, in stream order, with processing-time
// callbacks in between; at the end of a bounded input OnWatermark(
// MaxWatermark), then Finish; Close last (always). See WatermarkHandler and
// Finisher for what that order means for emitted records.
func Process[IN, OUT any](s Stream[IN], newFn func() ProcessFunction[IN, OUT]) Stream[OUT] {
	return addOperator(s, "streamprocess", "Process", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		fn := newFn()
		if fn == nil {
			return nil, errorf("Process: newFn returned nil")
		}
		return &streamProcessOp[IN, OUT]{base: base[OUT]{out}, fn: fn}, nil
	})
}

// ProcessFunc runs fn on every record of a (non-keyed) stream: Process for
// a plain function (one fn is shared by all subtasks).
func ProcessFunc[IN, OUT any](s Stream[IN], fn func(ctx *ProcessContext[OUT], v IN) error) Stream[OUT] {
	return Process(s, func() ProcessFunction[IN, OUT] { return ProcessElementFunc[IN, OUT](fn) })
}
