package strom_test

import (
	"fmt"
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
				strategy := strom.BoundedOutOfOrderness[int64](0)
				if wm == "punctuated" {
					strategy = strom.CustomWatermarks[int64](func() strom.WatermarkGenerator { return punctuated{} })
				}
				strategy = strategy.WithTimestamps(func(v int64) int64 { return v })
				benchPipeline(b, p, &strategy)
			})
		}
	}
}
