package strom_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/window"
)

// TestKeyedSideOutputCarriesWatermarks: an event-time window fed from a keyed
// function's side output fires only if watermarks (including the final one)
// reach the side output; without them every window's contents were lost.
func TestKeyedSideOutputCarriesWatermarks(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := strom.NewEnvironment(strom.Config{Parallelism: p, AutoWatermarkInterval: time.Millisecond})
		src := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(200))
		timed := strom.AssignTimestamps(src, strom.Monotonous[int64]().WithTimestamps(func(i int64) int64 { return i * 10 }))
		tag := strom.NewOutputTag[int64]("odd")
		main := strom.KeyedProcessFunc(strom.KeyBy(timed, func(i int64) int64 { return i % 4 }),
			func(ctx *strom.KeyedContext[int64, int64], v int64) error {
				if v%2 == 1 {
					tag.Emit(ctx, v)
					return nil
				}
				ctx.Collect(v)
				return nil
			})
		strom.Discard(main)
		odd := strom.SideOutput(main, tag)
		counts := strom.WindowReduce(strom.Window(strom.KeyBy(strom.Map(odd, func(int64) int64 { return 1 }), func(int64) int { return 0 }), window.Tumbling(100*time.Millisecond)),
			func(a, b int64) int64 { return a + b })
		var got []int64
		strom.SinkFunc(counts, func(n int64) error {
			got = append(got, n)
			return nil
		}).Parallelism(1)
		_, err := env.Execute(context.Background(), "side watermarks")
		require.NoError(t, err)
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		require.Len(t, got, 20) // 2000 ms of event time in 100 ms windows, 5 odd records each
		for _, n := range got {
			require.Equal(t, int64(5), n)
		}
	}
}
