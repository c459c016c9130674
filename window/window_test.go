package window_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/window"
)

type fixedClock int64

func (c fixedClock) CurrentProcessingTime() int64 { return int64(c) }

func TestTimeWindow(t *testing.T) {
	w := window.TimeWindow{Start: 10, End: 20}
	require.Equal(t, int64(19), w.MaxTimestamp())
	require.True(t, w.Contains(10))
	require.True(t, w.Contains(19))
	require.False(t, w.Contains(20))
	require.False(t, w.Contains(9))
	require.True(t, w.Intersects(window.TimeWindow{Start: 20, End: 30}), "touching windows intersect")
	require.True(t, w.Intersects(window.TimeWindow{Start: 0, End: 10}))
	require.True(t, w.Intersects(window.TimeWindow{Start: 12, End: 14}))
	require.False(t, w.Intersects(window.TimeWindow{Start: 21, End: 30}))
	require.Equal(t, window.TimeWindow{Start: 5, End: 20}, w.Cover(window.TimeWindow{Start: 5, End: 8}))
	require.Equal(t, "[10, 20)", w.String())
}

func TestStartWithOffset(t *testing.T) {
	for _, c := range []struct{ ts, off, size, want int64 }{
		{0, 0, 10, 0},
		{9, 0, 10, 0},
		{10, 0, 10, 10},
		{-1, 0, 10, -10},
		{-10, 0, 10, -10},
		{-11, 0, 10, -20},
		{3, 5, 10, -5},
		{5, 5, 10, 5},
		{4, -3, 10, -3},
		{7, -3, 10, 7},
	} {
		require.Equal(t, c.want, window.StartWithOffset(c.ts, c.off, c.size), "%+v", c)
	}
}

func TestTumblingAssigner(t *testing.T) {
	a := window.Tumbling(10 * time.Millisecond)
	require.NoError(t, a.Validate())
	require.True(t, a.IsEventTime())
	require.Equal(t, window.EventTimeTrigger(), a.DefaultTrigger())
	var dst []window.TimeWindow
	dst = a.AssignWindows(25, nil, dst[:0])
	require.Equal(t, []window.TimeWindow{{Start: 20, End: 30}}, dst)
	dst = a.AssignWindows(-1, nil, dst[:0])
	require.Equal(t, []window.TimeWindow{{Start: -10, End: 0}}, dst)

	off := a.WithOffset(3 * time.Millisecond)
	require.Equal(t, []window.TimeWindow{{Start: 23, End: 33}}, off.AssignWindows(25, nil, nil))
	require.Equal(t, []window.TimeWindow{{Start: 13, End: 23}}, off.AssignWindows(22, nil, nil))

	p := window.TumblingProcessingTime(10 * time.Millisecond)
	require.False(t, p.IsEventTime())
	require.Equal(t, window.ProcessingTimeTrigger(), p.DefaultTrigger())
	require.Equal(t, []window.TimeWindow{{Start: 1000, End: 1010}}, p.AssignWindows(5, fixedClock(1003), nil),
		"processing-time windows ignore the record's timestamp")

	require.Error(t, window.Tumbling(0).Validate())
	require.Error(t, window.Tumbling(time.Microsecond).Validate())
	require.Error(t, a.WithOffset(10*time.Millisecond).Validate())
	require.NoError(t, a.WithOffset(-9*time.Millisecond).Validate())
}

func TestSlidingAssigner(t *testing.T) {
	a := window.Sliding(10*time.Millisecond, 5*time.Millisecond)
	require.NoError(t, a.Validate())
	require.Equal(t, []window.TimeWindow{{Start: 10, End: 20}, {Start: 5, End: 15}}, a.AssignWindows(12, nil, nil))
	require.Equal(t, []window.TimeWindow{{Start: 10, End: 20}, {Start: 5, End: 15}}, a.AssignWindows(10, nil, nil))
	require.Equal(t, []window.TimeWindow{{Start: -5, End: 5}, {Start: -10, End: 0}}, a.AssignWindows(-3, nil, nil))

	// Slide not dividing size: 1 or 2 windows per record; check against a
	// brute-force enumeration of all aligned windows.
	b := window.Sliding(7*time.Millisecond, 3*time.Millisecond).WithOffset(1 * time.Millisecond)
	for ts := int64(-30); ts < 30; ts++ {
		var want []window.TimeWindow
		for s := int64(-62); s < 40; s += 3 { // s ≡ 1 (mod 3)
			if s <= ts && ts < s+7 {
				want = append([]window.TimeWindow{{Start: s, End: s + 7}}, want...)
			}
		}
		require.Equal(t, want, b.AssignWindows(ts, nil, nil), "ts %d", ts)
	}
	// The destination slice is reused: no allocation once it has grown.
	dst := make([]window.TimeWindow, 0, 4)
	allocs := testing.AllocsPerRun(100, func() { dst = a.AssignWindows(1234, nil, dst[:0]) })
	require.Zero(t, allocs)

	require.Error(t, window.Sliding(10*time.Millisecond, 0).Validate())
	require.Error(t, a.WithOffset(5*time.Millisecond).Validate())
	require.False(t, window.SlidingProcessingTime(time.Second, time.Second).IsEventTime())
}

func TestSessionAssignerAndMerge(t *testing.T) {
	s := window.Session(10 * time.Millisecond)
	require.NoError(t, s.Validate())
	require.Error(t, window.Session(0).Validate())
	require.Equal(t, []window.TimeWindow{{Start: 5, End: 15}}, s.AssignWindows(5, nil, nil))
	var _ window.MergingAssigner = s
	require.False(t, window.SessionProcessingTime(time.Second).IsEventTime())

	type group struct {
		merged []window.TimeWindow
		result window.TimeWindow
	}
	merge := func(ws ...window.TimeWindow) []group {
		var out []group
		s.MergeWindows(ws, func(m []window.TimeWindow, r window.TimeWindow) {
			out = append(out, group{append([]window.TimeWindow(nil), m...), r})
		})
		return out
	}
	require.Empty(t, merge(window.TimeWindow{Start: 0, End: 10}))
	require.Empty(t, merge(window.TimeWindow{Start: 0, End: 10}, window.TimeWindow{Start: 11, End: 21}))
	require.Equal(t, []group{{[]window.TimeWindow{{Start: 0, End: 10}, {Start: 10, End: 20}}, window.TimeWindow{Start: 0, End: 20}}},
		merge(window.TimeWindow{Start: 10, End: 20}, window.TimeWindow{Start: 0, End: 10}))
	// Transitive merging and two separate groups.
	got := merge(
		window.TimeWindow{Start: 40, End: 50}, window.TimeWindow{Start: 0, End: 10},
		window.TimeWindow{Start: 18, End: 28}, window.TimeWindow{Start: 9, End: 19},
		window.TimeWindow{Start: 45, End: 55}, window.TimeWindow{Start: 100, End: 110})
	require.Equal(t, []group{
		{[]window.TimeWindow{{Start: 0, End: 10}, {Start: 9, End: 19}, {Start: 18, End: 28}}, window.TimeWindow{Start: 0, End: 28}},
		{[]window.TimeWindow{{Start: 40, End: 50}, {Start: 45, End: 55}}, window.TimeWindow{Start: 40, End: 55}},
	}, got)
}

// fakeCtx is a TriggerContext recording timers and state.
type fakeCtx struct {
	wm, now    int64
	eventT     map[int64]bool
	procT      map[int64]bool
	state      map[string]int64
	mergedFrom []map[string]int64
}

func newFakeCtx() *fakeCtx {
	return &fakeCtx{wm: math.MinInt64, eventT: map[int64]bool{}, procT: map[int64]bool{}, state: map[string]int64{}}
}

func (c *fakeCtx) CurrentWatermark() int64              { return c.wm }
func (c *fakeCtx) CurrentProcessingTime() int64         { return c.now }
func (c *fakeCtx) RegisterEventTimeTimer(ts int64)      { c.eventT[ts] = true }
func (c *fakeCtx) DeleteEventTimeTimer(ts int64)        { delete(c.eventT, ts) }
func (c *fakeCtx) RegisterProcessingTimeTimer(ts int64) { c.procT[ts] = true }
func (c *fakeCtx) DeleteProcessingTimeTimer(ts int64)   { delete(c.procT, ts) }
func (c *fakeCtx) State(n string) (int64, bool) {
	v, ok := c.state[n]
	return v, ok
}
func (c *fakeCtx) SetState(n string, v int64) { c.state[n] = v }
func (c *fakeCtx) ClearState(n string)        { delete(c.state, n) }
func (c *fakeCtx) MergeState(n string, f func(a, b int64) int64) {
	v, has := c.state[n]
	for _, m := range c.mergedFrom {
		if x, ok := m[n]; ok {
			if has {
				v = f(v, x)
			} else {
				v, has = x, true
			}
		}
	}
	if has {
		c.state[n] = v
	}
}

func TestEventTimeTrigger(t *testing.T) {
	tr := window.EventTimeTrigger()
	w := window.TimeWindow{Start: 0, End: 10}
	c := newFakeCtx()
	require.Equal(t, window.Continue, tr.OnElement(3, w, c))
	require.True(t, c.eventT[9])
	require.Equal(t, window.Fire, tr.OnEventTime(9, w, c))
	require.Equal(t, window.Continue, tr.OnEventTime(8, w, c))
	c.wm = 9
	require.Equal(t, window.Fire, tr.OnElement(3, w, c), "a late record within lateness fires at once")
	tr.Clear(w, c)
	require.Empty(t, c.eventT)
	require.True(t, tr.CanMerge())
	c.wm = 20
	tr.OnMerge(window.TimeWindow{Start: 0, End: 30}, c)
	require.Equal(t, map[int64]bool{29: true}, c.eventT)
}

func TestProcessingTimeTrigger(t *testing.T) {
	tr := window.ProcessingTimeTrigger()
	w := window.TimeWindow{Start: 0, End: 10}
	c := newFakeCtx()
	require.Equal(t, window.Continue, tr.OnElement(0, w, c))
	require.True(t, c.procT[9])
	require.Equal(t, window.Fire, tr.OnProcessingTime(9, w, c))
	require.Equal(t, window.Continue, tr.OnEventTime(9, w, c))
	tr.Clear(w, c)
	require.Empty(t, c.procT)
}

func TestCountAndPurgingTrigger(t *testing.T) {
	w := window.TimeWindow{Start: 0, End: 10}
	c := newFakeCtx()
	tr := window.CountTrigger(3)
	var got []window.TriggerResult
	for range 7 {
		got = append(got, tr.OnElement(0, w, c))
	}
	require.Equal(t, []window.TriggerResult{window.Continue, window.Continue, window.Fire,
		window.Continue, window.Continue, window.Fire, window.Continue}, got)
	require.Equal(t, int64(1), c.state["count"])

	// Merging adds the counts up.
	c.mergedFrom = []map[string]int64{{"count": 1}}
	tr.OnMerge(w, c)
	require.Equal(t, int64(2), c.state["count"])
	require.Equal(t, window.Fire, tr.OnElement(0, w, c))
	tr.Clear(w, c)
	require.Empty(t, c.state)

	p := window.Purging(window.CountTrigger(2))
	require.Equal(t, window.Continue, p.OnElement(0, w, c))
	require.Equal(t, window.FireAndPurge, p.OnElement(0, w, c))
	pe := window.Purging(window.EventTimeTrigger())
	require.Equal(t, window.FireAndPurge, pe.OnEventTime(9, w, c))
	require.Equal(t, window.Continue, pe.OnEventTime(5, w, c))

	require.True(t, window.FireAndPurge.IsFire() && window.FireAndPurge.IsPurge())
	require.True(t, window.Purge.IsPurge() && !window.Purge.IsFire())
	require.Equal(t, "FIRE_AND_PURGE", window.FireAndPurge.String())
}

func TestContinuousEventTimeTrigger(t *testing.T) {
	tr := window.ContinuousEventTimeTrigger(10 * time.Millisecond)
	w := window.TimeWindow{Start: 0, End: 35}
	c := newFakeCtx()
	require.Equal(t, window.Continue, tr.OnElement(3, w, c))
	require.Equal(t, map[int64]bool{10: true, 34: true}, c.eventT)
	require.Equal(t, window.Continue, tr.OnElement(12, w, c), "a fire time is pending already")
	require.Equal(t, window.Fire, tr.OnEventTime(10, w, c))
	require.True(t, c.eventT[20])
	require.Equal(t, window.Fire, tr.OnEventTime(20, w, c))
	require.Equal(t, window.Fire, tr.OnEventTime(30, w, c))
	require.Equal(t, int64(34), c.state["continuous-fire-time"], "the last early firing is capped at the window end")
	require.Equal(t, window.Fire, tr.OnEventTime(34, w, c))
	tr.Clear(w, c)
	require.Empty(t, c.state)
}

func ExampleSliding() {
	a := window.Sliding(10*time.Second, 5*time.Second)
	for _, w := range a.AssignWindows(12_000, nil, nil) {
		fmt.Println(w, w.MaxTimestamp())
	}
	// Output:
	// [10000, 20000) 19999
	// [5000, 15000) 14999
}

func ExampleSession() {
	s := window.Session(10 * time.Second)
	ws := []window.TimeWindow{
		s.AssignWindows(0, nil, nil)[0],
		s.AssignWindows(25_000, nil, nil)[0],
		s.AssignWindows(8_000, nil, nil)[0],
	}
	s.MergeWindows(ws, func(merged []window.TimeWindow, result window.TimeWindow) {
		fmt.Println(merged, "->", result)
	})
	// Output:
	// [[0, 10000) [8000, 18000)] -> [0, 18000)
}
