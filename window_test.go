package strom_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// tev is a test record: a key, an event timestamp and a value.
type tev struct {
	Key string
	TS  int64
	V   int64
}

// winRes is one window's result.
type winRes struct {
	Key        string
	Start, End int64
	Count, Sum int64
}

func cmpRes(a, b winRes) int {
	return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End),
		cmp.Compare(a.Count, b.Count), cmp.Compare(a.Sum, b.Sum))
}

func sortedRes(rs []winRes) []winRes {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, cmpRes)
	return rs
}

// genTevs makes n records over keys whose timestamps advance by step ms
// per record from start and lag their nominal time by up to disorder ms, so
// BoundedOutOfOrderness(disorder) never sees a late record. With even,
// all timestamps are even.
func genTevs(seed uint64, n, keys int, start, step, disorder int64, even bool) []tev {
	r := rand.New(rand.NewPCG(seed, 42))
	out := make([]tev, n)
	for i := range out {
		ts := start + int64(i)*step - r.Int64N(disorder+1)
		if even && ts%2 != 0 {
			ts--
		}
		out[i] = tev{Key: fmt.Sprintf("k%d", r.IntN(keys)), TS: ts, V: r.Int64N(100)}
	}
	return out
}

func timedEvs(env *strom.Environment, evs []tev, disorder time.Duration) strom.Stream[tev] {
	return strom.AssignTimestamps(strom.FromSlice(env, evs),
		strom.BoundedOutOfOrderness[tev](disorder).WithTimestamps(func(e tev) int64 { return e.TS }))
}

// punctuatedWM emits the highest timestamp seen minus lag after every
// record, so watermarks (and thus lateness) are deterministic.
type punctuatedWM struct{ max, lag int64 }

func (p *punctuatedWM) OnEvent(ts int64, out strom.WatermarkOutput) {
	if ts > p.max {
		p.max = ts
		out.EmitWatermark(ts - p.lag)
	}
}
func (p *punctuatedWM) OnPeriodicEmit(strom.WatermarkOutput) {}

func punctualEvs(env *strom.Environment, evs []tev, lag int64) strom.Stream[tev] {
	s := strom.FromSlice(env, evs).Parallelism(1)
	return strom.AssignTimestamps(s, strom.CustomWatermarks[tev](func() strom.WatermarkGenerator {
		return &punctuatedWM{max: -1 << 62, lag: lag}
	}).WithTimestamps(func(e tev) int64 { return e.TS })).Parallelism(1)
}

func keyedEvs(s strom.Stream[tev]) strom.Keyed[tev, string] {
	return strom.KeyBy(s, func(e tev) string { return e.Key })
}

func runWin(t testing.TB, env *strom.Environment) *strom.JobResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, t.Name())
	require.NoError(t, err)
	return res
}

func runWinErr(t testing.TB, env *strom.Environment) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := env.Execute(ctx, t.Name())
	require.Error(t, err)
	return err
}

// windowOracle computes every window's count and sum the naive way: windowsOf
// lists a timestamp's windows.
func windowOracle(evs []tev, windowsOf func(ts int64) []window.TimeWindow) []winRes {
	type k struct {
		key string
		w   window.TimeWindow
	}
	m := map[k]*winRes{}
	for _, e := range evs {
		for _, w := range windowsOf(e.TS) {
			r := m[k{e.Key, w}]
			if r == nil {
				r = &winRes{Key: e.Key, Start: w.Start, End: w.End}
				m[k{e.Key, w}] = r
			}
			r.Count++
			r.Sum += e.V
		}
	}
	var out []winRes
	for _, r := range m {
		out = append(out, *r)
	}
	return sortedRes(out)
}

// alignedWindows enumerates, by brute force, the windows [s, s+size) with
// s ≡ offset (mod slide) that contain ts.
func alignedWindows(size, slide, offset int64) func(ts int64) []window.TimeWindow {
	return func(ts int64) []window.TimeWindow {
		var out []window.TimeWindow
		s := offset - slide*1000
		for ; s <= ts; s += slide {
			if ts < s+size {
				out = append(out, window.TimeWindow{Start: s, End: s + size})
			}
		}
		return out
	}
}

// sessionOracle merges each key's records into sessions.
func sessionOracle(evs []tev, gap int64) []winRes {
	per := map[string][]tev{}
	for _, e := range evs {
		per[e.Key] = append(per[e.Key], e)
	}
	var out []winRes
	for key, es := range per {
		slices.SortFunc(es, func(a, b tev) int { return cmp.Compare(a.TS, b.TS) })
		cur := winRes{Key: key, Start: es[0].TS, End: es[0].TS + gap}
		for _, e := range es {
			if e.TS > cur.End {
				out = append(out, cur)
				cur = winRes{Key: key, Start: e.TS, End: e.TS + gap}
			}
			cur.End = max(cur.End, e.TS+gap)
			cur.Count++
			cur.Sum += e.V
		}
		out = append(out, cur)
	}
	return sortedRes(out)
}

var countSum = state.Aggregator[tev, winRes, winRes]{
	Create: func() winRes { return winRes{} },
	Add: func(a winRes, e tev) winRes {
		a.Key = e.Key
		a.Count++
		a.Sum += e.V
		return a
	},
	Result: func(a winRes) winRes { return a },
	Merge: func(a, b winRes) winRes {
		a.Count += b.Count
		a.Sum += b.Sum
		return a
	},
}

func processCountSum(ctx *strom.WindowContext[string, winRes], es []tev) error {
	key, w := ctx.Key(), ctx.Window()
	r := winRes{Key: key, Start: w.Start, End: w.End}
	for _, e := range es {
		if e.Key != key {
			return fmt.Errorf("record %+v in window %v of key %s", e, w, key)
		}
		r.Count++
		r.Sum += e.V
	}
	ctx.Collect(r)
	return nil
}

func withWindow(ctx *strom.WindowContext[string, winRes], r winRes) error {
	w := ctx.Window()
	r.Key, r.Start, r.End = ctx.Key(), w.Start, w.End
	ctx.Collect(r)
	return nil
}

// runAllFunctions runs WindowProcess, WindowAggregateWith, WindowAggregate
// and WindowReduce over the same windows and checks all against want.
func runAllFunctions(t *testing.T, evs []tev, disorder time.Duration, a window.Assigner, size int64, want []winRes) {
	t.Helper()
	for _, p := range []int{1, 2, 4} {
		// Frequent watermarks and small batches, so windows fire while
		// out-of-order records still arrive.
		env := strom.NewEnvironment(strom.Config{Parallelism: p, AutoWatermarkInterval: time.Millisecond, BatchSize: 16})
		src := datagen.FromGenerator(env, func(i int64) tev { return evs[i] }, datagen.Count(int64(len(evs))), datagen.RatePerSecond(float64(len(evs))*5))
		w := strom.Window(keyedEvs(strom.AssignTimestamps(src,
			strom.BoundedOutOfOrderness[tev](disorder).WithTimestamps(func(e tev) int64 { return e.TS }))), a)
		proc := strom.Collect(strom.WindowProcess(w, processCountSum))
		aggw := strom.Collect(strom.WindowAggregateWith(w, countSum, withWindow))
		agg := strom.Collect(strom.WindowAggregate(w, countSum))
		red := strom.Collect(strom.WindowReduce(w, func(a, b tev) tev { return tev{Key: a.Key, TS: a.TS, V: a.V + b.V} }))
		runWin(t, env)

		require.Equal(t, want, sortedRes(proc.Values()), "WindowProcess p=%d", p)
		require.Equal(t, want, sortedRes(aggw.Values()), "WindowAggregateWith p=%d", p)
		for _, ts := range proc.Timestamps() {
			require.NotEqual(t, strom.NoTimestamp, ts)
		}
		// Without the window in the result, compare by the emitted
		// timestamps (window.MaxTimestamp()) — enough for fixed-size windows.
		if size > 0 {
			var got []winRes
			vals, tss := agg.Values(), agg.Timestamps()
			for i, v := range vals {
				v.Start, v.End = tss[i]+1-size, tss[i]+1
				got = append(got, v)
			}
			require.Equal(t, want, sortedRes(got), "WindowAggregate p=%d", p)
			got = got[:0]
			rv, rts := red.Values(), red.Timestamps()
			for i, v := range rv {
				got = append(got, winRes{Key: v.Key, Start: rts[i] + 1 - size, End: rts[i] + 1, Sum: v.V})
			}
			var wantSums []winRes
			for _, r := range want {
				r.Count = 0
				wantSums = append(wantSums, r)
			}
			require.Equal(t, sortedRes(wantSums), sortedRes(got), "WindowReduce p=%d", p)
		} else {
			require.Len(t, agg.Values(), len(want))
			require.Len(t, red.Values(), len(want))
		}
	}
}

func TestWindowTumblingEventTime(t *testing.T) {
	evs := genTevs(1, 3000, 7, -500, 1, 40, false) // negative timestamps too
	want := windowOracle(evs, alignedWindows(100, 100, 0))
	require.Greater(t, len(want), 150)
	runAllFunctions(t, evs, 40*time.Millisecond, window.Tumbling(100*time.Millisecond), 100, want)
}

func TestWindowTumblingOffset(t *testing.T) {
	evs := genTevs(2, 1000, 3, 0, 1, 20, false)
	want := windowOracle(evs, alignedWindows(100, 100, -30))
	runAllFunctions(t, evs, 20*time.Millisecond, window.Tumbling(100*time.Millisecond).WithOffset(-30*time.Millisecond), 100, want)
}

func TestWindowSlidingEventTime(t *testing.T) {
	evs := genTevs(3, 3000, 5, -200, 1, 50, false)
	// Slide not dividing size, and an offset.
	want := windowOracle(evs, alignedWindows(100, 30, 7))
	runAllFunctions(t, evs, 50*time.Millisecond, window.Sliding(100*time.Millisecond, 30*time.Millisecond).WithOffset(7*time.Millisecond), 100, want)
}

func TestWindowSessionEventTime(t *testing.T) {
	// Sparse keys so sessions form and merge; even timestamps and an odd
	// gap, so no record lands exactly at the end of a fired session (which
	// would start a new session or extend the old one depending on watermark
	// timing, as in Flink).
	evs := genTevs(4, 2000, 20, 0, 3, 60, true)
	want := sessionOracle(evs, 51)
	require.Greater(t, len(want), 20)
	require.Less(t, len(want), 1500, "sessions must merge")
	runAllFunctions(t, evs, 60*time.Millisecond, window.Session(51*time.Millisecond), 0, want)
}

func TestWindowAllowedLatenessAndLateSideOutput(t *testing.T) {
	// Tumbling 10 ms, lateness 20 ms; the watermark is the highest
	// timestamp seen. See the comments for what each record does.
	in := []tev{
		{"a", 1, 1},
		{"a", 5, 1},
		{"a", 12, 1}, // wm 12: [0,10) fires with {1,5}
		{"a", 3, 1},  // late but within lateness: [0,10) fires again with 3 records
		{"a", 25, 1}, // wm 25: [10,20) fires with {12}
		{"a", 7, 1},  // [0,10) fires with 4 records (cleanup at 29)
		{"a", 31, 1}, // wm 31: [0,10) cleaned up; [20,30) fires with {25}
		{"a", 2, 1},  // [0,10) is gone: late data
		{"a", 15, 1}, // [10,20) (cleanup at 39) fires with {12,15}
		{"b", 4, 1},  // key b never had [0,10): late data too
		// end of input: [30,40) fires with {31}
	}
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})
	lateTag := strom.NewOutputTag[tev]("late")
	out := strom.WindowProcess(strom.Window(keyedEvs(punctualEvs(env, in, 0)), window.Tumbling(10*time.Millisecond)).
		AllowedLateness(20*time.Millisecond).SideOutputLateData(lateTag),
		func(ctx *strom.WindowContext[string, winRes], es []tev) error {
			w := ctx.Window()
			r := winRes{Key: ctx.Key(), Start: w.Start, End: w.End}
			for _, e := range es {
				r.Count++
				r.Sum += e.TS
			}
			ctx.Collect(r)
			return nil
		})
	got := strom.Collect(out)
	late := strom.Collect(strom.SideOutput(out, lateTag))
	runWin(t, env)
	require.Equal(t, []winRes{
		{"a", 0, 10, 2, 6},
		{"a", 0, 10, 3, 9},
		{"a", 10, 20, 1, 12},
		{"a", 0, 10, 4, 16},
		{"a", 20, 30, 1, 25},
		{"a", 10, 20, 2, 27},
		{"a", 30, 40, 1, 31},
	}, got.Values())
	require.Equal(t, []int64{9, 9, 19, 9, 29, 19, 39}, got.Timestamps())
	require.ElementsMatch(t, []tev{{"a", 2, 1}, {"b", 4, 1}}, late.Values())
	require.ElementsMatch(t, []int64{2, 4}, late.Timestamps())
}

// logBuffer is a bytes.Buffer safe for the log handlers of several tasks.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWindowLateDataDroppedAndCounted(t *testing.T) {
	in := []tev{{"a", 1, 1}, {"a", 12, 1}, {"a", 3, 1}, {"a", 4, 1}, {"a", 13, 1}}
	var logs logBuffer
	env := strom.NewEnvironment(strom.Config{Parallelism: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	got := strom.Collect(strom.WindowAggregateWith(strom.Window(keyedEvs(punctualEvs(env, in, 0)), window.Tumbling(10*time.Millisecond)),
		countSum, withWindow))
	runWin(t, env)
	require.Equal(t, []winRes{{"a", 0, 10, 1, 1}, {"a", 10, 20, 2, 2}}, got.Values())
	require.Contains(t, logs.String(), "late records dropped")
	require.Contains(t, logs.String(), "count=2")
}

func TestWindowSessionMergingAndLateBridge(t *testing.T) {
	// Session gap 10 ms, lateness 20 ms, watermark = highest timestamp.
	in := []tev{
		{"a", 0, 1},  // [0,10)
		{"a", 18, 1}, // wm 18: [0,10) fires (1 record); [18,28)
		{"a", 9, 1},  // late for [0,10) but within lateness: [9,19) bridges [0,10) and [18,28) → [0,28)
		{"a", 40, 1}, // wm 40: [0,28) fires with 3 records; [40,50)
		{"a", 5, 1},  // lands in [0,28) (cleanup at 47): fires at once with 4
		{"a", 60, 1}, // wm 60: [0,28) cleaned up, [40,50) fires; [60,70)
		{"a", 1, 1},  // [1,11) is beyond lateness and merges with nothing: late
		// end of input: [60,70) fires
	}
	env := strom.NewEnvironment(strom.Config{Parallelism: 1})
	lateTag := strom.NewOutputTag[tev]("late")
	w := strom.Window(keyedEvs(punctualEvs(env, in, 0)), window.Session(10*time.Millisecond)).
		AllowedLateness(20 * time.Millisecond).SideOutputLateData(lateTag)
	proc := strom.WindowProcess(w, processCountSum)
	agg := strom.Collect(strom.WindowAggregateWith(w, countSum, withWindow))
	got := strom.Collect(proc)
	late := strom.Collect(strom.SideOutput(proc, lateTag))
	runWin(t, env)
	want := []winRes{
		{"a", 0, 10, 1, 1},
		{"a", 0, 28, 3, 3},
		{"a", 0, 28, 4, 4},
		{"a", 40, 50, 1, 1},
		{"a", 60, 70, 1, 1},
	}
	require.Equal(t, want, got.Values())
	require.Equal(t, want, agg.Values())
	require.Equal(t, []tev{{"a", 1, 1}}, late.Values())
}

func TestWindowCountTriggerAndPurging(t *testing.T) {
	var in []tev
	for i := range 10 {
		for _, k := range []string{"x", "y", "z"} {
			in = append(in, tev{k, int64(i), 1})
		}
	}
	for _, p := range []int{1, 2} {
		env := strom.NewEnvironment(strom.Config{Parallelism: p})
		w := strom.Window(keyedEvs(timedEvs(env, in, 0)), window.Tumbling(time.Hour))
		counts := func(s strom.Stream[winRes]) *strom.Collected[int64] {
			return strom.Collect(strom.Map(s, func(r winRes) int64 { return r.Count }))
		}
		keep := counts(strom.WindowAggregateWith(w.Trigger(window.CountTrigger(3)), countSum, withWindow))
		purge := counts(strom.WindowProcess(w.Trigger(window.Purging(window.CountTrigger(3))), processCountSum))
		runWin(t, env)
		// Every third record fires; the 10th never does (the window is
		// cleaned up at its end without firing, as in Flink).
		require.ElementsMatch(t, []int64{3, 6, 9, 3, 6, 9, 3, 6, 9}, keep.Values(), "p=%d", p)
		require.ElementsMatch(t, []int64{3, 3, 3, 3, 3, 3, 3, 3, 3}, purge.Values(), "p=%d", p)
	}
}

func TestWindowCountTriggerOnSessions(t *testing.T) {
	// Counts of merged sessions add up: records 0, 20 form two sessions
	// (count 1 each); 10 bridges them (count 3 → fires with CountTrigger(3)).
	in := []tev{{"a", 0, 1}, {"a", 20, 1}, {"a", 10, 1}, {"a", 25, 1}, {"a", 26, 1}, {"a", 27, 1}}
	env := strom.NewEnvironment(strom.Config{Parallelism: 1})
	got := strom.Collect(strom.WindowAggregateWith(
		strom.Window(keyedEvs(timedEvs(env, in, time.Hour)), window.Session(10*time.Millisecond)).Trigger(window.CountTrigger(3)),
		countSum, withWindow))
	runWin(t, env)
	require.Equal(t, []winRes{{"a", 0, 30, 3, 3}, {"a", 0, 37, 6, 6}}, got.Values())
}

func TestWindowContinuousEventTimeTrigger(t *testing.T) {
	// A 100 ms window firing early every 25 ms of event time.
	var in []tev
	for ts := int64(0); ts < 100; ts += 10 {
		in = append(in, tev{"a", ts, 1})
	}
	env := strom.NewEnvironment(strom.Config{Parallelism: 1})
	got := strom.Collect(strom.WindowAggregateWith(
		strom.Window(keyedEvs(punctualEvs(env, in, 0)), window.Tumbling(100*time.Millisecond)).
			Trigger(window.ContinuousEventTimeTrigger(25*time.Millisecond)),
		countSum, withWindow))
	runWin(t, env)
	// Fires early when the watermark passes 25, 50 and 75 — a record's
	// watermark follows it (as in Flink), so the record at 50 is in the
	// second firing — and at the end (99).
	require.Equal(t, []int64{4, 6, 9, 10}, resCounts(got.Values()))
}

func resCounts(rs []winRes) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Count)
	}
	return out
}

func TestWindowProcessingTime(t *testing.T) {
	const n = 600
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})
	src := datagen.FromGenerator(env, func(i int64) tev { return tev{Key: fmt.Sprintf("k%d", i%5), V: 1} },
		datagen.Count(n), datagen.RatePerSecond(3000))
	k := keyedEvs(src) // no timestamps: processing time needs none
	tumbling := strom.Collect(strom.WindowAggregateWith(strom.Window(k, window.TumblingProcessingTime(20*time.Millisecond)), countSum, withWindow))
	sliding := strom.Collect(strom.WindowAggregateWith(strom.Window(k, window.SlidingProcessingTime(40*time.Millisecond, 20*time.Millisecond)), countSum, withWindow))
	session := strom.Collect(strom.WindowProcess(strom.Window(k, window.SessionProcessingTime(15*time.Millisecond)), processCountSum))
	runWin(t, env)
	total := func(rs []winRes) (sum int64) {
		for _, r := range rs {
			sum += r.Count
		}
		return sum
	}
	require.Equal(t, int64(n), total(tumbling.Values()))
	require.Equal(t, int64(2*n), total(sliding.Values()), "every record is in two sliding windows")
	require.Equal(t, int64(n), total(session.Values()))
	for _, r := range tumbling.Values() {
		require.Equal(t, int64(20), r.End-r.Start)
		require.Zero(t, r.Start%20)
	}
}

func TestWindowErrors(t *testing.T) {
	noMerge := countSum
	noMerge.Merge = nil

	t.Run("session aggregate without Merge", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, nil, 0)), window.Session(time.Second)), noMerge))
		err := runWinErr(t, env)
		require.ErrorContains(t, err, "Merge")
	})
	t.Run("tumbling aggregate without Merge is fine", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, []tev{{"a", 1, 1}}, 0)), window.Tumbling(time.Second)), noMerge))
		runWin(t, env)
	})
	t.Run("invalid assigner", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, nil, 0)), window.Sliding(time.Second, 0)), countSum))
		require.ErrorContains(t, runWinErr(t, env), "slide")
	})
	t.Run("trigger that cannot merge", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, nil, 0)), window.Session(time.Second)).Trigger(noMergeTrigger{}), countSum))
		require.ErrorContains(t, runWinErr(t, env), "cannot merge")
	})
	t.Run("negative lateness", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, nil, 0)), window.Tumbling(time.Second)).AllowedLateness(-time.Second), countSum))
		require.ErrorContains(t, runWinErr(t, env), "lateness")
	})
	t.Run("window function error names the operator", func(t *testing.T) {
		for _, p := range []int{1, 2} {
			env := strom.NewEnvironment(strom.Config{Parallelism: p})
			boom := errors.New("boom")
			strom.Collect(strom.WindowProcess(strom.Window(keyedEvs(timedEvs(env, genTevs(5, 100, 3, 0, 1, 0, false), 0)), window.Tumbling(10*time.Millisecond)).Name("my-window"),
				func(*strom.WindowContext[string, int], []tev) error { return boom }))
			err := runWinErr(t, env)
			require.ErrorIs(t, err, strom.ErrJobFailed)
			require.ErrorIs(t, err, boom)
			require.ErrorContains(t, err, `"my-window"`)
		}
	})
	t.Run("aggregate-with function error", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregateWith(strom.Window(keyedEvs(timedEvs(env, []tev{{"a", 1, 1}}, 0)), window.Tumbling(time.Second)), countSum,
			func(*strom.WindowContext[string, int], winRes) error { return errors.New("nope") }).Name("agg-fn"))
		err := runWinErr(t, env)
		require.ErrorContains(t, err, `"agg-fn"`)
		require.ErrorContains(t, err, "nope")
	})
	t.Run("event-time window without timestamps", func(t *testing.T) {
		env := strom.NewEnvironment()
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(strom.FromSlice(env, []tev{{"a", 1, 1}})), window.Tumbling(time.Second)), countSum))
		err := runWinErr(t, env)
		require.ErrorContains(t, err, "without event timestamp")
		require.ErrorContains(t, err, "WindowAggregate")
	})
}

type noMergeTrigger struct{}

func (noMergeTrigger) OnElement(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (noMergeTrigger) OnEventTime(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (noMergeTrigger) OnProcessingTime(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (noMergeTrigger) CanMerge() bool                                   { return false }
func (noMergeTrigger) OnMerge(window.TimeWindow, window.OnMergeContext) {}
func (noMergeTrigger) Clear(window.TimeWindow, window.TriggerContext)   {}

// ExampleWindowAggregate counts clicks per page in tumbling one-minute
// windows of event time.
func ExampleWindowAggregate() {
	type click struct {
		Page string
		TS   int64 // epoch ms
	}
	env := strom.NewEnvironment()
	clicks := strom.FromElements(env,
		click{"home", 1_000}, click{"cart", 5_000}, click{"home", 59_000},
		click{"home", 61_000}, click{"home", 30_000})
	timedClicks := strom.AssignTimestamps(clicks,
		strom.BoundedOutOfOrderness[click](time.Minute).WithTimestamps(func(c click) int64 { return c.TS }))
	perPage := strom.KeyBy(timedClicks, func(c click) string { return c.Page })
	counts := strom.WindowAggregateWith(strom.Window(perPage, window.Tumbling(time.Minute)),
		state.Aggregator[click, int, int]{
			Create: func() int { return 0 },
			Add:    func(n int, _ click) int { return n + 1 },
			Result: func(n int) int { return n },
			Merge:  func(a, b int) int { return a + b },
		},
		func(ctx *strom.WindowContext[string, string], n int) error {
			ctx.Collect(fmt.Sprintf("%s %v: %d", ctx.Key(), ctx.Window(), n))
			return nil
		})
	out := strom.Collect(counts)
	if _, err := env.Execute(context.Background(), "clicks per minute"); err != nil {
		fmt.Println(err)
		return
	}
	lines := out.Values()
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// cart [0, 60000): 1
	// home [0, 60000): 3
	// home [60000, 120000): 1
}

func benchmarkWindow(b *testing.B, a window.Assigner) {
	n := int64(max(b.N, 1000))
	env := strom.NewEnvironment(strom.Config{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)})
	src := datagen.FromGenerator(env, func(i int64) tev { return tev{Key: "", TS: i / 10, V: i % 10000} }, datagen.Count(n))
	ts := strom.AssignTimestamps(src, strom.BoundedOutOfOrderness[tev](0).WithTimestamps(func(e tev) int64 { return e.TS }))
	k := strom.KeyBy(ts, func(e tev) int64 { return e.V })
	strom.Discard(strom.WindowAggregate(strom.Window(k, a), state.Aggregator[tev, int64, int64]{
		Create: func() int64 { return 0 },
		Add:    func(acc int64, _ tev) int64 { return acc + 1 },
		Result: func(acc int64) int64 { return acc },
		Merge:  func(a, b int64) int64 { return a + b },
	}))
	b.ResetTimer()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := env.Execute(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkWindowSliding: 10 s windows sliding by 2 s (5 windows per
// record) over 10 000 keys at 10 records per ms of event time.
func BenchmarkWindowSliding(b *testing.B) {
	benchmarkWindow(b, window.Sliding(10*time.Second, 2*time.Second))
}

// BenchmarkWindowTumbling: 10 s tumbling windows, same input.
func BenchmarkWindowTumbling(b *testing.B) {
	benchmarkWindow(b, window.Tumbling(10*time.Second))
}
