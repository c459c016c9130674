package tcp_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
)

// Random interleavings of a producer (batches, unaligned barriers) and a
// consumer that acts as an input gate (a due barrier first, then the
// priority lane, then data; recycling late or at once) on one channel
// over a real connection. Records are sequence numbers. Checked:
//   - every record arrives once, in order;
//   - the producer never has more than credits + overdraft buffers out;
//   - for each unaligned barrier, the records the consumer processed
//     before it, those it overtook at the consumer (Overtake: input
//     channel state) and those it overtook at the producer (output
//     channel state) are, in this order, exactly the records sent before
//     it: the exactly-once split of an unaligned checkpoint.
func TestRandomInterleavingsKeepChannelSemantics(t *testing.T) {
	p, c := listen(t), listen(t)
	attempt := 0
	rapid.Check(t, func(rt *rapid.T) {
		attempt++
		const buffers, overdraft = 2, 1
		l := open[int64](t, p, c, key(attempt, 0), tcp.ChannelOptions{Buffers: buffers, Overdraft: overdraft, BatchSize: 4})
		defer p.ReleaseAttempt("job", attempt)
		defer c.ReleaseAttempt("job", attempt)

		type barrier struct {
			sentBefore int64
			producer   []int64
		}
		var (
			sent, consumed int64
			barriers       []barrier
			seen           int // barriers the consumer handled
			held           []*network.Batch[int64]
		)
		handle := func(id int64, overtaken []int64) {
			require.Equal(rt, int64(seen+1), id, "barriers in order")
			b := barriers[seen]
			seen++
			var want []int64
			for v := consumed; v < b.sentBefore; v++ {
				want = append(want, v)
			}
			got := append(append([]int64(nil), overtaken...), b.producer...)
			if len(got) == 0 {
				got = nil
			}
			require.Equal(rt, want, got, "barrier %d: processed %d, overtaken here %v, at the producer %v", id, consumed, overtaken, b.producer)
		}
		consume := func() bool {
			if d := l.in.OvertakeDeadline(); d > 0 && d <= time.Now().UnixMilli() {
				var overtaken []int64
				id, _, ok := l.in.Overtake(func(recs []network.Rec[int64]) {
					for _, r := range recs {
						overtaken = append(overtaken, r.V)
					}
				})
				require.True(rt, ok)
				handle(id, overtaken)
				return true
			}
			if b, ok := l.in.PollPriority(); ok {
				require.Equal(rt, network.Barrier, b.Kind)
				handle(b.Value, nil)
				l.in.Recycle(b)
				return true
			}
			b, ok := l.in.Poll()
			if !ok {
				return false
			}
			for _, r := range b.Recs {
				require.Equal(rt, consumed, r.V, "records in order, once")
				consumed++
			}
			if b.Kind == network.Barrier {
				// It arrived after the look for a due barrier and
				// before this poll, with nothing ahead of it: in order
				// is then the same as overtaking nothing (the gate
				// has the same race, and the same outcome).
				require.Equal(rt, network.Unaligned, b.Barrier.Mode)
				handle(b.Value, nil)
			}
			held = append(held, b)
			return true
		}
		recycle := func(i int) {
			l.in.Recycle(held[i])
			held = append(held[:i], held[i+1:]...)
		}
		// TryOverdraft refuses beyond credits + overdraft.
		take := func() (*network.Batch[int64], bool) {
			return l.out.TryOverdraft()
		}
		rt.Repeat(map[string]func(*rapid.T){
			"send": func(rt *rapid.T) {
				b, ok := take()
				if !ok {
					return
				}
				n := rapid.IntRange(1, 4).Draw(rt, "records")
				for range n {
					b.Recs = append(b.Recs, network.Rec[int64]{V: sent, Ts: sent})
					sent++
				}
				l.out.Send(b)
			},
			"unaligned barrier": func(rt *rapid.T) {
				bar := barrier{sentBefore: sent}
				l.out.SendPriority(network.Barrier, int64(len(barriers)+1),
					network.BarrierOptions{Mode: network.Unaligned, Timestamp: time.Now().UnixMilli()},
					func(b *network.Batch[int64]) {
						for _, r := range b.Recs {
							bar.producer = append(bar.producer, r.V)
						}
					})
				barriers = append(barriers, bar)
			},
			"consume": func(rt *rapid.T) { consume() },
			"recycle": func(rt *rapid.T) {
				if len(held) > 0 {
					recycle(rapid.IntRange(0, len(held)-1).Draw(rt, "which"))
				}
			},
			"let the network run": func(rt *rapid.T) { time.Sleep(200 * time.Microsecond) },
		})
		// Drain: everything sent arrives, every barrier is handled.
		deadline := time.Now().Add(wait)
		for consumed < sent || seen < len(barriers) {
			for len(held) > 0 {
				recycle(0)
			}
			if !consume() {
				if time.Now().After(deadline) {
					rt.Fatalf("stuck: consumed %d of %d, %d of %d barriers", consumed, sent, seen, len(barriers))
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		for len(held) > 0 {
			recycle(0)
		}
		// Every buffer comes back: the credits, and the overdraft
		// buffers the producer made.
		n := 0
		eventually(t, func() bool {
			for {
				if _, ok := l.out.TryAcquire(); !ok {
					return n >= buffers
				}
				n++
			}
		}, fmt.Sprint("buffers back after ", sent, " records"))
		require.LessOrEqual(rt, n, buffers+overdraft)
		l.outErr.none(t)
		l.inErr.none(t)
	})
}
