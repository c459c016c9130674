package strom

import (
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// Stream is a stream of records of type T: the output of an operator, a side
// output of one, or the union of several streams.
type Stream[T any] struct {
	env    *Environment
	inputs []streamInput
}

type streamInput struct {
	node *streamgraph.Node
	side string
}

// Env is the environment the stream belongs to.
func (s Stream[T]) Env() *Environment { return s.env }

// node returns the single operator producing the stream, or nil for a union.
func (s Stream[T]) node() *streamgraph.Node {
	if len(s.inputs) != 1 {
		return nil
	}
	return s.inputs[0].node
}

func (s Stream[T]) configure(what string, fn func(n *streamgraph.Node)) Stream[T] {
	n := s.node()
	if n == nil {
		if s.env != nil {
			s.env.fail(errorf("%s: set it on the operators before the union", what))
		}
		return s
	}
	fn(n)
	return s
}

// Name names the operator that produced the stream (shown in results,
// logs and errors).
func (s Stream[T]) Name(name string) Stream[T] {
	return s.configure("Name", func(n *streamgraph.Node) { n.Name = name })
}

// UID sets the operator's stable id: the key of its state in savepoints.
// Without one, a UID is derived from the operator's position in the graph.
func (s Stream[T]) UID(uid string) Stream[T] {
	return s.configure("UID", func(n *streamgraph.Node) { n.UID = uid })
}

// Parallelism sets how many parallel subtasks run the operator.
func (s Stream[T]) Parallelism(p int) Stream[T] {
	return s.configure("Parallelism", func(n *streamgraph.Node) {
		if p < 1 {
			s.env.fail(errorf("operator %q: parallelism %d must be at least 1", n.Name, p))
			return
		}
		if n.NonParallel != "" && p != 1 {
			s.env.fail(errorf("operator %q runs as one subtask only (%s); parallelism %d is not possible", n.Name, n.NonParallel, p))
			return
		}
		n.Parallelism = p
	})
}

// MaxParallelism sets the operator's maximum parallelism (its number of key
// groups when keyed). Keyed operators must use the job's value.
func (s Stream[T]) MaxParallelism(m int) Stream[T] {
	return s.configure("MaxParallelism", func(n *streamgraph.Node) {
		if m < 1 {
			s.env.fail(errorf("operator %q: max parallelism %d must be at least 1", n.Name, m))
			return
		}
		n.MaxParallelism = m
	})
}

// SlotSharingGroup puts the operator in a slot sharing group: operators of
// different groups never share a slot.
func (s Stream[T]) SlotSharingGroup(group string) Stream[T] {
	return s.configure("SlotSharingGroup", func(n *streamgraph.Node) { n.SlotSharingGroup = group })
}

// DisableChaining starts a new task at this operator.
func (s Stream[T]) DisableChaining() Stream[T] {
	return s.configure("DisableChaining", func(n *streamgraph.Node) { n.DisableChaining = true })
}

// Union merges streams of the same type into one.
func Union[T any](first Stream[T], more ...Stream[T]) Stream[T] {
	out := Stream[T]{env: first.env, inputs: append([]streamInput(nil), first.inputs...)}
	for _, s := range more {
		if s.env != first.env {
			first.env.fail(errorf("Union: streams belong to different environments"))
			continue
		}
		out.inputs = append(out.inputs, s.inputs...)
	}
	return out
}

// addOperator adds a one-input operator fed by in over edges of the given
// partitioning. build creates the operator for a subtask given its output.
func addOperator[IN, OUT any](in Stream[IN], kind, name string, part runtime.PartitionKind, kgFactory func(int) any,
	build func(ctx *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error)) Stream[OUT] {
	env := in.env
	n := env.graph.AddNode(&streamgraph.Node{
		Kind:      kind,
		Name:      name,
		NumInputs: 1,
		Out:       runtime.Ops[OUT]{},
		Build: func(ctx *runtime.Context, out any) (runtime.Operator, error) {
			return build(ctx, out.(runtime.Output[OUT]))
		},
		Input: func(channels [][]any, head runtime.Operator, name string) (runtime.InputProcessor, *runtime.Counter) {
			return runtime.Ops[IN]{}.NewOneInputProcessor(channels[0], head, name)
		},
	})
	connectInputs(env, in.inputs, n, 0, runtime.Ops[IN]{}, part, kgFactory)
	return Stream[OUT]{env: env, inputs: []streamInput{{node: n}}}
}

func connectInputs(env *Environment, inputs []streamInput, to *streamgraph.Node, idx int, ops runtime.TypeOps, part runtime.PartitionKind, kgFactory func(int) any) {
	for _, in := range inputs {
		env.graph.Connect(&streamgraph.Edge{
			From:            in.node.ID,
			To:              to.ID,
			Partition:       part,
			InputIndex:      idx,
			SideTag:         in.side,
			Type:            ops,
			KeyGroupFactory: kgFactory,
		})
	}
}

// base gives operators the pass-through parts of runtime.OneInput.
type base[OUT any] struct {
	out runtime.Output[OUT]
}

func (b *base[OUT]) Open(*runtime.Context) error { return nil }
func (b *base[OUT]) Finish() error               { return nil }
func (b *base[OUT]) Close() error                { return nil }
func (b *base[OUT]) ProcessWatermark(wm int64)   { b.out.EmitWatermark(wm) }
func (b *base[OUT]) ProcessIdle()                { b.out.MarkIdle() }

type mapOp[IN, OUT any] struct {
	base[OUT]
	fn func(IN) OUT
}

func (o *mapOp[IN, OUT]) ProcessElement(v IN, ts int64) { o.out.Collect(o.fn(v), ts) }

// Map applies fn to every record. fn cannot fail (a panic fails the job);
// use TryMap for a function that returns an error.
func Map[IN, OUT any](s Stream[IN], fn func(IN) OUT) Stream[OUT] {
	return addOperator(s, "map", "Map", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		return &mapOp[IN, OUT]{base: base[OUT]{out}, fn: fn}, nil
	})
}

type filterOp[T any] struct {
	base[T]
	fn func(T) bool
}

func (o *filterOp[T]) ProcessElement(v T, ts int64) {
	if o.fn(v) {
		o.out.Collect(v, ts)
	}
}

// Filter keeps the records for which keep returns true (TryFilter for a
// function that can fail).
func Filter[T any](s Stream[T], keep func(T) bool) Stream[T] {
	return addOperator(s, "filter", "Filter", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &filterOp[T]{base: base[T]{out}, fn: keep}, nil
	})
}

// Filter keeps the records for which keep returns true.
func (s Stream[T]) Filter(keep func(T) bool) Stream[T] { return Filter(s, keep) }

// Collector receives the records a function emits.
type Collector[T any] interface {
	Collect(v T)
}

type flatMapOp[IN, OUT any] struct {
	base[OUT]
	fn func(IN, Collector[OUT])
	ts int64
}

func (o *flatMapOp[IN, OUT]) ProcessElement(v IN, ts int64) {
	o.ts = ts
	o.fn(v, o)
}

func (o *flatMapOp[IN, OUT]) Collect(v OUT) { o.out.Collect(v, o.ts) }

// FlatMap calls fn for every record; fn emits any number of records, which
// carry the input record's timestamp (TryFlatMap for a function that can
// fail).
func FlatMap[IN, OUT any](s Stream[IN], fn func(v IN, out Collector[OUT])) Stream[OUT] {
	return addOperator(s, "flatmap", "FlatMap", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		return &flatMapOp[IN, OUT]{base: base[OUT]{out}, fn: fn}, nil
	})
}

// named remembers the operator's name, so that an error a user function
// returns is reported against it.
type named[OUT any] struct {
	base[OUT]
	name string
}

func (n *named[OUT]) Open(ctx *runtime.Context) error {
	n.name = ctx.OperatorName
	return nil
}

type tryMapOp[IN, OUT any] struct {
	named[OUT]
	fn func(IN) (OUT, error)
}

func (o *tryMapOp[IN, OUT]) ProcessElement(v IN, ts int64) {
	r, err := o.fn(v)
	if err != nil {
		runtime.Fail(o.name, err)
	}
	o.out.Collect(r, ts)
}

// TryMap applies fn to every record; an error fn returns fails the job with
// a *TaskError naming this operator and wrapping the error. Map is for
// functions that cannot fail.
func TryMap[IN, OUT any](s Stream[IN], fn func(IN) (OUT, error)) Stream[OUT] {
	return addOperator(s, "map", "Map", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		return &tryMapOp[IN, OUT]{named: named[OUT]{base: base[OUT]{out}}, fn: fn}, nil
	})
}

type tryFilterOp[T any] struct {
	named[T]
	fn func(T) (bool, error)
}

func (o *tryFilterOp[T]) ProcessElement(v T, ts int64) {
	keep, err := o.fn(v)
	if err != nil {
		runtime.Fail(o.name, err)
	}
	if keep {
		o.out.Collect(v, ts)
	}
}

// TryFilter keeps the records for which keep returns true; an error fails
// the job (see TryMap).
func TryFilter[T any](s Stream[T], keep func(T) (bool, error)) Stream[T] {
	return addOperator(s, "filter", "Filter", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &tryFilterOp[T]{named: named[T]{base: base[T]{out}}, fn: keep}, nil
	})
}

type tryFlatMapOp[IN, OUT any] struct {
	named[OUT]
	fn func(IN, Collector[OUT]) error
	ts int64
}

func (o *tryFlatMapOp[IN, OUT]) ProcessElement(v IN, ts int64) {
	o.ts = ts
	if err := o.fn(v, o); err != nil {
		runtime.Fail(o.name, err)
	}
}

func (o *tryFlatMapOp[IN, OUT]) Collect(v OUT) { o.out.Collect(v, o.ts) }

// TryFlatMap calls fn for every record, as FlatMap; an error fn returns
// fails the job (see TryMap). Records fn emitted before the error are
// passed on.
func TryFlatMap[IN, OUT any](s Stream[IN], fn func(v IN, out Collector[OUT]) error) Stream[OUT] {
	return addOperator(s, "flatmap", "FlatMap", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.OneInput[IN], error) {
		return &tryFlatMapOp[IN, OUT]{named: named[OUT]{base: base[OUT]{out}}, fn: fn}, nil
	})
}

// Rebalance redistributes records round-robin over the next operator's
// subtasks (to even out skew).
func Rebalance[T any](s Stream[T]) Stream[T] {
	return addOperator(s, "rebalance", "Rebalance", runtime.Rebalance, nil, func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &passOp[T]{base[T]{out}}, nil
	})
}

// Broadcast sends every record to every subtask of the next operator.
func Broadcast[T any](s Stream[T]) Stream[T] {
	return addOperator(s, "broadcast", "Broadcast", runtime.Broadcast, nil, func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &passOp[T]{base[T]{out}}, nil
	})
}

type passOp[T any] struct{ base[T] }

func (o *passOp[T]) ProcessElement(v T, ts int64) { o.out.Collect(v, ts) }
