package runtime

import (
	"context"
	"github.com/strom-dev/strom/internal/network/tcp"

	"github.com/strom-dev/strom/internal/network"
)

// TypeOps creates the typed pieces of the data path for one record type
// without the caller knowing the type: the API layer, which knows every
// type, stores a TypeOps in each graph edge and node, and the task builder,
// which is not generic, wires tasks through it. Values of type any are
// *network.Channel[T] and Output[T] of the TypeOps' T.
type TypeOps interface {
	NewChannel(buffers, batchSize int, n network.Notifier) any
	// Remote opens the two ends of a channel whose producer and consumer
	// run in different processes (network/tcp), its records framed with
	// codec.For[T]; its channels are *network.Channel[T] as in process.
	Remote() tcp.Ops
	NewWriter(ctx context.Context, kind PartitionKind, channels []any, kgOf any, maxParallelism int) (Flusher, any)
	Fanout(outs []any) any
	Counting(out any, c *Counter) any
	// Chain returns an Output that calls next (a OneInput of T) directly,
	// counting into in and attributing panics to next: through cur (the
	// task's current-operator index, set to idx while next runs) when cur
	// is not nil, else by recovering and re-panicking with name. With
	// cancel (the task's flag), it aborts the task before a record once the
	// task is cancelled, so a fan-out into slow operators stops within one.
	Chain(next Operator, in *Counter, name string, cur *int, idx int, cancel *CancelFlag) any
	Discard() any
	// NewOneInputProcessor reads channels into head, a OneInput of T.
	NewOneInputProcessor(channels []any, head Operator, name string) (InputProcessor, *Counter)
}

// Ops is the TypeOps of T.
type Ops[T any] struct{}

func (Ops[T]) NewChannel(buffers, batchSize int, n network.Notifier) any {
	return network.NewChannel[T](buffers, batchSize, n)
}

func (Ops[T]) Remote() tcp.Ops { return tcp.OpsFor[T](nil) }

func (Ops[T]) NewWriter(ctx context.Context, kind PartitionKind, channels []any, kgOf any, maxParallelism int) (Flusher, any) {
	chs := make([]*network.Channel[T], len(channels))
	for i, c := range channels {
		chs[i] = c.(*network.Channel[T])
	}
	var kg KeyGroupOf[T]
	if kgOf != nil {
		kg = kgOf.(KeyGroupOf[T])
	}
	w := NewWriter(ctx, kind, chs, kg, maxParallelism)
	return w, Output[T](w)
}

func (Ops[T]) Fanout(outs []any) any {
	if len(outs) == 0 {
		return Output[T](Discard[T]{})
	}
	if len(outs) == 1 {
		return outs[0].(Output[T])
	}
	f := make(Fanout[T], len(outs))
	for i, o := range outs {
		f[i] = o.(Output[T])
	}
	return Output[T](f)
}

func (Ops[T]) Counting(out any, c *Counter) any {
	return Output[T](Counting[T]{Out: out.(Output[T]), C: c})
}

func (Ops[T]) Chain(next Operator, in *Counter, name string, cur *int, idx int, cancel *CancelFlag) any {
	if cur != nil {
		if cancel == nil {
			cancel = new(CancelFlag)
		}
		return Output[T](&ChainingOutput[T]{next: next.(OneInput[T]), in: in, cur: cur, idx: idx, cancel: cancel})
	}
	return Output[T](&guardedChainingOutput[T]{next: next.(OneInput[T]), in: in, name: name})
}

func (Ops[T]) Discard() any { return Output[T](Discard[T]{}) }

func (Ops[T]) NewOneInputProcessor(channels []any, head Operator, name string) (InputProcessor, *Counter) {
	chs := make([]*network.Channel[T], len(channels))
	for i, c := range channels {
		chs[i] = c.(*network.Channel[T])
	}
	p := NewOneInputProcessor(chs, head.(OneInput[T]))
	p.gate.name = name
	return p, &p.gate.In
}

// ChainingOutput passes records straight to the next operator of a chain.
// While the next operator runs, the task's current-operator index names it,
// so a panic anywhere below is attributed to the innermost operator without
// a deferred recover per record and hop (the index is not restored when a
// panic unwinds, which is exactly what makes it point at the culprit).
type ChainingOutput[T any] struct {
	next   OneInput[T]
	in     *Counter
	cur    *int
	idx    int
	cancel *CancelFlag
}

func (c *ChainingOutput[T]) Collect(v T, ts int64) {
	c.cancel.Check()
	c.in.n++
	prev := *c.cur
	*c.cur = c.idx
	c.next.ProcessElement(v, ts)
	*c.cur = prev
}

func (c *ChainingOutput[T]) EmitWatermark(wm int64) {
	if c.in.hasWM && wm < c.in.wm {
		// Behind the operator's restored watermark (no operator emits a
		// lower one otherwise): event time does not regress.
		return
	}
	c.in.noteWatermark(wm)
	prev := *c.cur
	*c.cur = c.idx
	c.next.ProcessWatermark(wm)
	*c.cur = prev
}

func (c *ChainingOutput[T]) MarkIdle() {
	prev := *c.cur
	*c.cur = c.idx
	c.next.ProcessIdle()
	*c.cur = prev
}

// guardedChainingOutput is ChainingOutput for chains run outside a Task
// (tests, tools): it attributes panics by recovering.
type guardedChainingOutput[T any] struct {
	next OneInput[T]
	in   *Counter
	name string
}

func (c *guardedChainingOutput[T]) Collect(v T, ts int64) {
	c.in.n++
	defer Guard(c.name)
	c.next.ProcessElement(v, ts)
}

func (c *guardedChainingOutput[T]) EmitWatermark(wm int64) {
	defer Guard(c.name)
	c.next.ProcessWatermark(wm)
}

func (c *guardedChainingOutput[T]) MarkIdle() {
	defer Guard(c.name)
	c.next.ProcessIdle()
}

// Guard, deferred around a call into operator code, turns a panic into the
// failure of the named operator. Failures already attributed to an inner
// operator, and cancellations, pass through unchanged.
func Guard(name string) {
	r := recover()
	if r == nil {
		return
	}
	panic(Attribute(name, r))
}

// Attribute converts a recovered panic value into a failure of operator name
// unless it already is a failure or a cancellation.
func Attribute(name string, r any) any {
	switch v := r.(type) {
	case failure:
		if v.op == "" {
			v.op = name
		}
		return v
	case canceled:
		return v
	case error:
		return failure{op: name, err: panicError{v: r, err: v}}
	}
	return failure{op: name, err: panicError{v: r}}
}

type panicError struct {
	v   any
	err error
}

func (p panicError) Error() string {
	if p.err != nil {
		return "panic: " + p.err.Error()
	}
	return "panic: " + formatAny(p.v)
}

func (p panicError) Unwrap() error { return p.err }

// NewTwoInput builds the input processor of a two-input head from erased
// channels.
func NewTwoInput[A, B any](ch1, ch2 []any, head Operator, name string) (InputProcessor, *Counter) {
	c1 := make([]*network.Channel[A], len(ch1))
	for i, c := range ch1 {
		c1[i] = c.(*network.Channel[A])
	}
	c2 := make([]*network.Channel[B], len(ch2))
	for i, c := range ch2 {
		c2[i] = c.(*network.Channel[B])
	}
	p := NewTwoInputProcessor(c1, c2, head.(TwoInput[A, B]))
	p.gate.name = name
	return p, &p.gate.In
}
