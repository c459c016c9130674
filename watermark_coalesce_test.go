package strom_test

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/window"
)

// Watermarks are coalesced on their way between tasks (a watermark rides
// on the next batch of records, and only the latest pending one matters):
// event-time results must not depend on how many watermarks there are. A
// watermark after every record gives the same windows and timer firings as
// periodic ones, at every parallelism, with hash partitioning in between.
func TestPunctuatedWatermarksMatchPeriodic(t *testing.T) {
	const n, keys, disorder = 6000, 40, 20
	evs := genTevs(11, n, keys, 0, 1, disorder, false)
	wantTumbling := windowOracle(evs, alignedWindows(50, 50, 0))
	wantSliding := windowOracle(evs, alignedWindows(60, 20, 0))

	type outcome struct {
		tumbling, sliding []winRes
		timers            []userTotal
	}
	runJob := func(t *testing.T, p int, punctuatedWMs bool) outcome {
		env := newEnv(p, func(c *strom.Config) { c.AutoWatermarkInterval = time.Millisecond })
		strategy := strom.BoundedOutOfOrderness[tev](disorder * time.Millisecond)
		if punctuatedWMs {
			// The highest timestamp − (disorder + 1) after every new
			// highest: the same promise as BoundedOutOfOrderness.
			strategy = strom.CustomWatermarks[tev](func() strom.WatermarkGenerator {
				return &punctuatedWM{max: -1 << 62, lag: disorder + 1}
			})
		}
		src := strom.AssignTimestamps(strom.FromSlice(env, evs), strategy.WithTimestamps(func(e tev) int64 { return e.TS }))
		tumbling := strom.Collect(strom.WindowProcess(strom.Window(keyedEvs(src), window.Tumbling(50*time.Millisecond)), processCountSum))
		sliding := strom.Collect(strom.WindowAggregateWith(strom.Window(keyedEvs(src), window.Sliding(60*time.Millisecond, 20*time.Millisecond)), countSum, withWindow))
		// Keyed event-time timers: sessionize fails on a late record and
		// emits per user and second what only that second's records decide.
		asEvents := strom.Map(src, func(e tev) event {
			var u int64
			fmt.Sscanf(e.Key, "k%d", &u)
			return event{User: u, Ts: e.TS, Value: e.V}
		})
		timers := strom.Collect(strom.KeyedProcess(strom.KeyBy(asEvents, func(e event) int64 { return e.User }),
			func() strom.KeyedProcessFunction[int64, event, userTotal] { return &sessionize{} }))
		mustRun(t, env, fmt.Sprintf("wm p=%d punctuated=%v", p, punctuatedWMs))
		ts := timers.Values()
		slices.SortFunc(ts, func(a, b userTotal) int {
			return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.WindowEnd, b.WindowEnd))
		})
		return outcome{sortedRes(tumbling.Values()), sortedRes(sliding.Values()), ts}
	}
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprint("p", p), func(t *testing.T) {
			punct := runJob(t, p, true)
			periodic := runJob(t, p, false)
			require.Equal(t, wantTumbling, punct.tumbling, "tumbling, punctuated")
			require.Equal(t, wantTumbling, periodic.tumbling, "tumbling, periodic")
			require.Equal(t, wantSliding, punct.sliding, "sliding, punctuated")
			require.Equal(t, wantSliding, periodic.sliding, "sliding, periodic")
			require.NotEmpty(t, punct.timers)
			require.Equal(t, periodic.timers, punct.timers, "keyed timers")
		})
	}
}

// wmProbe publishes the last watermark its subtask saw.
type wmProbe struct{ wm *atomic.Int64 }

func (wmProbe) ProcessElement(*strom.ProcessContext[int], winRes) error { return nil }
func (p wmProbe) OnWatermark(_ *strom.ProcessContext[int], wm int64) error {
	p.wm.Store(wm)
	return nil
}

// A subtask that receives no records (every key hashes elsewhere) still
// sees event time advance while its producer is busy and never idles, so
// operators behind it (which take the minimum over their inputs) advance.
func TestWatermarkReachesSubtaskWithoutRecords(t *testing.T) {
	env := newEnv(2)
	// One source task, unbounded and never idle (it never flushes for
	// lack of work), chained with its watermark generator.
	gen := datagen.FromGenerator(env, func(i int64) tev { return tev{Key: "only", TS: i, V: 1} }).Parallelism(1)
	src := strom.AssignTimestamps(gen, strom.CustomWatermarks[tev](func() strom.WatermarkGenerator {
		return &punctuatedWM{max: -1 << 62, lag: 1}
	}).WithTimestamps(func(e tev) int64 { return e.TS })).Parallelism(1)
	counts := strom.WindowAggregateWith(strom.Window(keyedEvs(src), window.Tumbling(10*time.Millisecond)), countSum, withWindow)
	var wm atomic.Int64
	wm.Store(strom.NoTimestamp)
	strom.Discard(strom.Process(counts, func() strom.ProcessFunction[winRes, int] { return wmProbe{&wm} }).Parallelism(1))
	// The probe's watermark is the minimum over both window subtasks; one
	// of them gets no record at all.
	runUntil(t, env, "watermark without records", func() bool { return wm.Load() > 100_000 })
}
