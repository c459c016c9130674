package runtime_test

import (
	"testing"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

type nopOp struct{ hooks }

func (*nopOp) ProcessElement(int, int64) {}
func (*nopOp) ProcessWatermark(int64)    {}
func (*nopOp) ProcessIdle()              {}

type passOn struct {
	hooks
	out runtime.Output[int]
}

func (p *passOn) ProcessElement(v int, ts int64) { p.out.Collect(v, ts) }
func (p *passOn) ProcessWatermark(int64)         {}
func (p *passOn) ProcessIdle()                   {}

// BenchmarkChainHops is the cost of the chaining machinery alone: one op is
// one record through four chained hops (three pass-through operators and a
// no-op): counting, the current-operator index and the cancellation check
// of each hop.
func BenchmarkChainHops(b *testing.B) {
	task := runtime.NewTask(info(0, 1), network.NewNotifier(), nil, quiet)
	ops := runtime.Ops[int]{}
	var in [4]runtime.Counter
	out := ops.Chain(&nopOp{}, &in[0], "Nop", task.CurrentOperator(), 4, task.CancelFlag()).(runtime.Output[int])
	for i := 3; i >= 1; i-- {
		out = ops.Chain(&passOn{out: out}, &in[i], "Pass", task.CurrentOperator(), i, task.CancelFlag()).(runtime.Output[int])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out.Collect(i, int64(i))
	}
}
