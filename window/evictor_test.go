package window_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/window"
)

// elems is a test window.Values[int] with explicit timestamps.
type elems struct {
	vals    []int
	ts      []int64
	evicted []bool
}

func newElems(vals []int, ts []int64) *elems {
	return &elems{vals: vals, ts: ts, evicted: make([]bool, len(vals))}
}

func (e *elems) Len() int              { return len(e.vals) }
func (e *elems) Timestamp(i int) int64 { return e.ts[i] }
func (e *elems) Value(i int) int       { return e.vals[i] }
func (e *elems) Evict(i int)           { e.evicted[i] = true }
func (e *elems) Evicted(i int) bool    { return e.evicted[i] }

// kept lists the values not evicted.
func (e *elems) kept() []int {
	out := []int{}
	for i, v := range e.vals {
		if !e.evicted[i] {
			out = append(out, v)
		}
	}
	return out
}

type evCtx struct{}

func (evCtx) CurrentWatermark() int64      { return 0 }
func (evCtx) CurrentProcessingTime() int64 { return 0 }

// run applies ev before and after, on fresh elements each time, and returns
// what each phase keeps.
func run(ev window.Evictor, vals []int, ts []int64) (before, after []int) {
	w := window.TimeWindow{Start: 0, End: 100}
	e := newElems(vals, ts)
	ev.EvictBefore(e, w, evCtx{})
	before = e.kept()
	e = newElems(vals, ts)
	ev.EvictAfter(e, w, evCtx{})
	return before, e.kept()
}

func TestCountEvictor(t *testing.T) {
	vals, ts := []int{1, 2, 3, 4, 5}, []int64{5, 1, 4, 2, 3}
	b, a := run(window.CountEvictor(2), vals, ts)
	require.Equal(t, []int{4, 5}, b, "keeps the last arrivals, whatever their timestamps")
	require.Equal(t, vals, a)
	b, a = run(window.CountEvictor(2).After(), vals, ts)
	require.Equal(t, vals, b)
	require.Equal(t, []int{4, 5}, a)
	b, _ = run(window.CountEvictor(9), vals, ts)
	require.Equal(t, vals, b)
	b, _ = run(window.CountEvictor(0), vals, ts)
	require.Empty(t, b)
	require.Error(t, window.CountEvictor(-1).Validate())
	require.NoError(t, window.CountEvictor(0).Validate())
}

func TestTimeEvictor(t *testing.T) {
	vals, ts := []int{1, 2, 3, 4, 5}, []int64{0, 5, 12, 20, 15}
	// Newest 20, keep 10: ts > 10 stays.
	b, a := run(window.TimeEvictor(10*time.Millisecond), vals, ts)
	require.Equal(t, []int{3, 4, 5}, b)
	require.Equal(t, vals, a)
	_, a = run(window.TimeEvictor(10*time.Millisecond).After(), vals, ts)
	require.Equal(t, []int{3, 4, 5}, a)
	b, _ = run(window.TimeEvictor(time.Hour), vals, ts)
	require.Equal(t, vals, b)
	// Without timestamps (processing time), nothing is evicted.
	nt := []int64{window.NoTimestamp, window.NoTimestamp, window.NoTimestamp, window.NoTimestamp, window.NoTimestamp}
	b, _ = run(window.TimeEvictor(time.Millisecond), vals, nt)
	require.Equal(t, vals, b)
	require.Error(t, window.TimeEvictor(0).Validate())
	require.NoError(t, window.TimeEvictor(time.Millisecond).Validate())
}

func TestDeltaEvictor(t *testing.T) {
	vals, ts := []int{10, 30, 18, 25, 20}, []int64{1, 2, 3, 4, 5}
	dist := func(a, b int) float64 { return float64(max(a-b, b-a)) }
	// Last is 20: evict |v − 20| ≥ 5.
	b, a := run(window.DeltaEvictor(5, dist), vals, ts)
	require.Equal(t, []int{18, 20}, b)
	require.Equal(t, vals, a)
	_, a = run(window.DeltaEvictor(5, dist).After(), vals, ts)
	require.Equal(t, []int{18, 20}, a)
	// delta(e, last): the argument order is Flink's.
	var args [][2]int
	run(window.DeltaEvictor(100, func(x, y int) float64 { args = append(args, [2]int{x, y}); return 0 }), []int{1, 2}, []int64{1, 2})
	require.Equal(t, [][2]int{{1, 2}, {2, 2}}, args)
	require.Error(t, window.DeltaEvictor[int](1, nil).Validate())
	require.NoError(t, window.DeltaEvictor(1, dist).Validate())
	// On elements of another type it panics, naming both.
	str := window.DeltaEvictor(1, func(a, b string) float64 { return 0 })
	require.PanicsWithError(t, "window: DeltaEvictor of string records used on a window of other records (*window_test.elems)", func() {
		str.EvictBefore(newElems([]int{1}, []int64{1}), window.TimeWindow{}, evCtx{})
	})
}
