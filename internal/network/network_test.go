package network_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/network"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestChannelCreditsBlockProducerUntilRecycle(t *testing.T) {
	const buffers, batch = 3, 4
	n := network.NewNotifier()
	ch := network.NewChannel[int](buffers, batch, n)
	require.Equal(t, buffers, ch.Buffers())
	require.Equal(t, batch, ch.BatchSize)

	ctx := context.Background()
	for i := range buffers {
		b, err := ch.Acquire(ctx)
		require.NoError(t, err)
		require.Empty(t, b.Recs)
		require.GreaterOrEqual(t, cap(b.Recs), batch)
		b.Recs = append(b.Recs, network.Rec[int]{V: i, Ts: int64(i)})
		ch.Send(b)
	}
	// Every credit is spent: the producer can take no more buffers.
	_, ok := ch.TryAcquire()
	require.False(t, ok)

	acquired := make(chan *network.Batch[int])
	go func() {
		b, err := ch.Acquire(ctx)
		if err != nil {
			panic(err)
		}
		acquired <- b
	}()
	select {
	case <-acquired:
		t.Fatal("producer got a buffer while the consumer held them all")
	case <-time.After(20 * time.Millisecond):
	}

	// The consumer sees the batches in order; recycling one returns a credit.
	b, ok := ch.Poll()
	require.True(t, ok)
	require.Equal(t, []network.Rec[int]{{V: 0, Ts: 0}}, b.Recs)
	ch.Recycle(b)
	got := <-acquired
	require.Empty(t, got.Recs, "a recycled buffer comes back empty")
	require.Equal(t, network.Records, got.Kind)

	for want := 1; want < buffers; want++ {
		b, ok := ch.Poll()
		require.True(t, ok)
		require.Equal(t, want, b.Recs[0].V)
		ch.Recycle(b)
	}
	_, ok = ch.Poll()
	require.False(t, ok)
	ch.Recycle(got)
}

func TestRecycleResetsEventAndDropsReferences(t *testing.T) {
	ch := network.NewChannel[*int](1, 2, network.NewNotifier())
	b, _ := ch.TryAcquire()
	x := 5
	b.Recs = append(b.Recs, network.Rec[*int]{V: &x}, network.Rec[*int]{V: &x})
	b.Kind, b.Value = network.Watermark, 77
	ch.Send(b)
	b, _ = ch.Poll()
	backing := b.Recs[:2]
	ch.Recycle(b)
	b, _ = ch.TryAcquire()
	require.Equal(t, network.Records, b.Kind)
	require.Zero(t, b.Value)
	require.Empty(t, b.Recs)
	require.Nil(t, backing[0].V, "recycled records must not keep values alive")
	require.Nil(t, backing[1].V)
}

func TestNewChannelClampsSizes(t *testing.T) {
	ch := network.NewChannel[int](0, 0, network.NewNotifier())
	require.Equal(t, 1, ch.Buffers())
	require.Equal(t, 1, ch.BatchSize)
}

func TestAcquireHonoursCancel(t *testing.T) {
	ch := network.NewChannel[int](1, 1, network.NewNotifier())
	_, ok := ch.TryAcquire()
	require.True(t, ok)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := ch.Acquire(ctx)
		errc <- err
	}()
	time.Sleep(5 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, network.ErrCanceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire did not return after cancel")
	}

	// A free buffer is taken even from a cancelled context.
	ch2 := network.NewChannel[int](1, 1, network.NewNotifier())
	b, err := ch2.Acquire(ctx)
	require.NoError(t, err)
	require.NotNil(t, b)
}

func TestNotifierCollapsesSignals(t *testing.T) {
	n := network.NewNotifier()
	for range 10 {
		n.Notify() // never blocks
	}
	select {
	case <-n:
	default:
		t.Fatal("no wake-up after Notify")
	}
	select {
	case <-n:
		t.Fatal("ten signals must collapse into one wake-up")
	default:
	}

	// Send notifies the consumer.
	ch := network.NewChannel[int](2, 1, n)
	b, _ := ch.TryAcquire()
	ch.Send(b)
	b, _ = ch.TryAcquire()
	ch.Send(b)
	<-n
	select {
	case <-n:
		t.Fatal("two sends must collapse into one wake-up")
	default:
	}
}

func TestSingleProducerSingleConsumerOrder(t *testing.T) {
	const total = 10_000
	n := network.NewNotifier()
	ch := network.NewChannel[int](4, 16, n)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var b *network.Batch[int]
		for i := range total {
			if b == nil {
				var err error
				b, err = ch.Acquire(ctx)
				if err != nil {
					panic(err)
				}
			}
			b.Recs = append(b.Recs, network.Rec[int]{V: i})
			if len(b.Recs) == ch.BatchSize {
				ch.Send(b)
				b = nil
			}
		}
		if b == nil {
			b, _ = ch.Acquire(ctx)
		}
		ch.Send(b)
		e, _ := ch.Acquire(ctx)
		e.Kind = network.EndOfPartition
		ch.Send(e)
	}()
	next := 0
	maxHeld := 0
	for done := false; !done; {
		b, ok := ch.Poll()
		if !ok {
			<-n
			continue
		}
		maxHeld = max(maxHeld, len(b.Recs))
		for _, r := range b.Recs {
			require.Equal(t, next, r.V)
			next++
		}
		done = b.Kind == network.EndOfPartition
		ch.Recycle(b)
	}
	wg.Wait()
	require.Equal(t, total, next)
	require.LessOrEqual(t, maxHeld, 16)
}

func TestRegistryCreatesOnceAndReleasesJobs(t *testing.T) {
	r := network.NewRegistry()
	created := 0
	create := func() any {
		created++
		return network.NewChannel[int](1, 1, nil)
	}
	k := network.ChannelKey{Job: "j1", Edge: 3, Producer: 0, Consumer: 1}
	c1 := r.Channel(k, create)
	c2 := r.Channel(k, create)
	require.Same(t, c1.(*network.Channel[int]), c2.(*network.Channel[int]), "producer and consumer must share one channel")
	require.Equal(t, 1, created)
	require.Equal(t, "j1#0/e3/0->1", k.String())

	// Concurrent first use from both sides still creates once.
	var wg sync.WaitGroup
	k2 := network.ChannelKey{Job: "j1", Edge: 4}
	results := make([]any, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.Channel(k2, func() any { return network.NewChannel[int](1, 1, nil) })
		}()
	}
	wg.Wait()
	for _, c := range results {
		require.Same(t, results[0].(*network.Channel[int]), c.(*network.Channel[int]))
	}

	n1 := r.Notifier(network.TaskKey{Job: "j1", Vertex: 1, Subtask: 0})
	n2 := r.Notifier(network.TaskKey{Job: "j1", Vertex: 1, Subtask: 0})
	n1.Notify()
	select {
	case <-n2:
	default:
		t.Fatal("one task must get one notifier")
	}
	n3 := r.Notifier(network.TaskKey{Job: "j1", Vertex: 1, Subtask: 1})
	n3.Notify()
	select {
	case <-n1:
		t.Fatal("another subtask's notifier woke this one")
	default:
	}

	other := network.ChannelKey{Job: "j2", Edge: 3}
	r.Channel(other, create)
	nOther := r.Notifier(network.TaskKey{Job: "j2"})
	require.Equal(t, 3, r.Len())

	r.ReleaseJob("j1")
	require.Equal(t, 1, r.Len(), "only j2's channel is left")
	c3 := r.Channel(k, create)
	require.NotSame(t, c1.(*network.Channel[int]), c3.(*network.Channel[int]), "a released channel is created anew")
	require.Equal(t, 3, created)
	n4 := r.Notifier(network.TaskKey{Job: "j1", Vertex: 1, Subtask: 0})
	n4.Notify()
	select {
	case <-n1:
		t.Fatal("a released notifier was handed out again")
	default:
	}
	<-n4
	nOther.Notify()
	<-r.Notifier(network.TaskKey{Job: "j2"})
	r.ReleaseJob("j2")
	r.ReleaseJob("j1")
	require.Zero(t, r.Len())
}

func TestEventKindString(t *testing.T) {
	for k, s := range map[network.EventKind]string{
		network.Records: "records", network.Watermark: "watermark", network.Idle: "idle",
		network.EndOfPartition: "end-of-partition", network.Barrier: "barrier", network.CancelBarrier: "cancel-barrier",
		network.EventKind(99): "unknown",
	} {
		require.Equal(t, s, k.String())
	}
	require.Equal(t, "exactly-once", network.ExactlyOnce.String())
	require.Equal(t, "at-least-once", network.AtLeastOnce.String())
	require.Equal(t, "unknown", network.CheckpointMode(9).String())
	require.Equal(t, "checkpoint", network.Checkpoint.String())
	require.Equal(t, "savepoint", network.Savepoint.String())
	require.Equal(t, "unknown", network.SnapshotKind(9).String())
}

// A barrier's options ride on an event-only batch and are cleared when the
// batch is recycled, so the next event in that buffer does not inherit them.
func TestBarrierOptionsRecycled(t *testing.T) {
	ch := network.NewChannel[int](1, 4, network.NewNotifier())
	b, ok := ch.TryEvent()
	require.True(t, ok)
	b.Kind, b.Value = network.Barrier, 3
	b.Barrier = network.BarrierOptions{Mode: network.AtLeastOnce, Kind: network.Savepoint, Timestamp: 42}
	ch.Send(b)
	got, ok := ch.Poll()
	require.True(t, ok)
	require.Equal(t, network.BarrierOptions{Mode: network.AtLeastOnce, Kind: network.Savepoint, Timestamp: 42}, got.Barrier)
	ch.Recycle(got)
	for range 4 {
		e, ok := ch.TryEvent()
		require.True(t, ok)
		require.Equal(t, network.BarrierOptions{}, e.Barrier)
		require.Equal(t, network.Records, e.Kind)
	}
}

// A priority event overtakes the queued batches: the consumer polls it
// first, the producer sees exactly the batches it overtook (under the
// lock, so none the consumer already took), and the overtaken batches are
// still delivered afterwards, in order. PollPriority leaves them queued.
func TestChannelPriorityLaneOvertakesQueuedBatches(t *testing.T) {
	n := network.NewNotifier()
	ch := network.NewChannel[int](4, 2, n)
	send := func(vs ...int) {
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		for _, v := range vs {
			b.Recs = append(b.Recs, network.Rec[int]{V: v, Ts: int64(v)})
		}
		ch.Send(b)
	}
	send(1, 2)
	send(3)
	send(4, 5)
	first, ok := ch.Poll()
	require.True(t, ok)
	require.Equal(t, 1, first.Recs[0].V)
	ch.Recycle(first)
	<-n // drain the wake-ups of the sends

	var overtaken []int
	ch.SendPriority(network.Barrier, 7, network.BarrierOptions{Mode: network.Unaligned}, func(b *network.Batch[int]) {
		for _, r := range b.Recs {
			overtaken = append(overtaken, r.V)
		}
	})
	require.Equal(t, []int{3, 4, 5}, overtaken, "the batches queued when the barrier went out")
	select {
	case <-n:
	default:
		t.Fatal("a priority event must wake the consumer")
	}
	require.True(t, ch.HasPriority())
	require.Equal(t, 2, ch.Queued(), "priority events are not counted as queued data")

	p, ok := ch.PollPriority()
	require.True(t, ok)
	require.Equal(t, network.Barrier, p.Kind)
	require.Equal(t, int64(7), p.Value)
	require.Equal(t, network.Unaligned, p.Barrier.Mode)
	ch.Recycle(p) // a priority batch belongs to no pool: dropped
	_, ok = ch.PollPriority()
	require.False(t, ok, "PollPriority never returns data")
	require.False(t, ch.HasPriority())

	var got []int
	for {
		b, ok := ch.Poll()
		if !ok {
			break
		}
		for _, r := range b.Recs {
			got = append(got, r.V)
		}
		ch.Recycle(b)
	}
	require.Equal(t, []int{3, 4, 5}, got, "overtaken batches are still delivered, in order")
	// Every credit is back, and only the credits: the priority batch did
	// not join the pool.
	for range ch.Buffers() {
		_, ok := ch.TryAcquire()
		require.True(t, ok)
	}
	_, ok = ch.TryAcquire()
	require.False(t, ok)
}

// Poll takes a priority event before queued data, and a queue that is
// sent to and polled from for a long time without emptying stays bounded
// and in order.
func TestChannelPollPrefersPriorityAndKeepsOrder(t *testing.T) {
	ch := network.NewChannel[int](2, 1, network.NewNotifier())
	next, want := 0, 0
	send := func() {
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		b.Recs = append(b.Recs, network.Rec[int]{V: next})
		next++
		ch.Send(b)
	}
	send()
	for i := range 1000 {
		send()
		if i == 500 {
			ch.SendPriority(network.CancelBarrier, 3, network.BarrierOptions{}, nil)
			b, ok := ch.Poll()
			require.True(t, ok)
			require.Equal(t, network.CancelBarrier, b.Kind)
		}
		b, ok := ch.Poll()
		require.True(t, ok)
		require.Equal(t, want, b.Recs[0].V)
		want++
		ch.Recycle(b)
	}
	require.Equal(t, 1, ch.Queued())
}

// A queued aligned barrier with an alignment timeout announces its deadline
// (trigger time + timeout); Overtake takes it out of the stream, handing
// over the records before it (those of the batches ahead and of its own
// batch), which stay queued as plain records.
func TestChannelOvertakeTimedOutBarrier(t *testing.T) {
	ch := network.NewChannel[int](4, 4, network.NewNotifier())
	send := func(kind network.EventKind, opts network.BarrierOptions, vs ...int) {
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		for _, v := range vs {
			b.Recs = append(b.Recs, network.Rec[int]{V: v})
		}
		b.Kind, b.Barrier = kind, opts
		if kind == network.Barrier {
			b.Value = 9
		}
		ch.Send(b)
	}
	require.Zero(t, ch.OvertakeDeadline())
	send(network.Records, network.BarrierOptions{}, 1, 2)
	send(network.Barrier, network.BarrierOptions{Timestamp: 1000, AlignedTimeout: 50}, 3)
	send(network.Records, network.BarrierOptions{}, 4)
	require.Equal(t, int64(1050), ch.OvertakeDeadline())

	var pre []int
	id, opts, ok := ch.Overtake(func(recs []network.Rec[int]) {
		for _, r := range recs {
			pre = append(pre, r.V)
		}
	})
	require.True(t, ok)
	require.Equal(t, int64(9), id)
	require.Equal(t, int64(50), opts.AlignedTimeout)
	require.Equal(t, []int{1, 2, 3}, pre)
	require.Zero(t, ch.OvertakeDeadline())

	var got []int
	for {
		b, ok := ch.Poll()
		if !ok {
			break
		}
		require.Equal(t, network.Records, b.Kind, "the barrier is gone from the stream")
		for _, r := range b.Recs {
			got = append(got, r.V)
		}
		ch.Recycle(b)
	}
	require.Equal(t, []int{1, 2, 3, 4}, got)
}

// A channel with a recycle hook hands every batch the consumer recycles
// to the hook, pooled or not, and never to its own pools.
func TestRecycleHookOwnsRecycledBatches(t *testing.T) {
	n := network.NewNotifier()
	ch := network.NewChannel[int](1, 4, n)
	var got []*network.Batch[int]
	ch.SetRecycleHook(func(b *network.Batch[int]) { got = append(got, b) })
	own := &network.Batch[int]{Recs: []network.Rec[int]{{V: 1}}}
	ch.Send(own)
	ch.SendPriority(network.Barrier, 1, network.BarrierOptions{Mode: network.Unaligned}, nil)
	p, ok := ch.Poll()
	require.True(t, ok)
	require.Equal(t, network.Barrier, p.Kind)
	ch.Recycle(p)
	b, ok := ch.Poll()
	require.True(t, ok)
	require.Same(t, own, b)
	ch.Recycle(b)
	require.Equal(t, []*network.Batch[int]{p, own}, got)
	require.Equal(t, []network.Rec[int]{{V: 1}}, own.Recs, "the hook, not Recycle, resets the batch")
	// The channel's own buffer is still the only one in its pool.
	_, ok = ch.TryAcquire()
	require.True(t, ok)
	_, ok = ch.TryAcquire()
	require.False(t, ok)
}
