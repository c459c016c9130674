package strom_test

// Tests of the window function context (key, window, times, per-window and
// global state, Clear, side outputs), evictors and WindowAll against a
// naive simulation of the window operator: records in source order, the
// punctuated watermark before each record that raises it, windows firing
// when the watermark passes their end and again for every record within
// the allowed lateness, cleaned up when it passes end + lateness.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// lateTevs makes n records over keys at about 2 ms each; most lag their
// nominal time by a few ms, some by up to 500 ms, so with a watermark that
// lags 20 ms many are late: some within an allowed lateness of 150 ms,
// some beyond it. V is the record's index (unique).
func lateTevs(seed uint64, n, keys int) []tev {
	r := rand.New(rand.NewPCG(seed, 99))
	out := make([]tev, n)
	for i := range out {
		ts := int64(i) * 2
		if r.IntN(100) < 15 {
			ts -= r.Int64N(500)
		} else {
			ts -= r.Int64N(15)
		}
		out[i] = tev{Key: fmt.Sprintf("k%d", r.IntN(keys)), TS: ts, V: int64(i)}
	}
	return out
}

const simLag = 20 // the punctuated watermark's lag behind the highest timestamp

// simEvictor is the naive model of an evictor: which elements it keeps,
// before or after the window function.
type simEvictor struct {
	name   string
	ev     window.Evictor
	after  bool
	keepOf func(elems []tev) []tev
}

func keepLast(n int) func([]tev) []tev {
	return func(es []tev) []tev { return es[max(0, len(es)-n):] }
}

func keepRecent(d int64) func([]tev) []tev {
	return func(es []tev) []tev {
		newest := int64(-1 << 62)
		for _, e := range es {
			newest = max(newest, e.TS)
		}
		var out []tev
		for _, e := range es {
			if e.TS > newest-d {
				out = append(out, e)
			}
		}
		return out
	}
}

func keepNear(th int64) func([]tev) []tev {
	return func(es []tev) []tev {
		if len(es) == 0 {
			return es
		}
		last := es[len(es)-1]
		var out []tev
		for _, e := range es {
			d := e.V - last.V
			if d < 0 {
				d = -d
			}
			if d < th {
				out = append(out, e)
			}
		}
		return out
	}
}

func deltaV(a, b tev) float64 {
	d := a.V - b.V
	if d < 0 {
		d = -d
	}
	return float64(d)
}

func testEvictors() []*simEvictor {
	return []*simEvictor{
		nil,
		{"count", window.CountEvictor(3), false, keepLast(3)},
		{"count after", window.CountEvictor(3).After(), true, keepLast(3)},
		{"time", window.TimeEvictor(40 * time.Millisecond), false, keepRecent(40)},
		{"time after", window.TimeEvictor(40 * time.Millisecond).After(), true, keepRecent(40)},
		{"delta", window.DeltaEvictor(20, deltaV), false, keepNear(20)},
		{"delta after", window.DeltaEvictor(20, deltaV).After(), true, keepNear(20)},
	}
}

// simFire is one call of the window function: the window, how many times
// the function ran for it (N) and for its key (G), and what it saw.
type simFire struct {
	Key        string
	Start, End int64
	N, G       int64
	Vals       string // the elements' V, in order
	Count, Sum int64
}

func cmpFire(a, b simFire) int {
	return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End), cmp.Compare(a.N, b.N),
		cmp.Compare(a.G, b.G), cmp.Compare(a.Vals, b.Vals))
}

// simClear is a window cleaned up, with the number of function calls it had.
type simClear struct {
	Key        string
	Start, End int64
	Calls      int64
}

func cmpClear(a, b simClear) int {
	return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End), cmp.Compare(a.Calls, b.Calls))
}

func fireOf(key string, w window.TimeWindow, n, g int64, elems []tev) simFire {
	f := simFire{Key: key, Start: w.Start, End: w.End, N: n, G: g}
	vals := make([]string, len(elems))
	for i, e := range elems {
		vals[i] = fmt.Sprint(e.V)
		f.Count++
		f.Sum += e.V
	}
	f.Vals = strings.Join(vals, ",")
	return f
}

// simulateWindows runs the naive model over evs in order. keyOf maps a
// record to its window key.
func simulateWindows(evs []tev, keyOf func(tev) string, windowsOf func(int64) []window.TimeWindow, lateness int64, ev *simEvictor) (fires []simFire, clears []simClear, late []tev) {
	type win struct {
		key     string
		w       window.TimeWindow
		elems   []tev
		pending bool // the firing at the window's end is still to come
		calls   int64
	}
	wins := map[string]map[window.TimeWindow]*win{}
	perKey := map[string]int64{}
	fire := func(x *win) {
		if len(x.elems) == 0 {
			return
		}
		seen := x.elems
		if ev != nil && !ev.after {
			seen = ev.keepOf(x.elems)
			x.elems = slices.Clone(seen)
		}
		x.calls++
		perKey[x.key]++
		fires = append(fires, fireOf(x.key, x.w, x.calls, perKey[x.key], seen))
		if ev != nil && ev.after {
			x.elems = slices.Clone(ev.keepOf(x.elems))
		}
	}
	all := func() []*win {
		var out []*win
		for _, m := range wins {
			for _, x := range m {
				out = append(out, x)
			}
		}
		slices.SortFunc(out, func(a, b *win) int { return cmp.Or(cmp.Compare(a.w.End, b.w.End), cmp.Compare(a.key, b.key)) })
		return out
	}
	advance := func(wm int64) {
		for _, x := range all() {
			if x.pending && x.w.End-1 <= wm {
				x.pending = false
				fire(x)
			}
		}
		for _, x := range all() {
			if x.w.End-1+lateness <= wm {
				clears = append(clears, simClear{x.key, x.w.Start, x.w.End, x.calls})
				delete(wins[x.key], x.w)
			}
		}
	}
	maxTS, wm := int64(-1<<62), int64(-1<<62)
	for _, e := range evs {
		if e.TS > maxTS {
			maxTS = e.TS
			if maxTS-simLag > wm {
				wm = maxTS - simLag
				advance(wm)
			}
		}
		key := keyOf(e)
		isLate := true
		// A record's windows are visited latest first, as Flink's (and
		// Strom's) sliding assigner lists them: the order of the firings
		// a late record causes.
		ws := windowsOf(e.TS)
		slices.SortFunc(ws, func(a, b window.TimeWindow) int { return cmp.Compare(b.Start, a.Start) })
		for _, w := range ws {
			if w.End-1+lateness <= wm {
				continue
			}
			isLate = false
			if wins[key] == nil {
				wins[key] = map[window.TimeWindow]*win{}
			}
			x := wins[key][w]
			if x == nil {
				x = &win{key: key, w: w, pending: w.End-1 > wm}
				wins[key][w] = x
			}
			x.elems = append(x.elems, e)
			if w.End-1 <= wm {
				fire(x)
			}
		}
		if isLate {
			late = append(late, e)
		}
	}
	advance(1<<63 - 1)
	slices.SortFunc(fires, cmpFire)
	slices.SortFunc(clears, cmpClear)
	return fires, clears, late
}

var (
	firingsDesc = state.ValueDescriptor[int64]{Name: "firings"}
	keyFireDesc = state.ValueDescriptor[int64]{Name: "key-firings"}
)

// statefulProc is a ProcessWindowFunction that counts its calls per window
// (per-window state) and per key (global state), checks the context and
// reports every firing; Clear reports the window's count to a side output.
type statefulProc[K comparable] struct {
	keyStr   func(K) string
	clearTag strom.OutputTag[simClear]
	fireTag  strom.OutputTag[int64]
	closed   *atomic.Int64
}

func (p *statefulProc[K]) Process(ctx *strom.WindowContext[K, simFire], elems []tev) error {
	w := ctx.Window()
	if ctx.CurrentWatermark() < w.MaxTimestamp() {
		return fmt.Errorf("window %v fired at watermark %d", w, ctx.CurrentWatermark())
	}
	if ctx.CurrentProcessingTime() < time.Now().Add(-time.Hour).UnixMilli() {
		return errors.New("processing time is off")
	}
	n, err := state.GetValue(ctx.WindowState(), firingsDesc)
	if err != nil {
		return err
	}
	g, err := state.GetValue(ctx.GlobalState(), keyFireDesc)
	if err != nil {
		return err
	}
	nv, _ := n.Value()
	gv, _ := g.Value()
	n.Update(nv + 1)
	g.Update(gv + 1)
	ctx.Collect(fireOf(p.keyStr(ctx.Key()), w, nv+1, gv+1, elems))
	p.fireTag.EmitAt(ctx, 1, w.MaxTimestamp())
	return nil
}

func (p *statefulProc[K]) Clear(ctx *strom.WindowContext[K, simFire]) error {
	n, err := state.GetValue(ctx.WindowState(), firingsDesc)
	if err != nil {
		return err
	}
	calls, _ := n.Value()
	w := ctx.Window()
	p.clearTag.EmitAt(ctx, simClear{p.keyStr(ctx.Key()), w.Start, w.End, calls}, w.MaxTimestamp())
	return nil
}

func (p *statefulProc[K]) Close() error {
	p.closed.Add(1)
	return nil
}

// windowRun is what a job of runWindowFunctions collected.
type windowRun struct {
	proc, procWith *strom.Collected[simFire]
	clears         *strom.Collected[simClear]
	late           *strom.Collected[tev]
	fireCount      *strom.Collected[int64]
	reduce         *strom.Collected[tev]
	agg, aggWith   *strom.Collected[winRes]
	redWith        *strom.Collected[winRes]
	factories      atomic.Int64
	closed         atomic.Int64
}

// addWindowFunctions runs every window function on w.
func addWindowFunctions[K comparable](w strom.Windowed[tev, K], keyStr func(K) string) *windowRun {
	r := &windowRun{}
	lateTag := strom.NewOutputTag[tev]("late")
	clearTag := strom.NewOutputTag[simClear]("clears")
	fireTag := strom.NewOutputTag[int64]("fires")
	w = w.SideOutputLateData(lateTag)
	procWith := strom.WindowProcessWith(w, func() strom.ProcessWindowFunction[K, tev, simFire] {
		r.factories.Add(1)
		return &statefulProc[K]{keyStr: keyStr, clearTag: clearTag, fireTag: fireTag, closed: &r.closed}
	})
	r.procWith = strom.Collect(procWith)
	r.clears = strom.Collect(strom.SideOutput(procWith, clearTag))
	r.late = strom.Collect(strom.SideOutput(procWith, lateTag))
	// The fire marks go through an event-time window, which fires only if
	// watermarks reach the side output.
	marks := strom.SideOutput(procWith, fireTag)
	r.fireCount = strom.Collect(strom.WindowReduce(strom.WindowAll(marks, window.Tumbling(time.Hour).WithOffset(-30*time.Minute)), func(a, b int64) int64 { return a + b }))
	r.proc = strom.Collect(strom.WindowProcess(w, func(ctx *strom.WindowContext[K, simFire], elems []tev) error {
		// No per-window state here: N and G are left 0.
		ctx.Collect(fireOf(keyStr(ctx.Key()), ctx.Window(), 0, 0, elems))
		return nil
	}))
	r.reduce = strom.Collect(strom.WindowReduce(w, func(a, b tev) tev { return tev{Key: a.Key, TS: max(a.TS, b.TS), V: a.V + b.V} }))
	r.agg = strom.Collect(strom.WindowAggregate(w, countSum))
	r.aggWith = strom.Collect(strom.WindowAggregateWith(w, countSum, func(ctx *strom.WindowContext[K, winRes], res winRes) error {
		win := ctx.Window()
		res.Key, res.Start, res.End = keyStr(ctx.Key()), win.Start, win.End
		ctx.Collect(res)
		return nil
	}))
	r.redWith = strom.Collect(strom.WindowReduceWith(w, func(a, b tev) tev { return tev{V: a.V + b.V} },
		func(ctx *strom.WindowContext[K, winRes], res tev) error {
			win := ctx.Window()
			ctx.Collect(winRes{Key: keyStr(ctx.Key()), Start: win.Start, End: win.End, Sum: res.V})
			return nil
		}))
	return r
}

// check compares what the job collected with the simulation.
// subtasks is the window operators' parallelism; all says WindowAll (no
// key in the results of WindowAggregate and WindowReduce).
func (r *windowRun) check(t *testing.T, fires []simFire, clears []simClear, late []tev, p, subtasks int, all bool, what string) {
	t.Helper()
	got := slices.SortedFunc(slices.Values(r.procWith.Values()), cmpFire)
	require.Equal(t, fires, got, "%s p=%d: WindowProcessWith firings", what, p)
	for i, ts := range r.procWith.Timestamps() {
		require.Equal(t, r.procWith.Values()[i].End-1, ts, "%s: Collect emits at the window's max timestamp", what)
	}
	require.Equal(t, clears, slices.SortedFunc(slices.Values(r.clears.Values()), cmpClear), "%s p=%d: Clear", what, p)
	require.ElementsMatch(t, late, r.late.Values(), "%s p=%d: late data", what, p)
	var marks int64
	for _, n := range r.fireCount.Values() {
		marks += n
	}
	require.EqualValues(t, len(fires), marks, "%s p=%d: side output marks through an event-time window", what, p)
	require.EqualValues(t, subtasks, r.factories.Load(), "%s: one function per subtask", what)
	require.EqualValues(t, subtasks, r.closed.Load(), "%s: Close per subtask", what)

	var plain []simFire
	var reduce, agg, aggWith, redWith []winRes
	for _, f := range fires {
		f.N, f.G = 0, 0
		plain = append(plain, f)
		agg = append(agg, winRes{Key: f.Key, Start: f.Start, End: f.End, Count: f.Count, Sum: f.Sum})
		reduce = append(reduce, winRes{Key: f.Key, Start: f.Start, End: f.End, Sum: f.Sum})
		aggWith = append(aggWith, winRes{Key: f.Key, Start: f.Start, End: f.End, Count: f.Count, Sum: f.Sum})
		redWith = append(redWith, winRes{Key: f.Key, Start: f.Start, End: f.End, Sum: f.Sum})
	}
	slices.SortFunc(plain, cmpFire)
	require.Equal(t, plain, slices.SortedFunc(slices.Values(r.proc.Values()), cmpFire), "%s p=%d: WindowProcess", what, p)
	require.Equal(t, sortedRes(aggWith), sortedRes(r.aggWith.Values()), "%s p=%d: WindowAggregateWith", what, p)
	require.Equal(t, sortedRes(redWith), sortedRes(r.redWith.Values()), "%s p=%d: WindowReduceWith", what, p)
	// WindowAggregate and WindowReduce say the window by the timestamp
	// (fixed-size windows: End = ts + 1) and the key by the record.
	var gotAgg, gotRed []winRes
	for i, v := range r.agg.Values() {
		ts := r.agg.Timestamps()[i]
		if all {
			v.Key = ""
		}
		gotAgg = append(gotAgg, winRes{Key: v.Key, End: ts + 1, Count: v.Count, Sum: v.Sum})
	}
	for i, v := range r.reduce.Values() {
		ts := r.reduce.Timestamps()[i]
		key := v.Key
		if all {
			key = ""
		}
		gotRed = append(gotRed, winRes{Key: key, End: ts + 1, Sum: v.V})
	}
	for i := range agg {
		agg[i].Start = 0
		reduce[i].Start = 0
	}
	require.Equal(t, sortedRes(agg), sortedRes(gotAgg), "%s p=%d: WindowAggregate", what, p)
	require.Equal(t, sortedRes(reduce), sortedRes(gotRed), "%s p=%d: WindowReduce", what, p)
}

type winCase struct {
	name      string
	assigner  window.Assigner
	windowsOf func(int64) []window.TimeWindow
}

var fixedWindowCases = []winCase{
	{"tumbling", window.Tumbling(100 * time.Millisecond), alignedWindows(100, 100, 0)},
	{"sliding", window.Sliding(100*time.Millisecond, 30*time.Millisecond), alignedWindows(100, 30, 0)},
}

// TestWindowFunctionsWithContextStateAndEvictors runs every window function,
// with and without each evictor, with and without allowed lateness, at
// parallelism 1 and 2, over out-of-order input with late records, and
// compares every firing, Clear and late record with the simulation.
func TestWindowFunctionsWithContextStateAndEvictors(t *testing.T) {
	evs := lateTevs(7, 1500, 4)
	for _, wc := range fixedWindowCases {
		for _, lateness := range []int64{0, 150} {
			for _, ev := range testEvictors() {
				evName := "no evictor"
				if ev != nil {
					evName = ev.name + " evictor"
				}
				what := fmt.Sprintf("%s, lateness %d, %s", wc.name, lateness, evName)
				fires, clears, late := simulateWindows(evs, func(e tev) string { return e.Key }, wc.windowsOf, lateness, ev)
				require.NotEmpty(t, late, what)
				if lateness > 0 {
					refired := 0
					for _, f := range fires {
						if f.N > 1 {
							refired++
						}
					}
					require.Positive(t, refired, "%s: the data must re-fire windows", what)
				}
				for _, p := range []int{1, 2} {
					env := strom.NewEnvironment(strom.Config{Parallelism: p, BatchSize: 16, Logger: slog.New(slog.DiscardHandler)})
					w := strom.Window(keyedEvs(punctualEvs(env, evs, simLag)), wc.assigner).AllowedLateness(time.Duration(lateness) * time.Millisecond)
					if ev != nil {
						w = w.Evictor(ev.ev)
					}
					r := addWindowFunctions(w, func(k string) string { return k })
					runWin(t, env)
					r.check(t, fires, clears, late, p, p, false, what)
				}
			}
		}
	}
}

// TestWindowAll runs every window function on a non-keyed stream, checks
// the operator's parallelism and compares with the simulation over one key.
func TestWindowAll(t *testing.T) {
	evs := lateTevs(8, 1200, 4)
	for _, wc := range fixedWindowCases {
		for _, ev := range []*simEvictor{nil, testEvictors()[1], testEvictors()[4]} {
			what := wc.name
			if ev != nil {
				what += ", " + ev.name + " evictor"
			}
			fires, clears, late := simulateWindows(evs, func(tev) string { return "" }, wc.windowsOf, 150, ev)
			for _, p := range []int{1, 2} {
				env := strom.NewEnvironment(strom.Config{Parallelism: p, BatchSize: 16, Logger: slog.New(slog.DiscardHandler)})
				w := strom.WindowAll(punctualEvs(env, evs, simLag), wc.assigner).AllowedLateness(150 * time.Millisecond)
				if ev != nil {
					w = w.Evictor(ev.ev)
				}
				r := addWindowFunctions(w, func(struct{}) string { return "" })
				res := runWin(t, env)
				r.check(t, fires, clears, late, p, 1, true, what)
				op, ok := res.Operator("WindowAllProcess")
				require.True(t, ok)
				require.Equal(t, 1, op.Parallelism)
				op, ok = res.Operator("WindowAllAggregate")
				require.True(t, ok)
				require.Equal(t, 1, op.Parallelism)
			}
		}
	}
}

// TestWindowAllParallelSource: records of every subtask of a parallel
// source meet in one window; compared with the oracle over one key.
func TestWindowAllParallelSource(t *testing.T) {
	evs := genTevs(9, 4000, 5, 0, 1, 30, false)
	var one []tev
	for _, e := range evs {
		e.Key = ""
		one = append(one, e)
	}
	for _, wc := range fixedWindowCases {
		want := windowOracle(one, wc.windowsOf)
		for _, p := range []int{1, 2} {
			env := strom.NewEnvironment(strom.Config{Parallelism: p, AutoWatermarkInterval: time.Millisecond, BatchSize: 16})
			all := strom.WindowAll(timedEvs(env, evs, 30*time.Millisecond), wc.assigner)
			got := strom.Collect(strom.WindowAggregateWith(all, countSum, func(ctx *strom.WindowContext[struct{}, winRes], r winRes) error {
				w := ctx.Window()
				ctx.Collect(winRes{Start: w.Start, End: w.End, Count: r.Count, Sum: r.Sum})
				return nil
			}))
			runWin(t, env)
			require.Equal(t, want, sortedRes(got.Values()), "%s p=%d", wc.name, p)
		}
	}
}

func TestWindowAllParallelismIsOne(t *testing.T) {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})
	all := strom.WindowAll(timedEvs(env, []tev{{"a", 1, 1}}, 0), window.Tumbling(time.Second))
	strom.Collect(strom.WindowReduce(all, func(a, b tev) tev { return a }).Parallelism(1)) // 1 is fine
	strom.Collect(strom.WindowReduce(all.Name("all-windows"), func(a, b tev) tev { return a }).Parallelism(2))
	err := runWinErr(t, env)
	require.ErrorContains(t, err, `"all-windows"`)
	require.ErrorContains(t, err, "parallelism 1")
}

// TestWindowStateOnSessionsFails: merging windows have no per-window state
// (as in Flink); global state works.
func TestWindowStateOnSessionsFails(t *testing.T) {
	in := []tev{{"a", 1, 1}, {"a", 5, 1}, {"b", 3, 1}}
	env := strom.NewEnvironment()
	w := strom.Window(keyedEvs(timedEvs(env, in, 0)), window.Session(10*time.Millisecond))
	global := strom.Collect(strom.WindowProcess(w, func(ctx *strom.WindowContext[string, int64], es []tev) error {
		g, err := state.GetValue(ctx.GlobalState(), keyFireDesc)
		if err != nil {
			return err
		}
		n, _ := g.Value()
		g.Update(n + int64(len(es)))
		ctx.Collect(n + int64(len(es)))
		return nil
	}))
	runWin(t, env)
	require.ElementsMatch(t, []int64{2, 1}, global.Values())

	env = strom.NewEnvironment()
	w = strom.Window(keyedEvs(timedEvs(env, in, 0)), window.Session(10*time.Millisecond)).Name("sessions")
	strom.Collect(strom.WindowProcess(w, func(ctx *strom.WindowContext[string, int64], es []tev) error {
		_, err := state.GetValue(ctx.WindowState(), firingsDesc)
		return err
	}))
	err := runWinErr(t, env)
	require.ErrorContains(t, err, "per-window state")
	require.ErrorContains(t, err, `"sessions"`)
}

// TestWindowEvictorOnSessions: an evictor keeps the elements of merging
// windows too (their lists merge), so even an Aggregator without Merge
// works; the evictor sees the merged window's elements.
func TestWindowEvictorOnSessions(t *testing.T) {
	evs := genTevs(4, 2000, 20, 0, 3, 60, true)
	want := sessionOracle(evs, 51)
	noMerge := countSum
	noMerge.Merge = nil
	for _, p := range []int{1, 2} {
		env := strom.NewEnvironment(strom.Config{Parallelism: p, AutoWatermarkInterval: time.Millisecond, BatchSize: 16})
		w := strom.Window(keyedEvs(timedEvs(env, evs, 60*time.Millisecond)), window.Session(51*time.Millisecond))
		all := strom.Collect(strom.WindowAggregateWith(w.Evictor(window.CountEvictor(1<<30)), noMerge, withWindow))
		last2 := strom.Collect(strom.WindowProcess(w.Evictor(window.CountEvictor(2)), func(ctx *strom.WindowContext[string, int64], es []tev) error {
			ctx.Collect(int64(len(es)))
			return nil
		}))
		runWin(t, env)
		require.Equal(t, want, sortedRes(all.Values()), "p=%d", p)
		var wantLens []int64
		for _, r := range want {
			wantLens = append(wantLens, min(r.Count, 2))
		}
		require.ElementsMatch(t, wantLens, last2.Values(), "p=%d", p)
	}
}

func TestWindowEvictorErrors(t *testing.T) {
	for name, c := range map[string]struct {
		ev   window.Evictor
		want string
	}{
		"nil":            {nil, "nil evictor"},
		"negative count": {window.CountEvictor(-1), "count"},
		"zero time":      {window.TimeEvictor(0), "TimeEvictor"},
		"nil delta":      {window.DeltaEvictor[tev](1, nil), "delta function"},
	} {
		t.Run(name, func(t *testing.T) {
			env := strom.NewEnvironment()
			strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, nil, 0)), window.Tumbling(time.Second)).Evictor(c.ev), countSum))
			require.ErrorContains(t, runWinErr(t, env), c.want)
		})
	}
	t.Run("delta evictor of another type", func(t *testing.T) {
		env := strom.NewEnvironment()
		ev := window.DeltaEvictor(1, func(a, b int) float64 { return float64(a - b) })
		strom.Collect(strom.WindowAggregate(strom.Window(keyedEvs(timedEvs(env, []tev{{"a", 1, 1}}, 0)), window.Tumbling(time.Second)).Evictor(ev).Name("typed"), countSum))
		err := runWinErr(t, env)
		require.ErrorContains(t, err, "DeltaEvictor of int records")
		require.ErrorContains(t, err, `"typed"`)
	})
}

func TestWindowClearError(t *testing.T) {
	env := strom.NewEnvironment()
	strom.Collect(strom.WindowProcessWith(strom.Window(keyedEvs(timedEvs(env, []tev{{"a", 1, 1}}, 0)), window.Tumbling(time.Second)).Name("clearing"),
		func() strom.ProcessWindowFunction[string, tev, int] { return failingClear{} }))
	err := runWinErr(t, env)
	require.ErrorContains(t, err, "clear failed")
	require.ErrorContains(t, err, `"clearing"`)
}

type failingClear struct{}

func (failingClear) Process(*strom.WindowContext[string, int], []tev) error { return nil }
func (failingClear) Clear(*strom.WindowContext[string, int]) error          { return errors.New("clear failed") }

// ExampleWindowAll counts all clicks per minute, over every page, and
// keeps a running total in the window function's global state.
func ExampleWindowAll() {
	type click struct {
		Page string
		TS   int64 // epoch ms
	}
	env := strom.NewEnvironment()
	clicks := strom.AssignTimestamps(strom.FromElements(env,
		click{"home", 1_000}, click{"cart", 5_000}, click{"home", 59_000}, click{"home", 61_000}),
		strom.BoundedOutOfOrderness[click](time.Minute).WithTimestamps(func(c click) int64 { return c.TS }))
	totalDesc := state.ValueDescriptor[int]{Name: "total"}
	perMinute := strom.WindowProcess(strom.WindowAll(clicks, window.Tumbling(time.Minute)),
		func(ctx *strom.WindowContext[struct{}, string], cs []click) error {
			total, err := state.GetValue(ctx.GlobalState(), totalDesc)
			if err != nil {
				return err
			}
			n, _ := total.Value()
			n += len(cs)
			total.Update(n)
			ctx.Collect(fmt.Sprintf("%v: %d clicks, %d so far", ctx.Window(), len(cs), n))
			return nil
		})
	out := strom.Collect(perMinute)
	if _, err := env.Execute(context.Background(), "clicks per minute"); err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range out.Values() {
		fmt.Println(l)
	}
	// Output:
	// [0, 60000): 3 clicks, 3 so far
	// [60000, 120000): 1 clicks, 4 so far
}

// ExampleWindowed_Evictor sums the last two readings of each sensor and
// window: with an evictor, WindowReduce folds what the evictor left.
func ExampleWindowed_Evictor() {
	type reading struct {
		Sensor string
		TS     int64
		Value  int
	}
	env := strom.NewEnvironment()
	readings := strom.AssignTimestamps(strom.FromElements(env,
		reading{"a", 1_000, 1}, reading{"a", 2_000, 2}, reading{"b", 2_500, 7}, reading{"a", 3_000, 3}, reading{"a", 11_000, 10}),
		strom.BoundedOutOfOrderness[reading](time.Second).WithTimestamps(func(r reading) int64 { return r.TS }))
	w := strom.Window(strom.KeyBy(readings, func(r reading) string { return r.Sensor }), window.Tumbling(10*time.Second)).
		Evictor(window.CountEvictor(2))
	sums := strom.WindowReduce(w, func(a, b reading) reading { a.Value += b.Value; return a })
	out := strom.Collect(sums)
	if _, err := env.Execute(context.Background(), "last two readings"); err != nil {
		fmt.Println(err)
		return
	}
	lines := []string{}
	for _, r := range out.Values() {
		lines = append(lines, fmt.Sprintf("%s: %d", r.Sensor, r.Value))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// a: 10
	// a: 5
	// b: 7
}
