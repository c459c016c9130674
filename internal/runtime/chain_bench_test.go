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

// BenchmarkInputProcessor is the cost of the input side alone: one op is
// one record taken from a channel by a one-input processor and handed to a
// no-op operator, in batches of 512 (filling the batch is included).
func BenchmarkInputProcessor(b *testing.B) {
	ch := network.NewChannel[int](4, 512, network.NewNotifier())
	p := runtime.NewOneInputProcessor([]*network.Channel[int]{ch}, runtime.OneInput[int](&nopOp{}))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		buf, _ := ch.TryAcquire()
		n := min(ch.BatchSize, b.N-sent)
		for j := range n {
			buf.Recs = append(buf.Recs, network.Rec[int]{V: j})
		}
		ch.Send(buf)
		sent += n
		if progress, _ := p.Poll(); !progress {
			b.Fatal("no batch")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
