package strom_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/strom-dev/strom"
)

// BenchmarkPunctuatedWatermarks is BenchmarkPipeline with event time:
// generator → AssignTimestamps → Map → KeyBy → rolling Reduce → Discard,
// with a watermark after every record (wm=punctuated, the generator of
// process_test.go) or periodic ones
// (wm=periodic, the baseline). One op is one record. Run with
// -benchtime=2000000x or more.
func BenchmarkPunctuatedWatermarks(b *testing.B) {
	for _, wm := range []string{"punctuated", "periodic"} {
		for _, p := range []int{1, 2} {
			b.Run(fmt.Sprintf("wm=%s/p=%d", wm, p), func(b *testing.B) {
				env := strom.NewEnvironment(strom.Config{Parallelism: p, Logger: slog.New(slog.DiscardHandler)})
				gen := strom.FromGenerator(env, func(i int64) int64 { return i }, strom.Count(int64(b.N)))
				strategy := strom.BoundedOutOfOrderness[int64](0)
				if wm == "punctuated" {
					strategy = strom.CustomWatermarks[int64](func() strom.WatermarkGenerator { return punctuated{} })
				}
				stamped := strom.AssignTimestamps(gen, strategy.WithTimestamps(func(v int64) int64 { return v }))
				mapped := strom.Map(stamped, func(v int64) [2]int64 { return [2]int64{v % 1000, v} })
				sums := strom.Reduce(strom.KeyBy(mapped, func(r [2]int64) int64 { return r[0] }),
					func(a, c [2]int64) [2]int64 { return [2]int64{a[0], a[1] + c[1]} })
				strom.Discard(sums)
				b.ReportAllocs()
				b.ResetTimer()
				res, err := env.Execute(context.Background(), "bench")
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				d, ok := res.Operator("Discard")
				if !ok || d.RecordsIn != int64(b.N) {
					b.Fatalf("discard got %d records, want %d", d.RecordsIn, b.N)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
