package tcp_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// Every kind of batch crosses intact and in order: records with and
// without timestamps, watermarks among them, watermark, idle, aligned
// barriers with their options, cancel markers, end of partition.
func TestBatchesCrossInOrder(t *testing.T) {
	p, c := listen(t), listen(t)
	l := open[Item](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: 2, BatchSize: 8})
	want := []network.Batch[Item]{
		{Kind: network.Records, Recs: []network.Rec[Item]{{V: Item{1, "a"}, Ts: 10}, {V: Item{-2, ""}, Ts: network.NoTimestamp}, {V: Item{3, "ccc"}, Ts: -5}}},
		{Kind: network.Records, Recs: []network.Rec[Item]{{V: Item{4, "no ts"}, Ts: network.NoTimestamp}}},
		{Kind: network.Watermark, Value: 20, Recs: []network.Rec[Item]{{V: Item{5, "e"}, Ts: 15}, {V: Item{6, "f"}, Ts: 16}},
			Marks: []network.Mark{{Pos: 0, WM: 9}, {Pos: 2, WM: 16}}},
		{Kind: network.Idle},
		{Kind: network.Barrier, Value: 7, Barrier: network.BarrierOptions{Mode: network.ExactlyOnce, Kind: network.Savepoint, Timestamp: 1_700_000_000_000, AlignedTimeout: 0}},
		{Kind: network.Barrier, Value: 8, Barrier: network.BarrierOptions{Mode: network.AtLeastOnce, Kind: network.Checkpoint, Timestamp: 5}},
		{Kind: network.CancelBarrier, Value: 8},
		{Kind: network.Watermark, Value: network.MaxWatermark},
		{Kind: network.EndOfPartition, Value: 3},
	}
	go func() {
		for _, w := range want {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			b, err := l.out.Acquire(ctx)
			cancel()
			if err != nil {
				return // the test fails on what it did not receive
			}
			b.Kind, b.Value, b.Barrier = w.Kind, w.Value, w.Barrier
			b.Recs = append(b.Recs, w.Recs...)
			b.Marks = append(b.Marks, w.Marks...)
			l.out.Send(b)
		}
	}()
	for i, w := range want {
		got := recv(t, l)
		if len(w.Recs) == 0 {
			w.Recs = []network.Rec[Item]{}
		}
		if len(w.Marks) == 0 {
			w.Marks = []network.Mark{}
		}
		if len(got.Recs) == 0 {
			got.Recs = []network.Rec[Item]{}
		}
		if len(got.Marks) == 0 {
			got.Marks = []network.Mark{}
		}
		require.Equal(t, w, got, "batch %d", i)
	}
	// An ended channel released by its producer is no failure.
	p.ReleaseAttempt("job", 0)
	eventually(t, func() bool { return c.Len() == 0 }, "consumer forgets the channel its producer released")
	l.outErr.none(t)
	l.inErr.none(t)
}

// Many channels share one connection per direction, each in order.
func TestManyChannelsOneConnection(t *testing.T) {
	p, c := listen(t), listen(t)
	const channels, batches, size = 40, 50, 16
	links := make([]*link[int64], channels)
	for i := range links {
		links[i] = open[int64](t, p, c, key(0, i), tcp.ChannelOptions{Buffers: 2, BatchSize: size})
	}
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			n := int64(0)
			for range batches {
				b, err := l.out.Acquire(ctx)
				if err != nil {
					return
				}
				for range size {
					b.Recs = append(b.Recs, network.Rec[int64]{V: n, Ts: n})
					n++
				}
				l.out.Send(b)
			}
			b, err := l.out.Acquire(ctx)
			if err != nil {
				return
			}
			b.Kind = network.EndOfPartition
			l.out.Send(b)
		})
	}
	for i, l := range links {
		next := int64(0)
		for {
			b := recv(t, l)
			for _, r := range b.Recs {
				require.Equal(t, next, r.V, "channel %d", i)
				require.Equal(t, next, r.Ts)
				next++
			}
			if b.Kind == network.EndOfPartition {
				break
			}
		}
		require.Equal(t, int64(batches*size), next)
	}
	wg.Wait()
	require.Equal(t, 1, p.Conns())
	require.Equal(t, 1, c.Conns())
	require.Equal(t, channels, p.Len())
	require.Equal(t, channels, c.Len())
	// What one side sent, the other received: at least the records'
	// bytes one way, the requests and credits the other.
	eventually(t, func() bool {
		ps, cs := p.Stats(), c.Stats()
		return ps.BytesSent == cs.BytesReceived && cs.BytesSent == ps.BytesReceived
	}, "byte counts agree")
	require.Greater(t, p.Stats().BytesSent, int64(channels*batches*size))
	require.Positive(t, c.Stats().BytesSent)
}

// A consumer that does not recycle stops its producer after credits +
// overdraft, wherever the batches wait; recycling one frees one buffer,
// and the producer's notifier wakes it.
func TestBackpressureAcrossConnection(t *testing.T) {
	p, c := listen(t), listen(t)
	const buffers, overdraft = 3, 2
	l := open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: buffers, Overdraft: overdraft, BatchSize: 4})
	fill := func(b *network.Batch[int64], v int64) {
		b.Recs = append(b.Recs, network.Rec[int64]{V: v, Ts: v})
		l.out.Send(b)
	}
	sent := int64(0)
	for l.out.Available() {
		b, ok := l.out.TryAcquire()
		require.True(t, ok)
		fill(b, sent)
		sent++
	}
	require.Equal(t, int64(buffers), sent, "credits")
	for {
		b, ok := l.out.TryOverdraft()
		if !ok {
			break
		}
		fill(b, sent)
		sent++
	}
	require.Equal(t, int64(buffers+overdraft), sent, "credits + overdraft")

	// Every batch crosses; the consumer takes them and holds them.
	var held []*network.Batch[int64]
	deadline := time.After(wait)
	for len(held) < int(sent) {
		if b, ok := l.in.Poll(); ok {
			require.Equal(t, int64(len(held)), b.Recs[0].V)
			held = append(held, b)
			continue
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatalf("only %d of %d batches arrived", len(held), sent)
		}
	}
	time.Sleep(50 * time.Millisecond) // let a wrong credit arrive, if any
	_, ok := l.out.TryAcquire()
	require.False(t, ok, "the producer must stay blocked while the consumer holds every buffer")
	require.False(t, l.out.Available())

	// One recycle: one buffer back, and the producer is woken.
	l.in.Recycle(held[0])
	select {
	case <-l.producer:
	case <-time.After(wait):
		t.Fatal("producer not woken by the credit")
	}
	// As in process, the overdraft buffers in circulation count against
	// Available, but the buffer itself is free to take.
	var b *network.Batch[int64]
	eventually(t, func() bool { b, ok = l.out.TryAcquire(); return ok }, "a credit back")
	_, ok = l.out.TryAcquire()
	require.False(t, ok, "exactly one buffer came back")
	fill(b, sent)
	for _, h := range held[1:] {
		l.in.Recycle(h)
	}
	got := recv(t, l)
	require.Equal(t, sent, got.Recs[0].V)
	n := 0
	eventually(t, func() bool {
		for {
			if _, ok := l.out.TryAcquire(); !ok {
				return n == buffers+overdraft
			}
			n++
		}
	}, "every buffer, overdraft ones too, back with the producer")
	time.Sleep(20 * time.Millisecond)
	_, ok = l.out.TryAcquire()
	require.False(t, ok, "and no more")
}

// An unaligned barrier overtakes the batches that crossed the wire
// before it: the consumer's channel offers it for Overtake at once, with
// those batches' records (the input channel state), and still delivers
// the batches after it.
func TestPriorityBarrierOvertakesInFlight(t *testing.T) {
	p, c := listen(t), listen(t)
	l := open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: 4, BatchSize: 4})
	for i := range int64(3) {
		send(t, l.out, func(b *network.Batch[int64]) {
			b.Recs = append(b.Recs, network.Rec[int64]{V: 2 * i, Ts: 1}, network.Rec[int64]{V: 2*i + 1, Ts: 2})
		})
	}
	eventually(t, func() bool { return l.in.Queued() == 3 }, "three batches queued at the consumer")
	opts := network.BarrierOptions{Mode: network.Unaligned, Kind: network.Checkpoint, Timestamp: time.Now().UnixMilli() - 1000}
	var producerState int
	l.out.SendPriority(network.Barrier, 9, opts, func(b *network.Batch[int64]) { producerState += len(b.Recs) })
	require.Zero(t, producerState, "nothing was queued at the producer")

	eventually(t, func() bool {
		d := l.in.OvertakeDeadline()
		return d > 0 && d <= time.Now().UnixMilli()
	}, "the barrier is due to overtake")
	var overtaken []int64
	id, got, ok := l.in.Overtake(func(recs []network.Rec[int64]) {
		for _, r := range recs {
			overtaken = append(overtaken, r.V)
		}
	})
	require.True(t, ok)
	require.Equal(t, int64(9), id)
	require.Equal(t, network.Unaligned, got.Mode)
	require.Equal(t, opts.Timestamp, got.Timestamp)
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, overtaken)
	// The data is still delivered, in order, and the barrier's place is
	// an empty batch of records.
	for i := range int64(3) {
		b := recv(t, l)
		require.Equal(t, network.Records, b.Kind)
		require.Equal(t, []network.Rec[int64]{{V: 2 * i, Ts: 1}, {V: 2*i + 1, Ts: 2}}, b.Recs)
	}
	b := recv(t, l)
	require.Equal(t, network.Records, b.Kind)
	require.Empty(t, b.Recs)
	// Every credit came back: the producer has all its buffers.
	eventually(t, func() bool { return l.out.Available() }, "credits back")
}

// Batches still queued at the producer when the barrier goes out are its
// own overtaken batches (output channel state), as in process; the
// barrier reaches the consumer ahead of them, due to be taken at once.
func TestPriorityBarrierOvertakesProducerQueue(t *testing.T) {
	p, c := listen(t), listen(t)
	k := key(0, 0)
	opts := tcp.ChannelOptions{Buffers: 4, BatchSize: 4}
	oErr := newErrs()
	o := opts
	o.OnError = oErr.on
	// The producer is deployed first: nothing is forwarded before the
	// consumer requests the channel.
	out, err := tcp.Output[int64](p, k, codecInt64, o)
	require.NoError(t, err)
	for i := range int64(2) {
		send(t, out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: i, Ts: i}) })
	}
	barrier := network.BarrierOptions{Mode: network.Unaligned, Kind: network.Savepoint, Timestamp: 42, AlignedTimeout: 0}
	var state []int64
	out.SendPriority(network.Barrier, 3, barrier, func(b *network.Batch[int64]) {
		for _, r := range b.Recs {
			state = append(state, r.V)
		}
	})
	require.Equal(t, []int64{0, 1}, state)

	notify := network.NewNotifier()
	in, err := tcp.Input[int64](context.Background(), c, k, p.Addr(), codecInt64, notify, opts)
	require.NoError(t, err)
	eventually(t, func() bool { return in.Queued() == 3 }, "everything crossed")
	// The barrier crossed first and is due at once: nothing to overtake
	// at the consumer, options intact but for the due deadline.
	d := in.OvertakeDeadline()
	require.Positive(t, d)
	require.LessOrEqual(t, d, time.Now().UnixMilli())
	id, got, ok := in.Overtake(func(recs []network.Rec[int64]) { t.Fatalf("overtook %v at the consumer", recs) })
	require.True(t, ok)
	require.Equal(t, int64(3), id)
	require.Equal(t, barrier.Mode, got.Mode)
	require.Equal(t, barrier.Kind, got.Kind)
	require.Equal(t, barrier.Timestamp, got.Timestamp)
	require.Equal(t, got.Timestamp+got.AlignedTimeout, d)
	b, ok := in.Poll()
	require.True(t, ok)
	require.Equal(t, network.Records, b.Kind, "the overtaken barrier's place")
	require.Empty(t, b.Recs)
	in.Recycle(b)
	l := &link[int64]{in: in, notify: notify}
	for i := range int64(2) {
		got := recv(t, l)
		require.Equal(t, []network.Rec[int64]{{V: i, Ts: i}}, got.Recs)
	}
	eventually(t, out.Available, "credits back")
	oErr.none(t)
}

// Killing the connection mid-stream fails both ends' channels with
// ErrConnectionLost; the endpoints drop the connection, and a new
// channel dials a fresh one.
func TestConnectionLossFailsBothEnds(t *testing.T) {
	p, c := listen(t), listen(t)
	px := newProxy(t, p.Addr())
	k := key(0, 0)
	outErr, inErr := newErrs(), newErrs()
	out, err := tcp.Output[int64](p, k, codecInt64, tcp.ChannelOptions{Buffers: 2, OnError: outErr.on})
	require.NoError(t, err)
	notify := network.NewNotifier()
	in, err := tcp.Input[int64](context.Background(), c, k, px.addr(), codecInt64, notify, tcp.ChannelOptions{Buffers: 2, OnError: inErr.on})
	require.NoError(t, err)
	l := &link[int64]{in: in, notify: notify}
	send(t, out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 1}) })
	require.Equal(t, int64(1), recv(t, l).Recs[0].V)

	px.kill()
	require.ErrorIs(t, outErr.next(t), tcp.ErrConnectionLost)
	require.ErrorIs(t, inErr.next(t), tcp.ErrConnectionLost)
	eventually(t, func() bool { return p.Conns() == 0 && c.Conns() == 0 }, "connections dropped")
	require.Zero(t, p.Len())
	require.Zero(t, c.Len())

	// The restarted attempt gets a new connection.
	l2 := open[int64](t, p, c, key(1, 0), tcp.ChannelOptions{Buffers: 2})
	send(t, l2.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 2}) })
	require.Equal(t, int64(2), recv(t, l2).Recs[0].V)
}

// Releasing one attempt's channels leaves another attempt's on the same
// connection running; the released channels' ends hear of it (they had
// not ended), their frames are dropped, nothing stays behind.
func TestReleaseOneAttemptWhileAnotherRuns(t *testing.T) {
	for _, side := range []string{"producer", "consumer"} {
		t.Run("released by "+side, func(t *testing.T) {
			p, c := listen(t), listen(t)
			old := open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: 2})
			cur := open[int64](t, p, c, key(1, 0), tcp.ChannelOptions{Buffers: 2})
			send(t, old.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: -1}) })
			require.Equal(t, int64(-1), recv(t, old).Recs[0].V)

			released := old.inErr
			if side == "producer" {
				p.ReleaseAttempt("job", 0)
			} else {
				c.ReleaseAttempt("job", 0)
				released = old.outErr
			}
			require.ErrorIs(t, released.next(t), tcp.ErrPeerClosed)
			eventually(t, func() bool { return p.Len() == 1 && c.Len() == 1 }, "only attempt 1's channel is left")

			// The old producer may still write: nothing arrives.
			if b, ok := old.out.TryAcquire(); ok {
				b.Recs = append(b.Recs, network.Rec[int64]{V: -2})
				old.out.Send(b)
			}
			for i := range int64(20) {
				send(t, cur.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: i}) })
				require.Equal(t, int64(i), recv(t, cur).Recs[0].V)
			}
			_, ok := old.in.Poll()
			require.False(t, ok, "a released channel's frames are dropped")
			require.Equal(t, 1, p.Conns())
			cur.outErr.none(t)
			cur.inErr.none(t)
		})
	}
}

// A record the consumer cannot decode fails that channel on both ends;
// the other channels on the connection go on.
func TestCorruptRecordFailsOnlyItsChannel(t *testing.T) {
	p, c := listen(t), listen(t)
	k := key(0, 0)
	outErr, inErr := newErrs(), newErrs()
	out, err := tcp.Output[int64](p, k, codecInt64, tcp.ChannelOptions{OnError: outErr.on})
	require.NoError(t, err)
	_, err = tcp.Input[int64](context.Background(), c, k, p.Addr(), failingCodec{}, network.NewNotifier(), tcp.ChannelOptions{OnError: inErr.on})
	require.NoError(t, err)
	other := open[int64](t, p, c, key(0, 1), tcp.ChannelOptions{})

	send(t, out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 1}) })
	require.ErrorContains(t, inErr.next(t), "decoding record 0")
	require.ErrorIs(t, outErr.next(t), tcp.ErrPeerClosed)
	send(t, other.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 7}) })
	require.Equal(t, int64(7), recv(t, other).Recs[0].V)
	require.Equal(t, 1, p.Len())
}

// Ends configured with other credits refuse the channel on both sides.
func TestCreditMismatchRefused(t *testing.T) {
	p, c := listen(t), listen(t)
	k := key(0, 0)
	outErr, inErr := newErrs(), newErrs()
	_, err := tcp.Output[int64](p, k, codecInt64, tcp.ChannelOptions{Buffers: 2, OnError: outErr.on})
	require.NoError(t, err)
	_, err = tcp.Input[int64](context.Background(), c, k, p.Addr(), codecInt64, network.NewNotifier(), tcp.ChannelOptions{Buffers: 3, OnError: inErr.on})
	require.NoError(t, err)
	require.ErrorContains(t, outErr.next(t), "consumer has 3 buffers, producer 2")
	require.ErrorIs(t, inErr.next(t), tcp.ErrPeerClosed)
	eventually(t, func() bool { return p.Len() == 0 && c.Len() == 0 }, "refused channel forgotten")
}

// Close fails what is still open and stops every goroutine (TestMain's
// goleak); a peer's channels hear of the lost connection.
func TestCloseStopsEverything(t *testing.T) {
	p, err := tcp.Listen(tcp.Config{Logger: quiet})
	require.NoError(t, err)
	c := listen(t)
	l := open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{})
	send(t, l.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 1}) })
	recv(t, l)
	// A channel whose consumer never came, and one in another direction.
	_, err = tcp.Output[int64](p, key(0, 9), codecInt64, tcp.ChannelOptions{})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.ErrorIs(t, l.outErr.next(t), tcp.ErrClosed)
	require.ErrorIs(t, l.inErr.next(t), tcp.ErrConnectionLost)
	_, err = tcp.Output[int64](p, key(0, 10), codecInt64, tcp.ChannelOptions{})
	require.ErrorIs(t, err, tcp.ErrClosed)
	_, err = tcp.Input[int64](context.Background(), c, key(0, 11), p.Addr(), codecInt64, network.NewNotifier(), tcp.ChannelOptions{})
	require.ErrorIs(t, err, tcp.ErrConnectionLost, "dialling a closed endpoint")
	require.NoError(t, p.Close(), "Close twice")
}

// The listener binds loopback unless told otherwise, and advertises the
// host it is given (as a wildcard bind would need; the test stays on
// loopback).
func TestListensOnLoopbackByDefault(t *testing.T) {
	e := listen(t)
	require.Contains(t, e.Addr(), "127.0.0.1:")
	w, err := tcp.Listen(tcp.Config{Addr: "127.0.0.1:0", AdvertisedHost: "localhost", Logger: quiet})
	require.NoError(t, err)
	defer func() { require.NoError(t, w.Close()) }()
	require.Regexp(t, `^localhost:\d+$`, w.Addr())
	l := open[int64](t, w, e, key(0, 0), tcp.ChannelOptions{})
	send(t, l.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 1}) })
	require.Equal(t, int64(1), recv(t, l).Recs[0].V)
}

func TestDuplicateChannelRefused(t *testing.T) {
	p, c := listen(t), listen(t)
	open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{})
	_, err := tcp.Output[int64](p, key(0, 0), codecInt64, tcp.ChannelOptions{})
	require.ErrorContains(t, err, "open already")
	_, err = tcp.Input[int64](context.Background(), c, key(0, 0), p.Addr(), codecInt64, network.NewNotifier(), tcp.ChannelOptions{})
	require.ErrorContains(t, err, "open already")
}

// A region restarted alone releases its edges' channels; the other
// edges of the same attempt go on.
func TestReleaseEdgesKeepsOtherEdges(t *testing.T) {
	p, c := listen(t), listen(t)
	k1, k2 := key(0, 0), key(0, 0)
	k2.Edge = 2
	l1 := open[int64](t, p, c, k1, tcp.ChannelOptions{})
	l2 := open[int64](t, p, c, k2, tcp.ChannelOptions{})
	c.ReleaseEdges("job", 0, []int{1})
	require.ErrorIs(t, l1.outErr.next(t), tcp.ErrPeerClosed)
	eventually(t, func() bool { return p.Len() == 1 && c.Len() == 1 }, "edge 1 released on both sides")
	send(t, l2.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 5}) })
	require.Equal(t, int64(5), recv(t, l2).Recs[0].V)
	p.ReleaseJob("job")
	eventually(t, func() bool { return p.Len() == 0 && c.Len() == 0 }, "the job's channels released")
	l2.outErr.none(t)
}

// A second request for a channel that has its consumer is refused; the
// first goes on.
func TestSecondRequestRefused(t *testing.T) {
	p, c1, c2 := listen(t), listen(t), listen(t)
	l := open[int64](t, p, c1, key(0, 0), tcp.ChannelOptions{})
	// The first request is bound once a record crossed (the requests
	// come over two connections, in either order).
	send(t, l.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 7}) })
	require.Equal(t, int64(7), recv(t, l).Recs[0].V)
	inErr := newErrs()
	_, err := tcp.Input[int64](context.Background(), c2, key(0, 0), p.Addr(), codecInt64, network.NewNotifier(), tcp.ChannelOptions{OnError: inErr.on})
	require.NoError(t, err)
	require.ErrorContains(t, inErr.next(t), "requested twice")
	send(t, l.out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 8}) })
	require.Equal(t, int64(8), recv(t, l).Recs[0].V)
	l.outErr.none(t)
}

// A channel that ended (end of partition through) does not fail when its
// connection goes later: nothing more was to cross.
func TestEndedChannelIgnoresLaterConnectionLoss(t *testing.T) {
	p, c := listen(t), listen(t)
	px := newProxy(t, p.Addr())
	k := key(0, 0)
	outErr, inErr := newErrs(), newErrs()
	out, err := tcp.Output[int64](p, k, codecInt64, tcp.ChannelOptions{OnError: outErr.on})
	require.NoError(t, err)
	notify := network.NewNotifier()
	in, err := tcp.Input[int64](context.Background(), c, k, px.addr(), codecInt64, notify, tcp.ChannelOptions{OnError: inErr.on})
	require.NoError(t, err)
	live := open[int64](t, p, c, key(0, 1), tcp.ChannelOptions{})
	send(t, out, func(b *network.Batch[int64]) { b.Kind = network.EndOfPartition })
	require.Equal(t, network.EndOfPartition, recv(t, &link[int64]{in: in, notify: notify}).Kind)
	px.kill()
	eventually(t, func() bool { return p.Conns() == 1 && c.Conns() == 1 }, "the proxied connection is gone")
	outErr.none(t)
	inErr.none(t)
	live.outErr.none(t)
}

// Ops opens typed channels for a caller that holds only the Ops, and
// returns them as the *network.Channel[T] that runtime.TypeOps expects.
func TestOpsOpenTypedChannels(t *testing.T) {
	p, c := listen(t), listen(t)
	ops := tcp.OpsFor[Item](nil)
	out, err := ops.Output(p, key(0, 0), tcp.ChannelOptions{})
	require.NoError(t, err)
	notify := network.NewNotifier()
	in, err := ops.Input(context.Background(), c, key(0, 0), p.Addr(), notify, tcp.ChannelOptions{})
	require.NoError(t, err)
	l := &link[Item]{in: in.(*network.Channel[Item]), notify: notify}
	send(t, out.(*network.Channel[Item]), func(b *network.Batch[Item]) {
		b.Recs = append(b.Recs, network.Rec[Item]{V: Item{ID: 1, Name: "x"}, Ts: 3})
	})
	require.Equal(t, []network.Rec[Item]{{V: Item{ID: 1, Name: "x"}, Ts: 3}}, recv(t, l).Recs)
	_, err = ops.Output(p, key(0, 0), tcp.ChannelOptions{})
	require.Error(t, err, "an error, not a typed nil channel in an any")

	// A type the default codec cannot encode fails the open, clearly.
	bad := tcp.OpsFor[func()](nil)
	_, err = bad.Output(p, key(0, 1), tcp.ChannelOptions{})
	var unsupported *codec.UnsupportedTypeError
	require.ErrorAs(t, err, &unsupported)
	_, err = bad.Input(context.Background(), c, key(0, 1), p.Addr(), network.NewNotifier(), tcp.ChannelOptions{})
	require.ErrorAs(t, err, &unsupported)
}

// A connection that breaks in the middle of a frame delivers only whole
// batches, in order, and fails both ends with ErrConnectionLost (through
// the Dial seam, as a TLS or fault-injecting transport would plug in).
func TestConnectionCutMidFrame(t *testing.T) {
	p := listen(t)
	cut := 8 + 2000 // the hello, then a few frames and a part of one
	c, err := tcp.Listen(tcp.Config{Logger: quiet, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: nc, limit: cut}, nil
	}})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	l := open[int64](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: 64, BatchSize: 16})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		n := int64(0)
		for range 64 {
			b, err := l.out.Acquire(ctx)
			if err != nil {
				return
			}
			for range 16 {
				b.Recs = append(b.Recs, network.Rec[int64]{V: n, Ts: n})
				n++
			}
			l.out.Send(b)
		}
	}()
	require.ErrorIs(t, l.inErr.next(t), tcp.ErrConnectionLost)
	require.ErrorIs(t, l.outErr.next(t), tcp.ErrConnectionLost)
	next := int64(0)
	for {
		b, ok := l.in.Poll()
		if !ok {
			break
		}
		require.Len(t, b.Recs, 16, "whole batches only")
		for _, r := range b.Recs {
			require.Equal(t, next, r.V)
			next++
		}
	}
	require.Positive(t, next, "some batches crossed before the cut")
	require.Less(t, next, int64(64*16), "the cut came before the end")
}

// The consumer may request a channel before its producer is deployed:
// the request waits at the producer's endpoint and binds when Output
// comes.
func TestConsumerFirst(t *testing.T) {
	p, c := listen(t), listen(t)
	k := key(0, 0)
	notify := network.NewNotifier()
	in, err := tcp.Input[int64](context.Background(), c, k, p.Addr(), codecInt64, notify, tcp.ChannelOptions{})
	require.NoError(t, err)
	eventually(t, func() bool { return p.Len() == 1 }, "the request waits at the producer")
	out, err := tcp.Output[int64](p, k, codecInt64, tcp.ChannelOptions{})
	require.NoError(t, err)
	send(t, out, func(b *network.Batch[int64]) { b.Recs = append(b.Recs, network.Rec[int64]{V: 4}) })
	require.Equal(t, int64(4), recv(t, &link[int64]{in: in, notify: notify}).Recs[0].V)
	require.Equal(t, 1, p.Len())

	// A waiting request released by the producer's side is closed at
	// the consumer's too.
	k2 := key(0, 1)
	inErr := newErrs()
	_, err = tcp.Input[int64](context.Background(), c, k2, p.Addr(), codecInt64, network.NewNotifier(), tcp.ChannelOptions{OnError: inErr.on})
	require.NoError(t, err)
	eventually(t, func() bool { return p.Len() == 2 }, "second request waits")
	p.Release(func(k network.ChannelKey) bool { return k == k2 })
	require.ErrorIs(t, inErr.next(t), tcp.ErrPeerClosed)
	eventually(t, func() bool { return c.Len() == 1 && p.Len() == 1 }, "released on both sides")
}

// A peer that stops reading (a frozen process) fails the producer's
// channel once a write has waited WriteTimeout, instead of blocking its
// forwarder for ever.
func TestFrozenPeerWriteTimeout(t *testing.T) {
	p, err := tcp.Listen(tcp.Config{Logger: quiet, WriteTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	var frozen atomic.Bool
	c, err := tcp.Listen(tcp.Config{Logger: quiet, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &thawing{Conn: nc, frozen: &frozen, f: freeze(nc)}, nil
	}})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	// Enough bytes in flight to fill the sockets' buffers: 64 buffers
	// of 16 records of 64 KiB.
	l := open[string](t, p, c, key(0, 0), tcp.ChannelOptions{Buffers: 64, BatchSize: 16})
	frozen.Store(true)
	big := strings.Repeat("x", 64<<10)
	go func() {
		for {
			b, ok := l.out.TryAcquire()
			if !ok {
				return
			}
			for range 16 {
				b.Recs = append(b.Recs, network.Rec[string]{V: big, Ts: network.NoTimestamp})
			}
			l.out.Send(b)
		}
	}()
	start := time.Now()
	require.ErrorIs(t, l.outErr.next(t), tcp.ErrConnectionLost)
	require.Less(t, time.Since(start), wait)
}
