package strom

// Tests of the window join and the interval join against nested-loop
// oracles, and white-box tests of the window and join operators' state
// cleanup and allocation-free hot path (driven directly, without a job).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

type jtRec struct {
	Key int
	TS  int64
	ID  int
}

type jtPair struct {
	A, B int
	TS   int64
}

func jtCmp(a, b jtPair) int {
	return cmp.Or(cmp.Compare(a.A, b.A), cmp.Compare(a.B, b.B), cmp.Compare(a.TS, b.TS))
}

// jtGen makes n records whose timestamps lag their nominal time (i·step)
// by at most disorder; timestamps are even.
func jtGen(seed uint64, n, keys int, step, disorder int64, idBase int) []jtRec {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]jtRec, n)
	for i := range out {
		ts := int64(i)*step - r.Int64N(disorder+1)
		ts -= ts & 1
		out[i] = jtRec{Key: r.IntN(keys), TS: ts, ID: idBase + i}
	}
	return out
}

// jtTimed is recs keyed, with a watermark after every record, so firings and
// cleanups interleave with the records as they would in a long-running job.
// (This package's tests cannot use connector/datagen's rate limit: it
// imports this package.)
func jtTimed(env *Environment, recs []jtRec, disorder time.Duration) Keyed[jtRec, int] {
	src := FromSlice(env, recs)
	ts := AssignTimestamps(src, BoundedOutOfOrderness[jtRec](disorder).WithTimestamps(func(r jtRec) int64 { return r.TS }).EmitPerRecord())
	return KeyBy(ts, func(r jtRec) int { return r.Key })
}

func jtEnv(p int) *Environment {
	return NewEnvironment(Config{Parallelism: p, AutoWatermarkInterval: time.Millisecond, BatchSize: 16, Logger: slog.New(slog.DiscardHandler)})
}

func jtRun(t *testing.T, env *Environment) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := env.Execute(ctx, t.Name())
	return err
}

func jtPairs(c *Collected[jtPair]) []jtPair {
	vals, tss := c.Values(), c.Timestamps()
	for i := range vals {
		vals[i].TS = tss[i]
	}
	slices.SortFunc(vals, jtCmp)
	return vals
}

// windowJoinOracle pairs every a and b of the same key in the same window,
// once per shared window, with the window's max timestamp.
func windowJoinOracle(as, bs []jtRec, windowsOf func(int64) []window.TimeWindow) []jtPair {
	var out []jtPair
	for _, a := range as {
		for _, b := range bs {
			if a.Key != b.Key {
				continue
			}
			for _, wa := range windowsOf(a.TS) {
				if wa.Contains(b.TS) {
					out = append(out, jtPair{a.ID, b.ID, wa.MaxTimestamp()})
				}
			}
		}
	}
	slices.SortFunc(out, jtCmp)
	return out
}

func jtAligned(size, slide int64) func(int64) []window.TimeWindow {
	return func(ts int64) []window.TimeWindow {
		var out []window.TimeWindow
		for s := window.StartWithOffset(ts, 0, slide); s > ts-size; s -= slide {
			out = append(out, window.TimeWindow{Start: s, End: s + size})
		}
		return out
	}
}

// sessionJoinOracle builds each key's sessions over both sides' records and
// pairs the records of each session.
func sessionJoinOracle(as, bs []jtRec, gap int64) []jtPair {
	type tagged struct {
		r    jtRec
		left bool
	}
	per := map[int][]tagged{}
	for _, a := range as {
		per[a.Key] = append(per[a.Key], tagged{a, true})
	}
	for _, b := range bs {
		per[b.Key] = append(per[b.Key], tagged{b, false})
	}
	var out []jtPair
	for _, rs := range per {
		slices.SortFunc(rs, func(x, y tagged) int { return cmp.Compare(x.r.TS, y.r.TS) })
		emit := func(sess []tagged, end int64) {
			for _, x := range sess {
				for _, y := range sess {
					if x.left && !y.left {
						out = append(out, jtPair{x.r.ID, y.r.ID, end - 1})
					}
				}
			}
		}
		start := 0
		end := rs[0].r.TS + gap
		for i := 1; i < len(rs); i++ {
			if rs[i].r.TS > end {
				emit(rs[start:i], end)
				start = i
			}
			end = max(end, rs[i].r.TS+gap)
		}
		emit(rs[start:], end)
	}
	slices.SortFunc(out, jtCmp)
	return out
}

func TestWindowJoinOracle(t *testing.T) {
	as := jtGen(11, 600, 6, 2, 30, 0)
	bs := jtGen(12, 500, 6, 2, 30, 100_000)
	cases := []struct {
		name string
		a    window.Assigner
		want []jtPair
	}{
		{"tumbling", window.Tumbling(50 * time.Millisecond), windowJoinOracle(as, bs, jtAligned(50, 50))},
		{"sliding", window.Sliding(60*time.Millisecond, 20*time.Millisecond), windowJoinOracle(as, bs, jtAligned(60, 20))},
		// Even timestamps, odd gap: no record lands exactly at a fired
		// session's end (see TestWindowSessionEventTime).
		{"session", window.Session(9 * time.Millisecond), sessionJoinOracle(as, bs, 9)},
	}
	for _, c := range cases {
		require.NotEmpty(t, c.want, c.name)
		for _, p := range []int{1, 2, 4} {
			env := jtEnv(p)
			out := Collect(WindowJoin(jtTimed(env, as, 30*time.Millisecond), jtTimed(env, bs, 30*time.Millisecond), c.a,
				func(a, b jtRec) jtPair {
					if a.Key != b.Key {
						panic("keys differ")
					}
					return jtPair{A: a.ID, B: b.ID}
				}))
			require.NoError(t, jtRun(t, env))
			require.Equal(t, c.want, jtPairs(out), "%s p=%d", c.name, p)
		}
	}
}

func intervalOracle(as, bs []jtRec, lower, upper int64) []jtPair {
	var out []jtPair
	for _, a := range as {
		for _, b := range bs {
			if a.Key == b.Key && b.TS >= a.TS+lower && b.TS <= a.TS+upper {
				out = append(out, jtPair{a.ID, b.ID, max(a.TS, b.TS)})
			}
		}
	}
	slices.SortFunc(out, jtCmp)
	return out
}

func TestIntervalJoinOracle(t *testing.T) {
	as := jtGen(21, 800, 5, 2, 40, 0)
	bs := jtGen(22, 800, 5, 2, 40, 100_000)
	for _, bounds := range [][2]int64{{-30, 20}, {0, 0}, {10, 50}, {-50, -10}} {
		want := intervalOracle(as, bs, bounds[0], bounds[1])
		require.NotEmpty(t, want)
		for _, p := range []int{1, 2, 4} {
			env := jtEnv(p)
			out := Collect(IntervalJoin(jtTimed(env, as, 40*time.Millisecond), jtTimed(env, bs, 40*time.Millisecond),
				time.Duration(bounds[0])*time.Millisecond, time.Duration(bounds[1])*time.Millisecond,
				func(a, b jtRec, out Collector[jtPair]) error {
					out.Collect(jtPair{A: a.ID, B: b.ID})
					return nil
				}))
			require.NoError(t, jtRun(t, env))
			require.Equal(t, want, jtPairs(out), "bounds %v p=%d", bounds, p)
		}
	}
}

func TestJoinErrors(t *testing.T) {
	recs := []jtRec{{1, 10, 1}, {1, 12, 2}}
	join := func(a, b jtRec, out Collector[jtPair]) error { out.Collect(jtPair{A: a.ID, B: b.ID}); return nil }
	t.Run("interval join without timestamps", func(t *testing.T) {
		env := jtEnv(2)
		plain := KeyBy(FromSlice(env, recs), func(r jtRec) int { return r.Key })
		Collect(IntervalJoin(plain, plain, 0, time.Second, join))
		err := jtRun(t, env)
		require.ErrorIs(t, err, operator.ErrIntervalNoTimestamp)
		require.ErrorContains(t, err, "IntervalJoin")
	})
	t.Run("interval join bounds", func(t *testing.T) {
		env := jtEnv(1)
		k := jtTimed(env, recs, 0)
		Collect(IntervalJoin(k, k, time.Second, 0, join))
		require.ErrorContains(t, jtRun(t, env), "lower bound")
	})
	t.Run("interval join function error", func(t *testing.T) {
		env := jtEnv(2)
		k := jtTimed(env, recs, 0)
		Collect(IntervalJoin(k, k, -time.Second, time.Second, func(jtRec, jtRec, Collector[int]) error { return errors.New("bad pair") }).Name("ij"))
		err := jtRun(t, env)
		require.ErrorIs(t, err, ErrJobFailed)
		require.ErrorContains(t, err, `"ij"`)
		require.ErrorContains(t, err, "bad pair")
	})
	t.Run("window join without timestamps", func(t *testing.T) {
		env := jtEnv(1)
		plain := KeyBy(FromSlice(env, recs), func(r jtRec) int { return r.Key })
		Collect(WindowJoin(plain, plain, window.Tumbling(time.Second), func(a, b jtRec) int { return 0 }))
		require.ErrorContains(t, jtRun(t, env), "without event timestamp")
	})
	t.Run("window join on processing time needs no timestamps", func(t *testing.T) {
		env := jtEnv(1)
		plain := KeyBy(FromSlice(env, recs), func(r jtRec) int { return r.Key })
		out := Collect(WindowJoin(plain, plain, window.TumblingProcessingTime(time.Hour), func(a, b jtRec) int { return a.ID*10 + b.ID }))
		require.NoError(t, jtRun(t, env))
		require.ElementsMatch(t, []int{11, 12, 21, 22}, out.Values(), "the window fires at the end of input")
	})
}

// ---- white-box tests ------------------------------------------------------

type jtOut[T any] struct {
	vals []T
	ts   []int64
}

func (o *jtOut[T]) Collect(v T, ts int64) { o.vals = append(o.vals, v); o.ts = append(o.ts, ts) }
func (o *jtOut[T]) EmitWatermark(int64)   {}
func (o *jtOut[T]) MarkIdle()             {}

func jtContext() *runtime.Context {
	info := runtime.TaskInfo{JobName: "test", VertexName: "v", Parallelism: 1, MaxParallelism: keygroup.DefaultMaxParallelism}
	task := runtime.NewTask(info, network.NewNotifier(), nil, slog.New(slog.DiscardHandler))
	return &runtime.Context{
		Ctx: context.Background(), Task: info, OperatorName: "op", Logger: slog.New(slog.DiscardHandler),
		KeyGroups: keygroup.Range{Start: 0, End: keygroup.DefaultMaxParallelism - 1}, Time: task.Time,
	}
}

// buildLast builds the operator of the environment's last node.
func buildLast[OUT any](t *testing.T, env *Environment, out runtime.Output[OUT]) runtime.Operator {
	t.Helper()
	require.NoError(t, env.err)
	n := env.graph.Nodes[len(env.graph.Nodes)-1]
	op, err := n.Build(jtContext(), out)
	require.NoError(t, err)
	require.NoError(t, op.Open(jtContext()))
	return op
}

var jtCount = state.Aggregator[jtRec, int64, int64]{
	Create: func() int64 { return 0 },
	Add:    func(a int64, _ jtRec) int64 { return a + 1 },
	Result: func(a int64) int64 { return a },
	Merge:  func(a, b int64) int64 { return a + b },
}

func TestWindowOperatorCleansUpState(t *testing.T) {
	for _, c := range []struct {
		name    string
		a       window.Assigner
		trigger window.Trigger
	}{
		{"sliding", window.Sliding(100*time.Millisecond, 25*time.Millisecond), nil},
		{"session", window.Session(30 * time.Millisecond), nil},
		{"sliding count trigger", window.Sliding(100*time.Millisecond, 25*time.Millisecond), window.CountTrigger(4)},
		{"session continuous", window.Session(30 * time.Millisecond), window.ContinuousEventTimeTrigger(10 * time.Millisecond)},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := NewEnvironment()
			w := Window(KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key }), c.a).AllowedLateness(50 * time.Millisecond)
			if c.trigger != nil {
				w = w.Trigger(c.trigger)
			}
			WindowAggregate(w, jtCount)
			out := &jtOut[int64]{}
			op := buildLast[int64](t, env, out).(*operator.WindowOp[jtRec, int, int64, int64, *WindowContext[int, int64]])
			recs := jtGen(3, 2000, 50, 1, 20, 0)
			for i, r := range recs {
				op.ProcessElement(r, r.TS)
				if i%100 == 99 {
					op.ProcessWatermark(r.TS - 500) // a few records become late
				}
			}
			require.Positive(t, op.Stats().Windows)
			last := recs[len(recs)-1].TS
			op.ProcessWatermark(last + 100 + 50 + 30)
			st := op.Stats()
			require.Zero(t, st.Windows, "window contents")
			require.Zero(t, st.TriggerState, "trigger state")
			require.Zero(t, st.EventTimers, "timers")
			require.Zero(t, st.MergingSets, "merging window sets")
			require.NotEmpty(t, out.vals)
		})
	}
}

func TestWindowHotPathDoesNotAllocate(t *testing.T) {
	env := NewEnvironment()
	WindowAggregate(Window(KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key }),
		window.Sliding(10*time.Second, 2*time.Second)), jtCount)
	op := buildLast[int64](t, env, &jtOut[int64]{}).(*operator.WindowOp[jtRec, int, int64, int64, *WindowContext[int, int64]])
	for k := range 100 {
		op.ProcessElement(jtRec{Key: k, TS: 5000}, 5000)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		op.ProcessElement(jtRec{Key: i % 100, TS: 5000 + int64(i%1000)}, 5000+int64(i%1000))
	})
	require.Zero(t, allocs, "records adding to existing windows must not allocate")
}

func TestIntervalJoinCleansUpBuffers(t *testing.T) {
	env := NewEnvironment()
	k := KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key })
	IntervalJoin(k, k, -20*time.Millisecond, 30*time.Millisecond, func(a, b jtRec, out Collector[jtPair]) error {
		out.Collect(jtPair{A: a.ID, B: b.ID})
		return nil
	})
	out := &jtOut[jtPair]{}
	op := buildLast[jtPair](t, env, out).(*operator.IntervalJoinOp[jtRec, jtRec, int, jtPair, Collector[jtPair]])
	for i := range 100 {
		op.ProcessElement1(jtRec{Key: i % 3, TS: int64(i), ID: i}, int64(i))
		op.ProcessElement2(jtRec{Key: i % 3, TS: int64(i), ID: -i}, int64(i))
	}
	require.Equal(t, 3, op.Stats().LeftKeys)
	// Left records are kept until the watermark reaches ts+30, right ones
	// until ts+20.
	op.ProcessWatermark(69)
	l, r := op.Stats().LeftRecords, op.Stats().RightRecords
	require.Equal(t, 60, l, "left records at 40..99 remain")
	require.Equal(t, 50, r, "right records at 50..99 remain")
	// A record at the watermark is late: dropped, not joined.
	n := len(out.vals)
	op.ProcessElement2(jtRec{Key: 0, TS: 69, ID: -1000}, 69)
	require.Equal(t, n, len(out.vals))
	require.Equal(t, int64(1), op.Stats().Dropped)
	op.ProcessWatermark(200)
	st := op.Stats()
	require.Zero(t, st.LeftKeys)
	require.Zero(t, st.RightKeys)
	require.Zero(t, st.EventTimers)
	// Every pair was found: compare with the oracle.
	var as, bs []jtRec
	for i := range 100 {
		as = append(as, jtRec{Key: i % 3, TS: int64(i), ID: i})
		bs = append(bs, jtRec{Key: i % 3, TS: int64(i), ID: -i})
	}
	got := slices.Clone(out.vals)
	for i := range got {
		got[i].TS = out.ts[i]
	}
	slices.SortFunc(got, jtCmp)
	require.Equal(t, intervalOracle(as, bs, -20, 30), got)
}

func ExampleIntervalJoin() {
	type click struct {
		User int
		TS   int64
	}
	type order struct {
		User int
		TS   int64
		Item string
	}
	env := NewEnvironment()
	clicks := AssignTimestamps(FromElements(env, click{1, 1_000}, click{2, 5_000}, click{1, 60_000}),
		BoundedOutOfOrderness[click](time.Second).WithTimestamps(func(c click) int64 { return c.TS }))
	orders := AssignTimestamps(FromElements(env, order{1, 3_000, "book"}, order{2, 30_000, "pen"}),
		BoundedOutOfOrderness[order](time.Second).WithTimestamps(func(o order) int64 { return o.TS }))
	// Orders placed within 10 s after a click of the same user.
	joined := IntervalJoin(KeyBy(clicks, func(c click) int { return c.User }), KeyBy(orders, func(o order) int { return o.User }),
		0, 10*time.Second, func(c click, o order, out Collector[string]) error {
			out.Collect(fmt.Sprintf("user %d clicked at %d, bought a %s at %d", c.User, c.TS, o.Item, o.TS))
			return nil
		})
	out := Collect(joined)
	if _, err := env.Execute(context.Background(), "click to order"); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range out.Values() {
		fmt.Println(s)
	}
	// Output:
	// user 1 clicked at 1000, bought a book at 3000
}

func ExampleWindowJoin() {
	type impression struct {
		Ad int
		TS int64
	}
	type click struct {
		Ad int
		TS int64
	}
	env := NewEnvironment()
	imps := AssignTimestamps(FromElements(env, impression{7, 1_000}, impression{7, 65_000}, impression{8, 2_000}),
		BoundedOutOfOrderness[impression](time.Second).WithTimestamps(func(i impression) int64 { return i.TS }))
	clicks := AssignTimestamps(FromElements(env, click{7, 3_000}, click{7, 4_000}, click{8, 70_000}),
		BoundedOutOfOrderness[click](time.Second).WithTimestamps(func(c click) int64 { return c.TS }))
	// Impressions and clicks of the same ad in the same minute.
	pairs := WindowJoin(KeyBy(imps, func(i impression) int { return i.Ad }), KeyBy(clicks, func(c click) int { return c.Ad }),
		window.Tumbling(time.Minute), func(i impression, c click) string {
			return fmt.Sprintf("ad %d: impression at %d, click at %d", i.Ad, i.TS, c.TS)
		})
	out := Collect(pairs)
	if _, err := env.Execute(context.Background(), "impressions and clicks"); err != nil {
		fmt.Println(err)
		return
	}
	lines := out.Values()
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// ad 7: impression at 1000, click at 3000
	// ad 7: impression at 1000, click at 4000
}
