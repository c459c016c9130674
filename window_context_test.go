package strom

// White-box tests of per-window state: it is dropped with its window, and
// it survives a snapshot and a restore into another parallelism.

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

var (
	wcFirings = state.ValueDescriptor[int64]{Name: "firings"}
	wcSeen    = state.ListDescriptor[int]{Name: "seen-ids"}
	wcPerKey  = state.ValueDescriptor[int64]{Name: "key-firings"}
)

// windowStateProbe keeps a firing counter and the ids seen per window, and
// a firing counter per key.
func windowStateProbe(ctx *WindowContext[int, string], elems []jtRec) error {
	n, err := state.GetValue(ctx.WindowState(), wcFirings)
	if err != nil {
		return err
	}
	seen, err := state.GetList(ctx.WindowState(), wcSeen)
	if err != nil {
		return err
	}
	g, err := state.GetValue(ctx.GlobalState(), wcPerKey)
	if err != nil {
		return err
	}
	nv, _ := n.Value()
	gv, _ := g.Value()
	n.Update(nv + 1)
	g.Update(gv + 1)
	seen.Add(len(elems))
	ctx.Collect(fmt.Sprintf("key %d window %v: firing %d of the window, %d of the key, sizes %v", ctx.Key(), ctx.Window(), nv+1, gv+1, seen.Get()))
	return nil
}

func TestWindowStateDroppedWithWindow(t *testing.T) {
	for _, lateness := range []time.Duration{0, 50 * time.Millisecond} {
		env := NewEnvironment()
		w := Window(KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key }), window.Sliding(100*time.Millisecond, 25*time.Millisecond)).
			AllowedLateness(lateness).Trigger(window.CountTrigger(3))
		WindowProcess(w, windowStateProbe)
		out := &jtOut[string]{}
		op := buildLast[string](t, env, out).(*operator.WindowOp[jtRec, int, []jtRec, string, *WindowContext[int, string]])
		recs := jtGen(3, 2000, 20, 1, 20, 0)
		for i, r := range recs {
			op.ProcessElement(r, r.TS)
			if i%100 == 99 {
				op.ProcessWatermark(r.TS - 200)
			}
		}
		nested, ok := op.Backend().Lookup(windowStateName)
		require.True(t, ok)
		ws := nested.(*nestedState[WindowKey[int]]).b
		entries := func(name string) int {
			s, ok := ws.Lookup(name)
			require.True(t, ok, name)
			return s.(interface{ Entries() int }).Entries()
		}
		require.Positive(t, entries("firings"))
		require.Positive(t, entries("seen-ids"))
		op.ProcessWatermark(math.MaxInt64)
		require.Zero(t, entries("firings"), "per-window value state after cleanup, lateness %v", lateness)
		require.Zero(t, entries("seen-ids"), "per-window list state after cleanup, lateness %v", lateness)
		g, ok := op.Backend().Lookup("key-firings")
		require.True(t, ok)
		require.Equal(t, 20, g.(*statebackend.Value[int, int64]).Entries(), "global state stays")
		require.NotEmpty(t, out.vals)
	}
}

func TestSnapshotWindowStateRescale(t *testing.T) {
	recs := jtGen(5, 3000, 30, 2, 40, 0)
	for _, p := range [][2]int{{1, 3}, {2, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("%d→%d", p[0], p[1]), func(t *testing.T) {
			env := NewEnvironment()
			w := Window(KeyBy(FromSlice(env, []jtRec(nil)), func(r jtRec) int { return r.Key }), window.Tumbling(100*time.Millisecond)).
				AllowedLateness(100 * time.Millisecond).Trigger(window.CountTrigger(2))
			WindowProcess(w, windowStateProbe)
			runRescaled(t, env, recs, p[0], p[1])
		})
	}
}
