package strom_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

// An unbounded source feeding a slow sink must be slowed down by credit-
// based flow control: the records in flight between them never exceed what
// the channels' buffers hold, and the heap does not grow.
func TestMemoryBoundedUnderBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        int
		channels int // logical channels between the three tasks
	}{
		{"p=1", 1, 1 + 1},
		{"p=2", 2, 2*2 + 2}, // rebalance source→map (2×2), forward map→sink (2)
	} {
		t.Run(tc.name, func(t *testing.T) {
			const batch, buffers = 64, 2
			env := newEnv(tc.p, func(c *strom.Config) {
				c.DisableChaining = true // three tasks: source, map, sink
				c.BatchSize = batch
				c.BuffersPerChannel = buffers
			})
			gen := datagen.FromGenerator(env, func(i int64) int64 { return i })
			var src strom.Stream[int64] = gen
			if tc.p > 1 {
				src = strom.Rebalance(gen) // a rebalance node of its own (chaining is off)
			}
			mapped := strom.Map(src, func(v int64) int64 { return v + 1 })
			strom.SinkFunc(mapped, func(v int64) error {
				if v%100 == 0 {
					time.Sleep(time.Millisecond)
				}
				return nil
			}).Name("SlowSink")

			operators := 3
			channels := tc.channels
			if tc.p > 1 {
				operators = 4
				channels += 2 * 2 // gen → rebalance operator, rebalance partitioned
			}
			// Every channel is full, and every subtask holds one more batch
			// (a batch being filled, or one whose count is not yet
			// published).
			bound := int64(channels*buffers*batch + operators*tc.p*batch)

			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			baseHeap := ms.HeapInuse

			jc, err := env.ExecuteAsync(context.Background(), "backpressure")
			require.NoError(t, err)
			defer jc.Close()
			deadline := time.Now().Add(400 * time.Millisecond)
			var maxInFlight, consumed int64
			var maxHeap uint64
			samples := 0
			for time.Now().Before(deadline) {
				var emitted, sunk int64
				for _, m := range jc.Metrics() {
					switch m.Name {
					case "Generator Source":
						emitted = m.RecordsOut
					case "SlowSink":
						sunk = m.RecordsIn
					}
				}
				inFlight := emitted - sunk
				require.LessOrEqual(t, inFlight, bound, "records in flight (emitted %d, consumed %d) exceed the buffers", emitted, sunk)
				maxInFlight = max(maxInFlight, inFlight)
				consumed = sunk
				if samples%20 == 0 {
					runtime.ReadMemStats(&ms)
					maxHeap = max(maxHeap, ms.HeapInuse)
				}
				samples++
				time.Sleep(500 * time.Microsecond)
			}
			jc.Cancel()
			res, err := jc.Wait(context.Background())
			require.ErrorIs(t, err, strom.ErrJobCanceled)
			t.Logf("samples %d, max in flight %d (bound %d), consumed %d, heap +%d KiB", samples, maxInFlight, bound, consumed, (int64(maxHeap)-int64(baseHeap))/1024)

			require.Greater(t, consumed, 10*bound, "the sink made progress, so the source would have run far ahead without flow control")
			require.Less(t, int64(maxHeap)-int64(baseHeap), int64(64<<20), "heap in use grew by more than 64 MiB")
			srcRes, ok := res.Operator("Generator Source")
			require.True(t, ok)
			require.Positive(t, srcRes.BackpressureWaits, "the source waited for credits")
			sink, _ := res.Operator("SlowSink")
			require.LessOrEqual(t, srcRes.RecordsOut-sink.RecordsIn, bound)
		})
	}
}
