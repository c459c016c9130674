package nexmark_test

import (
	"testing"

	"github.com/strom-dev/strom/nexmark"
)

// reportRate adds an events/s metric for b.N events.
func reportRate(b *testing.B, events int64) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(events)/s, "events/s")
	}
}

// BenchmarkGenerator measures generating one event (ns/op = ns/event).
func BenchmarkGenerator(b *testing.B) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1})
	b.Run("Event", func(b *testing.B) {
		b.ReportAllocs()
		var sink nexmark.Event
		for i := range b.N {
			sink = g.Event(int64(i))
		}
		_ = sink
		reportRate(b, int64(b.N))
	})
	b.Run("EventInto", func(b *testing.B) {
		b.ReportAllocs()
		var slab nexmark.Slab
		var sink nexmark.Event
		for i := range b.N {
			sink = g.EventInto(int64(i), &slab)
		}
		_ = sink
		reportRate(b, int64(b.N))
	})
	b.Run("Fill", func(b *testing.B) {
		b.ReportAllocs()
		var slab nexmark.Slab
		buf := make([]nexmark.Event, 256)
		for i := 0; i < b.N; i += len(buf) {
			g.Fill(buf[:min(len(buf), b.N-i)], int64(i), 1, &slab)
		}
		reportRate(b, int64(b.N))
	})
}

// baselineBenchConfig is the stream the baseline benchmarks run on: 100k events/s of
// event time, so that a run of a few million events spans many windows and sessions.
var baselineBenchConfig = nexmark.GeneratorConfig{Seed: 1, EventsPerSecond: 100_000}

// BenchmarkBaseline measures the COST baseline per query; ns/op is ns per event
// (generation included, as the engine's sources generate too). Run with a fixed count,
// e.g. -bench Baseline -benchtime 2000000x: with few events, the windows never fire.
func BenchmarkBaseline(b *testing.B) {
	g := nexmark.NewGenerator(baselineBenchConfig)
	for _, q := range nexmark.Queries {
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			rows, err := nexmark.RunBaseline(q, g, int64(b.N), nil)
			if err != nil {
				b.Fatal(err)
			}
			reportRate(b, int64(b.N))
			b.ReportMetric(float64(rows)/float64(b.N), "rows/event")
		})
	}
}

func BenchmarkAppendEventJSON(b *testing.B) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1})
	events := make([]nexmark.Event, 4096)
	g.Fill(events, 0, 1, nil)
	b.ReportAllocs()
	var (
		buf   []byte
		total int
	)
	for i := range b.N {
		buf = nexmark.AppendEventJSON(buf[:0], events[i%len(events)])
		total += len(buf)
	}
	reportRate(b, int64(b.N))
	b.ReportMetric(float64(total)/float64(b.N), "bytes/event")
}

func BenchmarkParseEventJSON(b *testing.B) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1})
	lines := make([][]byte, 4096)
	for n := range lines {
		lines[n] = nexmark.AppendEventJSON(nil, g.Event(int64(n)))
	}
	b.ReportAllocs()
	for i := range b.N {
		if _, err := nexmark.ParseEventJSON(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, int64(b.N))
}
