package strom

import (
	"context"
	"fmt"
	"strings"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

// Keyed is a stream partitioned by key: every record with the same key goes
// to the same subtask, where keyed state and timers are scoped to that key.
type Keyed[T any, K comparable] struct {
	stream Stream[T]
	key    func(T) K
	hasher keygroup.Hasher[K]
}

// KeyBy partitions a stream by key. Keys are hashed stably into key groups
// (maxParallelism of them); key groups are spread over the subtasks of the
// next operator. The key function must be deterministic.
func KeyBy[T any, K comparable](s Stream[T], key func(T) K) Keyed[T, K] {
	h, err := keyHasher[K]()
	if err != nil {
		s.env.fail(err)
	}
	return Keyed[T, K]{stream: s, key: key, hasher: h}
}

// Stream returns the keyed stream's records as a plain stream.
func (k Keyed[T, K]) Stream() Stream[T] { return k.stream }

// kgFactory builds the producer-side key-group function of a hash edge.
func (k Keyed[T, K]) kgFactory() func(int) any {
	key, h := k.key, k.hasher
	return func(maxPar int) any {
		return runtime.KeyGroupOf[T](func(v T) int { return keygroup.Of(h(key(v)), maxPar) })
	}
}

// newBackend creates the keyed state backend of one subtask.
// The task snapshots it with the operator and restores it here, before
// the operator registers any state (see runtime.Context.RegisterKeyedBackend).
func (k Keyed[T, K]) newBackend(ctx *runtime.Context) *statebackend.Keyed[K] {
	b := statebackend.NewKeyed(k.hasher, ctx.Task.MaxParallelism, ctx.KeyGroups)
	ctx.RegisterKeyedBackend(b)
	return b
}

// addKeyedOperator adds an operator fed by a hash-partitioned edge.
func addKeyedOperator[IN any, K comparable, OUT any](k Keyed[IN, K], kind, name string,
	build func(ctx *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error)) Stream[OUT] {
	return addOperator(k.stream, kind, name, runtime.Hash, k.kgFactory(), build)
}

// TimeDomain says which clock fired a timer.
type TimeDomain uint8

const (
	// EventTime timers fire when the watermark passes them.
	EventTime TimeDomain = iota
	// ProcessingTime timers fire when the wall clock passes them.
	ProcessingTime
)

// KeyedContext is what a keyed function sees: the current key and record
// timestamp, the output, timers and (through package state) keyed state.
// It is only valid during the call it was passed to.
type KeyedContext[K comparable, OUT any] struct {
	backend *statebackend.Keyed[K]
	store   *state.Store
	timers  *runtime.Timers[K, struct{}]
	out     runtime.Output[OUT]
	rt      *runtime.Context
	ts      int64
	domain  TimeDomain
}

// Key is the current key.
func (c *KeyedContext[K, OUT]) Key() K { return c.backend.CurrentKey() }

// Timestamp is the current record's event time (or the firing timer's time),
// and false if it has none.
func (c *KeyedContext[K, OUT]) Timestamp() (int64, bool) { return c.ts, c.ts != runtime.NoTimestamp }

// Collect emits a record with the current timestamp.
func (c *KeyedContext[K, OUT]) Collect(v OUT) { c.out.Collect(v, c.ts) }

// CollectAt emits a record with the given timestamp.
func (c *KeyedContext[K, OUT]) CollectAt(v OUT, ts int64) { c.out.Collect(v, ts) }

// CurrentWatermark is the operator's current event time.
func (c *KeyedContext[K, OUT]) CurrentWatermark() int64 { return c.timers.CurrentWatermark() }

// CurrentProcessingTime is the wall clock in epoch ms.
func (c *KeyedContext[K, OUT]) CurrentProcessingTime() int64 { return c.rt.Time.Now() }

// RegisterEventTimeTimer calls OnTimer for the current key when the
// watermark reaches ts. Registering the same time twice fires once. The
// watermark trails the records (by the strategy's out-of-orderness, and
// periodic strategies emit only every AutoWatermarkInterval), so records
// with later timestamps may arrive before the timer fires: code that must
// decide by event time compares timestamps rather than relying on the
// timer having fired. A timer at or behind the current watermark fires
// with the next watermark.
func (c *KeyedContext[K, OUT]) RegisterEventTimeTimer(ts int64) {
	c.timers.RegisterEventTime(struct{}{}, ts)
}

// DeleteEventTimeTimer removes a timer of the current key.
func (c *KeyedContext[K, OUT]) DeleteEventTimeTimer(ts int64) {
	c.timers.DeleteEventTime(struct{}{}, ts)
}

// RegisterProcessingTimeTimer calls OnTimer for the current key when the
// wall clock reaches ts (epoch ms).
func (c *KeyedContext[K, OUT]) RegisterProcessingTimeTimer(ts int64) {
	c.timers.RegisterProcessingTime(struct{}{}, ts)
}

// DeleteProcessingTimeTimer removes a processing-time timer of the current
// key.
func (c *KeyedContext[K, OUT]) DeleteProcessingTimeTimer(ts int64) {
	c.timers.DeleteProcessingTime(struct{}{}, ts)
}

// TimeDomain is the clock of the firing timer (in OnTimer).
func (c *KeyedContext[K, OUT]) TimeDomain() TimeDomain { return c.domain }

// KeyedStateStore gives package state access to the keyed state (it
// implements state.Scope).
func (c *KeyedContext[K, OUT]) KeyedStateStore() *state.Store { return c.store }

// SubtaskIndex is the 0-based index of the running subtask.
func (c *KeyedContext[K, OUT]) SubtaskIndex() int { return c.rt.Task.Subtask }

// Context is the subtask's context, cancelled when the job is cancelled or
// fails: pass it to blocking calls (I/O, RPCs) so they give up at once.
func (c *KeyedContext[K, OUT]) Context() context.Context { return c.rt.Ctx }

func (c *KeyedContext[K, OUT]) sideOutput(tag string) sideTarget {
	return sideTarget{out: c.rt.SideOutput(tag), operator: c.rt.OperatorName, ts: c.ts}
}

// OutputTag names a side output of type T: an extra output of an
// operator, read with SideOutput. The id names the side output within the
// operator that emits to it, so on one operator every id stands for one
// type: reading (or declaring, as with SideOutputLateData) the same id with
// two types fails the build, and emitting to an id with a tag whose type
// differs from the stream read from it fails the job. Ids need not be unique
// across operators.
type OutputTag[T any] struct{ id string }

// NewOutputTag returns a tag with the given id.
func NewOutputTag[T any](id string) OutputTag[T] { return OutputTag[T]{id: id} }

// ID is the tag's id.
func (t OutputTag[T]) ID() string { return t.id }

// SideOutputContext is a function context that can emit to side outputs:
// the contexts of process, co-process and window functions implement it.
type SideOutputContext interface {
	sideOutput(tag string) sideTarget
}

// sideTarget is what a context knows of one of its side outputs: the
// erased runtime.Output[U] (nil when no stream reads the tag), the
// operator's name for errors, and the current record's timestamp.
type sideTarget struct {
	out      any
	operator string
	ts       int64
}

// Emit sends v to the side output with the current record's timestamp (as
// Flink's ctx.output). Records go nowhere if no stream reads the side
// output.
func (t OutputTag[T]) Emit(ctx SideOutputContext, v T) {
	st := ctx.sideOutput(t.id)
	t.emit(st, v, st.ts)
}

// EmitAt sends v to the side output with timestamp ts (epoch ms, or
// NoTimestamp).
func (t OutputTag[T]) EmitAt(ctx SideOutputContext, v T, ts int64) {
	t.emit(ctx.sideOutput(t.id), v, ts)
}

func (t OutputTag[T]) emit(st sideTarget, v T, ts int64) {
	if st.out == nil {
		return
	}
	o, ok := st.out.(runtime.Output[T])
	if !ok {
		runtime.Fail(st.operator, fmt.Errorf("side output %q: emitted with a tag of type %T, but the stream read from it has another type (%s)",
			t.id, v, strings.TrimPrefix(fmt.Sprintf("%T", st.out), "*")))
	}
	o.Collect(v, ts)
}

// SideOutput is the stream of records emitted to tag by the operator that
// produced s.
func SideOutput[T, S any](s Stream[S], tag OutputTag[T]) Stream[T] {
	n := s.node()
	if n == nil {
		s.env.fail(errorf("SideOutput %q: take side outputs from an operator, not from a union", tag.id))
		return Stream[T]{env: s.env}
	}
	return Stream[T]{env: s.env, inputs: []streamInput{{node: n, side: tag.id}}}
}

// KeyedProcessFunction processes a keyed stream one record at a time, with
// keyed state, timers and side outputs (Flink's KeyedProcessFunction). It
// may also implement Open(ctx) error, Close() error and
// OnTimer(ctx, ts int64) error.
type KeyedProcessFunction[K comparable, IN, OUT any] interface {
	ProcessElement(ctx *KeyedContext[K, OUT], v IN) error
}

// TimerHandler is implemented by keyed functions that use timers.
type TimerHandler[K comparable, OUT any] interface {
	OnTimer(ctx *KeyedContext[K, OUT], ts int64) error
}

// KeyedOpener is implemented by keyed functions that prepare state before
// the first record.
type KeyedOpener[K comparable, OUT any] interface {
	Open(ctx *KeyedContext[K, OUT]) error
}

// Closer is implemented by functions that release resources at the end.
type Closer interface{ Close() error }

// KeyedProcessElementFunc adapts a plain function to KeyedProcessFunction:
// it is the function's ProcessElement.
type KeyedProcessElementFunc[K comparable, IN, OUT any] func(ctx *KeyedContext[K, OUT], v IN) error

// ProcessElement calls f.
func (f KeyedProcessElementFunc[K, IN, OUT]) ProcessElement(ctx *KeyedContext[K, OUT], v IN) error {
	return f(ctx, v)
}

// keyedFunction is what keyed process and co-process operators share: the
// engine's core (timers, timer dispatch, watermarks to side outputs), the
// keyed context the user's function sees, and its optional Open.
type keyedFunction[K comparable, OUT any] struct {
	operator.KeyedFunction[K, OUT]
	kctx KeyedContext[K, OUT]
}

// open creates the backend's timers and context and opens fn.
func (o *keyedFunction[K, OUT]) open(ctx *runtime.Context, b *statebackend.Keyed[K], fn any) error {
	if err := o.Setup(ctx, b); err != nil {
		return err
	}
	o.kctx = KeyedContext[K, OUT]{backend: b, store: statebackend.StoreOf(b).(*state.Store), timers: o.Timers, out: o.Out, rt: ctx, ts: runtime.NoTimestamp}
	if h, ok := fn.(TimerHandler[K, OUT]); ok {
		o.OnTimer = func(at, ts int64, eventTime bool) error {
			o.kctx.ts, o.kctx.domain = ts, ProcessingTime
			if eventTime {
				o.kctx.domain = EventTime
			}
			return h.OnTimer(&o.kctx, at)
		}
	}
	if op, ok := fn.(KeyedOpener[K, OUT]); ok {
		return op.Open(&o.kctx)
	}
	return nil
}

// element makes key current and stamps the context before a user call.
func (o *keyedFunction[K, OUT]) element(key K, ts int64) *KeyedContext[K, OUT] {
	o.kctx.backend.SetCurrentKey(key)
	o.kctx.ts = ts
	return &o.kctx
}

func closeFn(fn any) error {
	if c, ok := fn.(Closer); ok {
		return c.Close()
	}
	return nil
}

type keyedProcessOp[K comparable, IN, OUT any] struct {
	keyedFunction[K, OUT]
	keyed Keyed[IN, K]
	fn    KeyedProcessFunction[K, IN, OUT]
}

func (o *keyedProcessOp[K, IN, OUT]) Open(ctx *runtime.Context) error {
	return o.open(ctx, o.keyed.newBackend(ctx), o.fn)
}

func (o *keyedProcessOp[K, IN, OUT]) ProcessElement(v IN, ts int64) {
	if err := o.fn.ProcessElement(o.element(o.keyed.key(v), ts), v); err != nil {
		runtime.Fail(o.Name, err)
	}
}

func (o *keyedProcessOp[K, IN, OUT]) Close() error { return closeFn(o.fn) }

// KeyedProcess runs a KeyedProcessFunction on a keyed stream (Flink's
// KeyedStream.process). newFn is called once per parallel subtask, so the
// function may keep per-subtask fields (state handles got in Open,
// buffers).
func KeyedProcess[IN any, K comparable, OUT any](k Keyed[IN, K], newFn func() KeyedProcessFunction[K, IN, OUT]) Stream[OUT] {
	return addKeyedOperator(k, "process", "KeyedProcess", func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		fn := newFn()
		if fn == nil {
			return nil, errorf("KeyedProcess: newFn returned nil")
		}
		return &keyedProcessOp[K, IN, OUT]{keyedFunction: keyedFunction[K, OUT]{KeyedFunction: operator.KeyedFunction[K, OUT]{Out: out}}, keyed: k, fn: fn}, nil
	})
}

// KeyedProcessFunc runs fn on every record of a keyed stream: KeyedProcess
// for a plain function, which gets its state through package state on each
// call (one fn is shared by all subtasks).
func KeyedProcessFunc[IN any, K comparable, OUT any](k Keyed[IN, K], fn func(ctx *KeyedContext[K, OUT], v IN) error) Stream[OUT] {
	return KeyedProcess(k, func() KeyedProcessFunction[K, IN, OUT] { return KeyedProcessElementFunc[K, IN, OUT](fn) })
}

type reduceOp[T any, K comparable] struct {
	base[T]
	keyed   Keyed[T, K]
	backend *statebackend.Keyed[K]
	acc     *statebackend.Value[K, T]
	fn      func(a, b T) T
}

func (o *reduceOp[T, K]) Open(ctx *runtime.Context) error {
	o.backend = o.keyed.newBackend(ctx)
	o.acc = statebackend.NewValue[K, T](o.backend, statebackend.TTL{})
	_, err := o.backend.Register("reduce", o.acc)
	return err
}

func (o *reduceOp[T, K]) ProcessElement(v T, ts int64) {
	o.backend.SetCurrentKey(o.keyed.key(v))
	if old, ok := o.acc.Value(); ok {
		v = o.fn(old, v)
	}
	o.acc.Update(v)
	o.out.Collect(v, ts)
}

// Reduce combines each key's records with fn and emits the running result
// after every record (a rolling reduce, as Flink's KeyedStream.reduce).
func Reduce[T any, K comparable](k Keyed[T, K], fn func(acc, v T) T) Stream[T] {
	return addKeyedOperator(k, "reduce", "Reduce", func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &reduceOp[T, K]{base: base[T]{out}, keyed: k, fn: fn}, nil
	})
}
