package runtime_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// The gate polls its channels round robin across both inputs of a
// two-input task, passes over a blocked channel (barrier alignment will
// hold one back) until it is unblocked, and over ended channels; the task
// is done once every channel has ended.
func TestGateRoundRobinBlockedAndEnded(t *testing.T) {
	notify := network.NewNotifier()
	ints := []*network.Channel[int]{network.NewChannel[int](4, 8, notify), network.NewChannel[int](4, 8, notify)}
	strs := []*network.Channel[string]{network.NewChannel[string](4, 8, notify)}
	op := &orderLog{}
	p := runtime.NewTwoInputProcessor(ints, strs, op)
	send := func(ch *network.Channel[int], kind network.EventKind, v int) {
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		b.Recs = append(b.Recs, network.Rec[int]{V: v})
		b.Kind = kind
		ch.Send(b)
	}
	sendStr := func(kind network.EventKind, v string) {
		b, ok := strs[0].TryAcquire()
		require.True(t, ok)
		b.Recs = append(b.Recs, network.Rec[string]{V: v})
		b.Kind = kind
		strs[0].Send(b)
	}
	drainAll := func() {
		for {
			if progress, _ := p.Poll(); !progress {
				return
			}
		}
	}
	send(ints[0], network.Records, 1)
	send(ints[0], network.Records, 2)
	send(ints[1], network.Records, 10)
	sendStr(network.Records, "a")
	drainAll()
	require.Equal(t, []any{1, 10, "a", 2}, op.log, "one batch per channel in turn")

	g := p.Gate()
	g.Block(1)
	require.True(t, g.Blocked(1))
	send(ints[1], network.Records, 11)
	send(ints[0], network.Records, 3)
	op.log = nil
	drainAll()
	require.Equal(t, []any{3}, op.log, "a blocked channel is not polled")
	require.Equal(t, 1, ints[1].Queued())
	g.Unblock(1)
	require.False(t, g.Blocked(1))
	drainAll()
	require.Equal(t, []any{3, 11}, op.log)

	send(ints[0], network.EndOfPartition, 4)
	send(ints[1], network.EndOfPartition, 12)
	drainAll()
	g.Block(0)
	g.Unblock(0) // an ended channel stays passed over
	progress, done := p.Poll()
	require.False(t, progress)
	require.False(t, done, "the string input has not ended")
	sendStr(network.EndOfPartition, "z")
	progress, done = p.Poll()
	require.True(t, progress)
	require.True(t, done)
	require.Equal(t, []any{3, 11, 4, 12, "z"}, op.log)
}
