package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newChannels(n, buffers, batch int) ([]*network.Channel[int], network.Notifier) {
	notify := network.NewNotifier()
	chs := make([]*network.Channel[int], n)
	for i := range chs {
		chs[i] = network.NewChannel[int](buffers, batch, notify)
	}
	return chs, notify
}

// drain polls every batch waiting on ch and recycles it.
func drain(ch *network.Channel[int]) []network.Batch[int] {
	var out []network.Batch[int]
	for {
		b, ok := ch.Poll()
		if !ok {
			return out
		}
		c := network.Batch[int]{Kind: b.Kind, Value: b.Value, Recs: append([]network.Rec[int](nil), b.Recs...), Marks: append([]network.Mark(nil), b.Marks...)}
		out = append(out, c)
		ch.Recycle(b)
	}
}

func values(bs []network.Batch[int]) []int {
	var vs []int
	for _, b := range bs {
		for _, r := range b.Recs {
			vs = append(vs, r.V)
		}
	}
	return vs
}

func TestWriterForwardBatchesAndFlush(t *testing.T) {
	chs, _ := newChannels(1, 8, 3)
	w := runtime.NewWriter(context.Background(), runtime.Forward, chs, nil, 128)
	for i := range 7 {
		w.Collect(i, int64(100+i))
	}
	got := drain(chs[0])
	require.Len(t, got, 2, "two full batches are sent, the partial third waits")
	require.Equal(t, []network.Rec[int]{{V: 0, Ts: 100}, {V: 1, Ts: 101}, {V: 2, Ts: 102}}, got[0].Recs)
	require.Equal(t, []int{3, 4, 5}, values(got[1:]))

	w.Flush()
	got = drain(chs[0])
	require.Len(t, got, 1)
	require.Equal(t, []network.Rec[int]{{V: 6, Ts: 106}}, got[0].Recs)
	w.Flush()
	require.Empty(t, drain(chs[0]), "flushing with nothing buffered sends nothing")
}

func TestWriterRebalance(t *testing.T) {
	chs, _ := newChannels(3, 8, 100)
	w := runtime.NewWriter(context.Background(), runtime.Rebalance, chs, nil, 128)
	for i := range 30 {
		w.Collect(i, 0)
	}
	w.Flush()
	var all []int
	for _, ch := range chs {
		vs := values(drain(ch))
		require.Len(t, vs, 10, "round robin spreads evenly")
		for j := 1; j < len(vs); j++ {
			require.Equal(t, vs[j-1]+3, vs[j], "consecutive records go to consecutive channels")
		}
		all = append(all, vs...)
	}
	require.ElementsMatch(t, seq(30), all)
}

func TestWriterHashByKeyGroup(t *testing.T) {
	const maxPar = 8
	chs, _ := newChannels(2, 8, 100)
	kgOf := runtime.KeyGroupOf[int](func(v int) int { return v % maxPar })
	w := runtime.NewWriter(context.Background(), runtime.Hash, chs, kgOf, maxPar)
	for i := range 40 {
		w.Collect(i, 0)
	}
	w.Flush()
	for sub, ch := range chs {
		vs := values(drain(ch))
		require.Len(t, vs, 20)
		for _, v := range vs {
			// Subtask 0 of 2 owns key groups 0..3, subtask 1 owns 4..7.
			require.Equal(t, sub, (v%maxPar)/4, "record %d (key group %d) on subtask %d", v, v%maxPar, sub)
		}
	}
}

func TestWriterBroadcast(t *testing.T) {
	chs, _ := newChannels(3, 8, 4)
	w := runtime.NewWriter(context.Background(), runtime.Broadcast, chs, nil, 128)
	for i := range 10 {
		w.Collect(i, 0)
	}
	w.EndOfPartition()
	for _, ch := range chs {
		bs := drain(ch)
		require.Equal(t, seq(10), values(bs))
		require.Equal(t, network.EndOfPartition, bs[len(bs)-1].Kind)
	}
}

func TestWriterEventsFollowRecords(t *testing.T) {
	chs, _ := newChannels(2, 8, 100)
	w := runtime.NewWriter(context.Background(), runtime.Rebalance, chs, nil, 128)
	w.Collect(1, 10) // → channel 1
	w.EmitWatermark(10)
	w.EmitWatermark(10) // not advancing: dropped
	w.EmitWatermark(5)  // going back: dropped
	w.Flush()           // the task is about to block: the watermark goes out
	w.Collect(2, 11)    // → channel 0
	w.EmitWatermark(11)
	w.MarkIdle()
	w.MarkIdle() // already idle: dropped
	w.EmitWatermark(11)
	w.EndOfPartition()

	// A batch is its records, then at most one event.
	kinds := func(bs []network.Batch[int]) []string {
		var out []string
		for _, b := range bs {
			s := ""
			for _, r := range b.Recs {
				s += string(rune('0'+r.V)) + " "
			}
			s += b.Kind.String()
			if b.Kind == network.Watermark {
				s += " " + string(rune('0'+b.Value-10))
			}
			out = append(out, s)
		}
		return out
	}
	// Each channel sees the records emitted before a watermark ahead of it
	// (in the same batch); the watermark goes to every channel, before
	// idleness; an idle stream's watermark is re-sent (even unchanged) to
	// make it active again.
	require.Equal(t, []string{"watermark 0", "2 watermark 1", "idle", "watermark 1", "end-of-partition"}, kinds(drain(chs[0])))
	require.Equal(t, []string{"1 watermark 0", "watermark 1", "idle", "watermark 1", "end-of-partition"}, kinds(drain(chs[1])))
}

// A writer whose credits are spent is not available, goes on into the
// overdraft in the middle of a batch, and only then blocks until the
// consumer hands a buffer back.
func TestWriterBlocksWithoutCreditsAndCounts(t *testing.T) {
	chs, notify := newChannels(1, 2, 1)
	w := runtime.NewWriter(context.Background(), runtime.Forward, chs, nil, 128)
	require.True(t, w.Available())
	w.Collect(0, 0)
	w.Collect(1, 0)
	require.Zero(t, w.BlockedCount())
	require.False(t, w.Available(), "both credits are with the consumer")
	require.Equal(t, int64(1), w.BlockedCount(), "a task that finds its output unavailable waits: counted")
	for i := 2; i < 2+network.DefaultOverdraftBuffers; i++ {
		w.Collect(i, 0) // the overdraft: no wait
	}
	require.Equal(t, int64(1), w.BlockedCount())
	done := make(chan struct{})
	last := 2 + network.DefaultOverdraftBuffers
	go func() {
		defer close(done)
		w.Collect(last, 0) // the overdraft is spent too: waits
	}()
	select {
	case <-done:
		t.Fatal("the writer did not wait for a credit")
	case <-time.After(20 * time.Millisecond):
	}
	<-notify
	b, ok := chs[0].Poll()
	require.True(t, ok)
	require.Equal(t, 0, b.Recs[0].V)
	chs[0].Recycle(b)
	<-done
	require.Equal(t, int64(2), w.BlockedCount())
	require.Equal(t, seq(last + 1)[1:], values(drain(chs[0])))
}

func TestFanoutCountingDiscard(t *testing.T) {
	chs, _ := newChannels(2, 4, 10)
	w1 := runtime.NewWriter(context.Background(), runtime.Forward, chs[:1], nil, 128)
	w2 := runtime.NewWriter(context.Background(), runtime.Forward, chs[1:], nil, 128)
	var c runtime.Counter
	ops := runtime.Ops[int]{}
	out := ops.Counting(ops.Fanout([]any{runtime.Output[int](w1), runtime.Output[int](w2)}), &c).(runtime.Output[int])
	for i := range 5 {
		out.Collect(i, 0)
	}
	out.EmitWatermark(3)
	w1.Flush()
	w2.Flush()
	require.Zero(t, c.Load(), "counts are published explicitly")
	c.Publish()
	require.Equal(t, int64(5), c.Load())
	for _, ch := range chs {
		bs := drain(ch)
		require.Equal(t, seq(5), values(bs))
		require.Equal(t, network.Watermark, bs[len(bs)-1].Kind)
	}
	d := ops.Fanout(nil).(runtime.Output[int])
	d.Collect(1, 1) // a Discard: no panic, nothing happens
	d.EmitWatermark(1)
	d.MarkIdle()
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// A backpressured task flushes only the channels whose consumer has nothing
// queued: a busy consumer's partial batch keeps filling, a starving one's
// goes out. Watermarks and events pass a channel whose credits are all with
// the consumer, in event-only batches.
func TestWriterFlushStarvingAndEventsWithoutCredit(t *testing.T) {
	chs, _ := newChannels(1, 2, 2)
	ch := chs[0]
	w := runtime.NewWriter(context.Background(), runtime.Forward, chs, nil, 128)
	w.Collect(1, 0)
	w.Collect(2, 0) // a full batch: sent
	w.Collect(3, 0) // the second credit, partly filled
	require.False(t, w.Available())
	w.FlushStarving()
	require.Equal(t, 1, ch.Queued(), "the consumer has a batch to work on: the partial one stays")

	held, ok := ch.Poll() // the consumer works on [1 2], holding its buffer
	require.True(t, ok)
	w.FlushStarving()
	require.Equal(t, 1, ch.Queued(), "the consumer is out of work: the partial batch goes")

	w.EmitWatermark(5)
	w.Flush() // no credit free: the watermark takes an event-only batch
	w.MarkIdle()
	require.False(t, w.Available())
	ch.Recycle(held)
	bs := drain(ch)
	require.Len(t, bs, 3)
	require.Equal(t, []int{3}, values(bs[:1]))
	require.Equal(t, network.Watermark, bs[1].Kind)
	require.Equal(t, int64(5), bs[1].Value)
	require.Equal(t, network.Idle, bs[2].Kind)
	require.True(t, w.Available())
}
