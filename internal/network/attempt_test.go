package network_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
)

// A restarted task must never read what a previous attempt left in a
// channel: the producer of attempt 0 filled its channel and failed before
// the consumer read it; the consumer of attempt 1 finds its own, empty
// channel, and releasing attempt 0 drops the old one without touching
// attempt 1's.
func TestRestartedAttemptReadsOnlyItsOwnChannels(t *testing.T) {
	r := network.NewRegistry()
	create := func(n network.Notifier) func() any {
		return func() any { return network.NewChannel[int](2, 4, n) }
	}
	key := func(attempt int) network.ChannelKey {
		return network.ChannelKey{Job: "j", Attempt: attempt, Edge: 1, Producer: 0, Consumer: 0}
	}
	task := func(attempt int) network.TaskKey {
		return network.TaskKey{Job: "j", Attempt: attempt, Vertex: 1, Subtask: 0}
	}

	n0 := r.Notifier(task(0))
	old := r.Channel(key(0), create(n0)).(*network.Channel[int])
	b, ok := old.TryAcquire()
	require.True(t, ok)
	b.Recs = append(b.Recs, network.Rec[int]{V: 42})
	old.Send(b)

	n1 := r.Notifier(task(1))
	require.NotEqual(t, n0, n1, "each attempt has its own notifier")
	fresh := r.Channel(key(1), create(n1)).(*network.Channel[int])
	require.NotSame(t, old, fresh)
	_, ok = fresh.Poll()
	require.False(t, ok, "attempt 1 sees nothing of attempt 0's data")
	select {
	case <-n1:
		t.Fatal("attempt 0's producer woke attempt 1's consumer")
	default:
	}

	// Attempt 0's producer, still winding down, writes on: only into its
	// own channel.
	b, ok = old.TryAcquire()
	require.True(t, ok)
	old.Send(b)
	_, ok = fresh.Poll()
	require.False(t, ok)

	r.ReleaseAttempt("j", 0)
	require.Equal(t, 1, r.Len(), "only attempt 1's channel is left")
	require.Same(t, fresh, r.Channel(key(1), create(n1)).(*network.Channel[int]))
	require.NotSame(t, old, r.Channel(key(0), create(n0)).(*network.Channel[int]), "a released attempt's channel is gone")
	r.ReleaseJob("j")
	require.Zero(t, r.Len())
}

// A channel is available while one of its credits is free; overdraft
// buffers let a producer go on in the middle of a batch but do not make it
// available; events take buffers of their own, so they pass a channel whose
// credits are all spent; and a producer that found the channel unavailable
// is woken by the next recycled buffer, one that did not is left alone.
func TestOverdraftAvailabilityAndEventBuffers(t *testing.T) {
	const buffers, overdraft = 2, 2
	ch := network.NewChannelOverdraft[int](buffers, overdraft, 4, network.NewNotifier())
	producer := network.NewNotifier()
	ch.SetProducerNotifier(producer)
	require.Equal(t, buffers, ch.Buffers())

	var held []*network.Batch[int]
	for range buffers {
		require.True(t, ch.Available())
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		held = append(held, b)
	}
	require.False(t, ch.Available(), "every credit is spent")
	_, ok := ch.TryAcquire()
	require.False(t, ok)
	for range overdraft {
		b, ok := ch.TryOverdraft()
		require.True(t, ok)
		held = append(held, b)
	}
	_, ok = ch.TryOverdraft()
	require.False(t, ok, "the overdraft is bounded")
	for _, b := range held {
		b.Recs = append(b.Recs, network.Rec[int]{V: 1})
		ch.Send(b)
	}

	// Events go through although no data buffer is free.
	for range 2 {
		e, ok := ch.TryEvent()
		require.True(t, ok)
		e.Kind = network.Idle
		ch.Send(e)
	}
	e, err := ch.AcquireEvent(context.Background())
	require.NoError(t, err)
	e.Kind = network.EndOfPartition
	ch.Send(e)

	// The consumer hands buffers back: the producer is woken, and the
	// channel is available again once a credit (not just an overdraft
	// buffer) is free.
	var kinds []network.EventKind
	for i := 0; ; i++ {
		b, ok := ch.Poll()
		if !ok {
			break
		}
		kinds = append(kinds, b.Kind)
		waiting := !ch.Available()
		ch.Recycle(b)
		select {
		case <-producer:
			require.True(t, waiting, "a producer that was not waiting was woken")
		default:
			require.False(t, waiting, "a recycled buffer did not wake the waiting producer")
		}
		if i == 0 {
			require.False(t, ch.Available(), "one free buffer is the overdraft's, not a credit")
		}
	}
	require.True(t, ch.Available())
	require.Equal(t, []network.EventKind{network.Records, network.Records, network.Records, network.Records, network.Idle, network.Idle, network.EndOfPartition}, kinds)
	for range buffers + overdraft {
		_, ok := ch.TryAcquire()
		require.True(t, ok, "overdraft buffers go back to the free list")
	}
}

// A region restarted alone releases its own channels of the attempt, not
// those of another region still running at the same attempt number.
func TestReleaseVerticesKeepsOtherRegions(t *testing.T) {
	r := network.NewRegistry()
	ch := func(edge, vertex int) any {
		n := r.Notifier(network.TaskKey{Job: "j", Attempt: 0, Vertex: vertex})
		return r.Channel(network.ChannelKey{Job: "j", Attempt: 0, Edge: edge}, func() any { return network.NewChannel[int](2, 4, n) })
	}
	regionA := ch(1, 1) // edge 1 into vertex 1 (v0 → v1)
	regionB := ch(2, 3) // edge 2 into vertex 3 (v2 → v3)
	require.Equal(t, 2, r.Len())

	r.ReleaseVertices("j", 0, []int{0, 1}, []int{1})
	require.Equal(t, 1, r.Len(), "region A's channel is gone, B's is left")
	require.Same(t, regionB, ch(2, 3), "region B keeps its channel")
	require.NotSame(t, regionA, ch(1, 1), "region A's next use gets a new channel")
	r.ReleaseJob("j")
	require.Zero(t, r.Len())
}
