package strom

// Tests of the window join's allowed lateness and late side outputs
// against a naive simulation: records in order, each watermark firing the
// windows it passes, a record within the lateness firing its windows again
// with their whole contents (as Flink's CoGroup-based window join does),
// and records whose windows are all cleaned up going to their side's
// late-data output.

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/window"
)

// jstep is a step of a join input: a record of side 1 or 2, or a watermark
// (side 0).
type jstep struct {
	side int
	r    jtRec
	wm   int64
}

// brute lists the windows [s, s+size), s a multiple of slide, containing
// ts, latest first (the order the assigner lists them).
func brute(size, slide int64) func(int64) []window.TimeWindow {
	return func(ts int64) []window.TimeWindow {
		var out []window.TimeWindow
		for s := -100 * slide; s <= ts+slide; s += slide {
			if s <= ts && ts < s+size {
				out = append(out, window.TimeWindow{Start: s, End: s + size})
			}
		}
		slices.Reverse(out)
		return out
	}
}

// simulateJoin runs the steps through the naive model.
func simulateJoin(steps []jstep, windowsOf func(int64) []window.TimeWindow, lateness int64) (pairs []jtPair, late1, late2 []jtRec) {
	type win struct {
		as, bs  []jtRec
		pending bool
	}
	type kw struct {
		key int
		w   window.TimeWindow
	}
	wins := map[kw]*win{}
	fire := func(x *win, w window.TimeWindow) {
		for _, a := range x.as {
			for _, b := range x.bs {
				pairs = append(pairs, jtPair{a.ID, b.ID, w.End - 1})
			}
		}
	}
	wm := int64(math.MinInt64)
	for _, s := range steps {
		if s.side == 0 {
			if s.wm <= wm {
				continue
			}
			wm = s.wm
			for k, x := range wins {
				if x.pending && k.w.End-1 <= wm {
					x.pending = false
					fire(x, k.w)
				}
			}
			for k := range wins {
				if k.w.End-1+lateness <= wm {
					delete(wins, k)
				}
			}
			continue
		}
		isLate := true
		for _, w := range windowsOf(s.r.TS) {
			if w.End-1+lateness <= wm {
				continue
			}
			isLate = false
			x := wins[kw{s.r.Key, w}]
			if x == nil {
				x = &win{pending: w.End-1 > wm}
				wins[kw{s.r.Key, w}] = x
			}
			if s.side == 1 {
				x.as = append(x.as, s.r)
			} else {
				x.bs = append(x.bs, s.r)
			}
			if w.End-1 <= wm {
				fire(x, w)
			}
		}
		if isLate && s.side == 1 {
			late1 = append(late1, s.r)
		} else if isLate {
			late2 = append(late2, s.r)
		}
	}
	for k, x := range wins {
		if x.pending {
			fire(x, k.w)
		}
	}
	slices.SortFunc(pairs, jtCmp)
	return pairs, late1, late2
}

// refired reports whether some pair was emitted twice (by a late firing).
func refired(sorted []jtPair) bool {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return true
		}
	}
	return false
}

// TestWindowJoinLatenessDriven drives the join operator directly, so every
// interleaving of the two inputs and the watermark is the test's, with
// records up to 400 ms late.
func TestWindowJoinLatenessDriven(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	var steps []jstep
	id := 0
	for i := range 3000 {
		ts := int64(i)
		if r.IntN(10) == 0 {
			ts -= r.Int64N(400)
		} else {
			ts -= r.Int64N(10)
		}
		id++
		steps = append(steps, jstep{side: 1 + r.IntN(2), r: jtRec{Key: r.IntN(4), TS: ts, ID: id}})
		if i%7 == 6 {
			steps = append(steps, jstep{wm: int64(i) - 20})
		}
	}
	for _, c := range []struct {
		name      string
		a         window.Assigner
		windowsOf func(int64) []window.TimeWindow
	}{
		{"tumbling", window.Tumbling(50 * time.Millisecond), brute(50, 50)},
		{"sliding", window.Sliding(60*time.Millisecond, 20*time.Millisecond), brute(60, 20)},
	} {
		for _, lateness := range []int64{0, 100} {
			for _, sideOutputs := range []bool{false, true} {
				name := fmt.Sprintf("%s lateness %d side outputs %t", c.name, lateness, sideOutputs)
				wantPairs, want1, want2 := simulateJoin(steps, c.windowsOf, lateness)
				require.NotEmpty(t, want1, name)
				require.NotEmpty(t, want2, name)
				require.Equal(t, lateness > 0, refired(wantPairs), name)

				env := NewEnvironment(Config{Logger: slog.New(slog.DiscardHandler)})
				k := KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key })
				j := WindowJoinOf(k, k, c.a).AllowedLateness(time.Duration(lateness) * time.Millisecond)
				if sideOutputs {
					j = j.SideOutputLateData1(NewOutputTag[jtRec]("late1")).SideOutputLateData2(NewOutputTag[jtRec]("late2"))
				}
				WindowJoinApply(j, func(a, b jtRec) jtPair { return jtPair{A: a.ID, B: b.ID} })
				require.NoError(t, env.err)
				n := env.graph.Nodes[len(env.graph.Nodes)-1]
				ctx := jtContext()
				out, lo1, lo2 := &jtOut[jtPair]{}, &jtOut[jtRec]{}, &jtOut[jtRec]{}
				ctx.SetSideOutputs(map[string]any{"late1": runtime.Output[jtRec](lo1), "late2": runtime.Output[jtRec](lo2)})
				op, err := n.Build(ctx, runtime.Output[jtPair](out))
				require.NoError(t, err)
				require.NoError(t, op.Open(ctx))
				jo := op.(*operator.WindowJoinOp[jtRec, jtRec, int, jtPair])
				for _, s := range steps {
					switch s.side {
					case 0:
						jo.ProcessWatermark(s.wm)
					case 1:
						jo.ProcessElement1(s.r, s.r.TS)
					case 2:
						jo.ProcessElement2(s.r, s.r.TS)
					}
				}
				jo.ProcessWatermark(math.MaxInt64)
				for i := range out.vals {
					out.vals[i].TS = out.ts[i]
				}
				slices.SortFunc(out.vals, jtCmp)
				require.Equal(t, wantPairs, out.vals, name)
				if sideOutputs {
					require.Equal(t, want1, lo1.vals, name)
					require.Equal(t, want2, lo2.vals, name)
					require.Zero(t, jo.Stats().Dropped, name)
					for i, v := range lo1.vals {
						require.Equal(t, v.TS, lo1.ts[i])
					}
				} else {
					require.Empty(t, lo1.vals, name)
					require.EqualValues(t, len(want1)+len(want2), jo.Stats().Dropped, name)
				}
				require.Zero(t, jo.Stats().Windows, "%s: window contents after the end", name)
			}
		}
	}
}

// lateJoinSteps makes the source order of a join job: on-time records
// (at most 5 ms out of order, under a watermark lagging 20 ms) and, every
// 400 records, one late record — either within the allowed lateness of
// 800 ms or beyond it, in both cases by at least 200 ms, so its fate does
// not depend on which input's watermark the operator has seen last (the
// operator's watermark is the minimum of its two inputs', which may lag a
// few batches behind the source's).
func lateJoinSteps(seed uint64, n int, windowsOf func(int64) []window.TimeWindow) []jstep {
	const lag, lateness, margin = 20, 800, 200
	r := rand.New(rand.NewPCG(seed, 3))
	var steps []jstep
	maxTS, wm := int64(math.MinInt64), int64(math.MinInt64)
	id := 0
	add := func(side int, ts int64) {
		if ts > maxTS {
			maxTS = ts
			if maxTS-lag > wm {
				wm = maxTS - lag
				steps = append(steps, jstep{wm: wm})
			}
		}
		id++
		steps = append(steps, jstep{side: side, r: jtRec{Key: r.IntN(5), TS: ts, ID: id}})
	}
	robust := func(ts int64) bool {
		for _, w := range windowsOf(ts) {
			fired := w.End-1 <= wm-margin
			cleaned := w.End-1+lateness <= wm-margin
			kept := w.End-1+lateness > wm+margin
			if !fired || !(cleaned || kept) {
				return false
			}
		}
		return true
	}
	for i := range n {
		add(1+r.IntN(2), int64(i)-r.Int64N(6))
		if i%400 == 399 {
			for {
				ts := wm - r.Int64N(1600)
				if robust(ts) {
					add(1+r.IntN(2), ts)
					break
				}
			}
		}
	}
	return steps
}

// TestWindowJoinLatenessJob runs the join with allowed lateness and late
// side outputs as a job, at parallelism 1 and 2, both inputs split from one
// source with punctuated watermarks.
func TestWindowJoinLatenessJob(t *testing.T) {
	for _, c := range []struct {
		name      string
		a         window.Assigner
		windowsOf func(int64) []window.TimeWindow
	}{
		{"tumbling", window.Tumbling(100 * time.Millisecond), brute(100, 100)},
		{"sliding", window.Sliding(100*time.Millisecond, 50*time.Millisecond), brute(100, 50)},
	} {
		steps := lateJoinSteps(9, 6000, c.windowsOf)
		wantPairs, want1, want2 := simulateJoin(steps, c.windowsOf, 800)
		require.NotEmpty(t, want1, c.name)
		require.NotEmpty(t, want2, c.name)
		require.True(t, refired(wantPairs), "%s: late records must re-fire windows", c.name)
		type tagged struct {
			Side int
			R    jtRec
		}
		var src []tagged
		for _, s := range steps {
			if s.side != 0 {
				src = append(src, tagged{s.side, s.r})
			}
		}
		for _, p := range []int{1, 2} {
			// How far the join's watermark lags behind the source's grows
			// with the batches a channel holds (credits plus overdraft):
			// two credits keep it within lateJoinSteps' margin.
			env := NewEnvironment(Config{Parallelism: p, BatchSize: 16, BuffersPerChannel: 2, Logger: slog.New(slog.DiscardHandler)})
			in := AssignTimestamps(FromSlice(env, src).Parallelism(1), CustomWatermarks[tagged](func() WatermarkGenerator {
				return &lagWM{max: math.MinInt64, lag: 20}
			}).WithTimestamps(func(x tagged) int64 { return x.R.TS })).Parallelism(1)
			side := func(n int) Keyed[jtRec, int] {
				s := Map(Filter(in, func(x tagged) bool { return x.Side == n }), func(x tagged) jtRec { return x.R }).Parallelism(1)
				return KeyBy(s, func(r jtRec) int { return r.Key })
			}
			l1, l2 := NewOutputTag[jtRec]("late-a"), NewOutputTag[jtRec]("late-b")
			joined := WindowJoinApply(WindowJoinOf(side(1), side(2), c.a).AllowedLateness(800*time.Millisecond).
				SideOutputLateData1(l1).SideOutputLateData2(l2).Name("late join"),
				func(a, b jtRec) jtPair { return jtPair{A: a.ID, B: b.ID} })
			out := Collect(joined)
			got1, got2 := Collect(SideOutput(joined, l1)), Collect(SideOutput(joined, l2))
			require.NoError(t, jtRun(t, env))
			name := fmt.Sprintf("%s p=%d", c.name, p)
			require.Equal(t, wantPairs, jtPairs(out), name)
			require.ElementsMatch(t, want1, got1.Values(), name)
			require.ElementsMatch(t, want2, got2.Values(), name)
		}
	}
}

// lagWM emits the highest timestamp seen minus lag whenever it rises.
type lagWM struct{ max, lag int64 }

func (g *lagWM) OnEvent(ts int64, out WatermarkOutput) {
	if ts > g.max {
		g.max = ts
		out.EmitWatermark(ts - g.lag)
	}
}
func (g *lagWM) OnPeriodicEmit(WatermarkOutput) {}

func TestWindowJoinSettingsErrors(t *testing.T) {
	recs := []jtRec{{1, 10, 1}}
	join := func(a, b jtRec) int { return 0 }
	for name, c := range map[string]struct {
		build func(k Keyed[jtRec, int])
		want  string
	}{
		"negative lateness": {func(k Keyed[jtRec, int]) {
			WindowJoinApply(WindowJoinOf(k, k, window.Tumbling(time.Second)).AllowedLateness(-time.Second), join)
		}, "lateness"},
		"nil trigger": {func(k Keyed[jtRec, int]) {
			WindowJoinApply(WindowJoinOf(k, k, window.Tumbling(time.Second)).Trigger(nil), join)
		}, "nil trigger"},
		"session trigger that cannot merge": {func(k Keyed[jtRec, int]) {
			WindowJoinApply(WindowJoinOf(k, k, window.Session(time.Second)).Trigger(joinNoMerge{}).Name("sj"), join)
		}, "cannot merge"},
		"nil join": {func(k Keyed[jtRec, int]) {
			WindowJoinApply[jtRec, jtRec, int, int](WindowJoinOf(k, k, window.Tumbling(time.Second)), nil)
		}, "nil join"},
	} {
		t.Run(name, func(t *testing.T) {
			env := jtEnv(1)
			c.build(jtTimed(env, recs, 0))
			require.ErrorContains(t, jtRun(t, env), c.want)
		})
	}
}

// TestWindowJoinCountTrigger: a join with another trigger fires when it
// says: CountTrigger(5) fires once the window has its fifth record,
// whichever input it comes from, and (as in Flink) not at the window's end.
func TestWindowJoinCountTrigger(t *testing.T) {
	as := []jtRec{{1, 1, 1}, {1, 2, 2}, {1, 3, 3}, {1, 4, 4}, {2, 1, 5}}
	bs := []jtRec{{1, 5, 10}, {2, 2, 11}}
	for _, p := range []int{1, 2} {
		env := jtEnv(p)
		out := Collect(WindowJoinApply(WindowJoinOf(jtTimed(env, as, 0), jtTimed(env, bs, 0), window.Tumbling(time.Hour)).
			Trigger(window.CountTrigger(5)),
			func(a, b jtRec) jtPair { return jtPair{A: a.ID, B: b.ID} }))
		require.NoError(t, jtRun(t, env))
		require.Equal(t, []jtPair{{1, 10, 3_599_999}, {2, 10, 3_599_999}, {3, 10, 3_599_999}, {4, 10, 3_599_999}}, jtPairs(out), "p=%d", p)
	}
}

type joinNoMerge struct{}

func (joinNoMerge) OnElement(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (joinNoMerge) OnEventTime(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (joinNoMerge) OnProcessingTime(int64, window.TimeWindow, window.TriggerContext) window.TriggerResult {
	return window.Continue
}
func (joinNoMerge) CanMerge() bool                                   { return false }
func (joinNoMerge) OnMerge(window.TimeWindow, window.OnMergeContext) {}
func (joinNoMerge) Clear(window.TimeWindow, window.TriggerContext)   {}
