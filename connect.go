package strom

import (
	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// Connected is two keyed streams with the same key type, processed together
// by one two-input operator: records of both with the same key meet in the
// same subtask and share keyed state and timers.
type Connected[A, B any, K comparable] struct {
	a Keyed[A, K]
	b Keyed[B, K]
}

// Connect joins two keyed streams for KeyedCoProcess.
func Connect[A, B any, K comparable](a Keyed[A, K], b Keyed[B, K]) Connected[A, B, K] {
	if a.stream.env != b.stream.env {
		a.stream.env.fail(errorf("Connect: streams belong to different environments"))
	}
	return Connected[A, B, K]{a: a, b: b}
}

// KeyedCoProcessFunction processes the records of two connected keyed
// streams (Flink's KeyedCoProcessFunction). It may also implement Open,
// Close and OnTimer as KeyedProcessFunction does.
type KeyedCoProcessFunction[K comparable, A, B, OUT any] interface {
	ProcessElement1(ctx *KeyedContext[K, OUT], v A) error
	ProcessElement2(ctx *KeyedContext[K, OUT], v B) error
}

type coProcessOp[K comparable, A, B, OUT any] struct {
	keyedFunction[K, OUT]
	c  Connected[A, B, K]
	fn KeyedCoProcessFunction[K, A, B, OUT]
}

func (o *coProcessOp[K, A, B, OUT]) Open(ctx *runtime.Context) error {
	return o.open(ctx, o.c.a.newBackend(ctx), o.fn)
}

func (o *coProcessOp[K, A, B, OUT]) ProcessElement1(v A, ts int64) {
	if err := o.fn.ProcessElement1(o.element(o.c.a.key(v), ts), v); err != nil {
		runtime.Fail(o.Name, err)
	}
}

func (o *coProcessOp[K, A, B, OUT]) ProcessElement2(v B, ts int64) {
	if err := o.fn.ProcessElement2(o.element(o.c.b.key(v), ts), v); err != nil {
		runtime.Fail(o.Name, err)
	}
}

func (o *coProcessOp[K, A, B, OUT]) Close() error { return closeFn(o.fn) }

// KeyedCoProcess runs a KeyedCoProcessFunction over two connected keyed
// streams (Flink's ConnectedStreams.process); newFn is called once per
// subtask.
func KeyedCoProcess[A, B any, K comparable, OUT any](c Connected[A, B, K], newFn func() KeyedCoProcessFunction[K, A, B, OUT]) Stream[OUT] {
	return addTwoInputOperator(c.a.stream, c.b.stream, "coprocess", "KeyedCoProcess", runtime.Hash, c.a.kgFactory(), c.b.kgFactory(),
		func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.TwoInput[A, B], error) {
			return &coProcessOp[K, A, B, OUT]{keyedFunction: keyedFunction[K, OUT]{KeyedFunction: operator.KeyedFunction[K, OUT]{Out: out}}, c: c, fn: newFn()}, nil
		})
}

// addTwoInputOperator adds an operator with two inputs of types A and B.
func addTwoInputOperator[A, B, OUT any](a Stream[A], b Stream[B], kind, name string, part runtime.PartitionKind, kgA, kgB func(int) any,
	build func(ctx *runtime.Context, out runtime.Output[OUT]) (runtime.TwoInput[A, B], error)) Stream[OUT] {
	env := a.env
	n := env.graph.AddNode(&streamgraph.Node{
		Kind:      kind,
		Name:      name,
		NumInputs: 2,
		Out:       runtime.Ops[OUT]{},
		Build: func(ctx *runtime.Context, out any) (runtime.Operator, error) {
			return build(ctx, out.(runtime.Output[OUT]))
		},
		Input: func(channels [][]any, head runtime.Operator, name string) (runtime.InputProcessor, *runtime.Counter) {
			return runtime.NewTwoInput[A, B](channels[0], channels[1], head, name)
		},
	})
	connectInputs(env, a.inputs, n, 0, runtime.Ops[A]{}, part, kgA)
	connectInputs(env, b.inputs, n, 1, runtime.Ops[B]{}, part, kgB)
	return Stream[OUT]{env: env, inputs: []streamInput{{node: n}}}
}
