package strom_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

// BenchmarkPipeline runs b.N records through generator → Map → KeyBy →
// rolling Reduce (sum per key) → Discard. One op is one record, so ns/op
// and allocs/op are per record; records/s is the end-to-end throughput,
// cluster start-up included. Run with -benchtime=2000000x or more.
func BenchmarkPipeline(b *testing.B) {
	for _, p := range []int{1, 2} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) { benchPipeline(b, p, nil) })
	}
}

// benchPipeline runs generator → [AssignTimestamps with strategy, if one
// is given] → Map → KeyBy → rolling Reduce → Discard over b.N records and
// reports records/s: BenchmarkPipeline and BenchmarkPunctuatedWatermarks.
func benchPipeline(b *testing.B, p int, strategy *strom.WatermarkStrategy[int64]) {
	env := strom.NewEnvironment(strom.Config{Parallelism: p, Logger: slog.New(slog.DiscardHandler)})
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(int64(b.N)))
	if strategy != nil {
		gen = strom.AssignTimestamps(gen, *strategy)
	}
	mapped := strom.Map(gen, func(v int64) [2]int64 { return [2]int64{v % 1000, v} })
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
}
