package runtime

import (
	"bytes"
	"fmt"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

type tns struct{ Start, End int64 }

type snapTimers struct {
	b  *statebackend.Keyed[string]
	pt *ProcessingTime
	tm *Timers[string, tns]
}

func newSnapTimers(t *testing.T, clk Clock, maxPar, p, i int) snapTimers {
	t.Helper()
	h, err := keygroup.HasherFor[string](nil)
	require.NoError(t, err)
	b := statebackend.NewKeyed(h, maxPar, keygroup.RangeFor(maxPar, p, i))
	pt := newProcessingTime(clk)
	tm := NewTimers[string, tns](b, pt)
	tm.OnEventTime = func(Timer[string, tns]) {}
	tm.OnProcessingTime = func(Timer[string, tns]) {}
	_, err = b.Register(TimersStateName, tm.State())
	require.NoError(t, err)
	return snapTimers{b, pt, tm}
}

// registerTimers registers event- and processing-time timers for the keys
// of n that lie in the backend's range, deleting some again.
func registerTimers(s snapTimers, n int) {
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if !s.b.Range().Contains(s.b.KeyGroupOf(k)) {
			continue
		}
		s.b.SetCurrentKey(k)
		for j := range int64(i%3 + 1) {
			s.tm.RegisterEventTime(tns{j, j + 10}, 100+int64(i)+j)
		}
		s.tm.RegisterProcessingTime(tns{-1, int64(i)}, 5000+int64(i))
		if i%5 == 0 {
			s.tm.DeleteEventTime(tns{0, 10}, 100+int64(i))
			s.tm.DeleteProcessingTime(tns{-1, int64(i)}, 5000+int64(i))
		}
	}
}

func snap(t *testing.T, b *statebackend.Keyed[string]) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, b.Snapshot(&buf))
	return buf.Bytes()
}

func TestTimersSnapshotRoundTrip(t *testing.T) {
	clk := &manualClock{}
	clk.set(1000)
	src := newSnapTimers(t, clk, 16, 1, 0)
	registerTimers(src, 200)
	require.Positive(t, src.tm.NumEventTimers())
	data := snap(t, src.b)

	dst := newSnapTimers(t, clk, 16, 1, 0)
	require.NoError(t, dst.b.Restore(bytes.NewReader(data)))
	require.Equal(t, src.tm.event.set, dst.tm.event.set)
	require.Equal(t, src.tm.proc.set, dst.tm.proc.set)

	// Restored processing-time timers are scheduled with the task.
	next, ok := dst.pt.next()
	require.True(t, ok)
	require.Equal(t, int64(5001), next, "the earliest live processing-time timer (k0's was deleted)")

	// They fire like the originals: event time in time order, with the key
	// current; the watermark starts over.
	fire := func(s snapTimers) (ev, pr []Timer[string, tns]) {
		s.tm.OnEventTime = func(x Timer[string, tns]) {
			require.Equal(t, x.Key, s.b.CurrentKey())
			ev = append(ev, x)
		}
		s.tm.OnProcessingTime = func(x Timer[string, tns]) { pr = append(pr, x) }
		s.tm.AdvanceWatermark(MaxWatermark)
		for s.pt.fire() > 0 {
		}
		return ev, pr
	}
	require.Equal(t, int64(MinWatermark), dst.tm.CurrentWatermark())
	clk.set(10_000)
	ev1, pr1 := fire(src)
	ev2, pr2 := fire(dst)
	require.Len(t, ev2, len(ev1))
	require.Len(t, pr2, len(pr1))
	for i := 1; i < len(ev2); i++ {
		require.LessOrEqual(t, ev2[i-1].TS, ev2[i].TS)
	}
	require.ElementsMatch(t, ev1, ev2)
	require.ElementsMatch(t, pr1, pr2)

	// Without PrepareSnapshot (one key group at a time) the data is the
	// same timers.
	src = newSnapTimers(t, clk, 16, 1, 0)
	registerTimers(src, 200)
	dst = newSnapTimers(t, clk, 16, 1, 0)
	st := src.tm.State()
	for kg := range 16 {
		d, err := st.SnapshotKeyGroup(kg, nil)
		require.NoError(t, err)
		if len(d) > 0 {
			require.NoError(t, dst.tm.State().RestoreKeyGroup(kg, d))
		}
	}
	require.Equal(t, src.tm.event.set, dst.tm.event.set)
	require.Equal(t, src.tm.proc.set, dst.tm.proc.set)
}

func TestTimersRescale(t *testing.T) {
	const maxPar = 128
	clk := &manualClock{}
	clk.set(1000)
	all := newSnapTimers(t, clk, maxPar, 1, 0)
	registerTimers(all, 500)

	var snaps [][]byte
	for i := range 2 {
		s := newSnapTimers(t, clk, maxPar, 2, i)
		registerTimers(s, 500)
		snaps = append(snaps, snap(t, s.b))
	}
	restore := func(p int, snaps [][]byte) ([]snapTimers, [][]byte) {
		var out []snapTimers
		var next [][]byte
		for i := range p {
			s := newSnapTimers(t, clk, maxPar, p, i)
			for _, d := range snaps {
				require.NoError(t, s.b.Restore(bytes.NewReader(d)))
			}
			for tm := range s.tm.event.set {
				require.True(t, s.b.Range().Contains(s.b.KeyGroupOf(tm.Key)), "timer of key %s in subtask %d", tm.Key, i)
			}
			out = append(out, s)
			next = append(next, snap(t, s.b))
		}
		return out, next
	}
	union := func(subtasks []snapTimers) (ev, pr map[Timer[string, tns]]struct{}) {
		ev, pr = map[Timer[string, tns]]struct{}{}, map[Timer[string, tns]]struct{}{}
		n, m := 0, 0
		for _, s := range subtasks {
			maps.Copy(ev, s.tm.event.set)
			maps.Copy(pr, s.tm.proc.set)
			n += len(s.tm.event.set)
			m += len(s.tm.proc.set)
		}
		require.Len(t, ev, n, "every timer in exactly one subtask")
		require.Len(t, pr, m)
		return ev, pr
	}
	three, snaps3 := restore(3, snaps)
	ev, pr := union(three)
	require.Equal(t, all.tm.event.set, ev)
	require.Equal(t, all.tm.proc.set, pr)
	one, _ := restore(1, snaps3)
	require.Equal(t, all.tm.event.set, one[0].tm.event.set)
	require.Equal(t, all.tm.proc.set, one[0].tm.proc.set)
}

func TestTimersCorruptData(t *testing.T) {
	clk := &manualClock{}
	src := newSnapTimers(t, clk, 4, 1, 0)
	registerTimers(src, 20)
	st := src.tm.State()
	for kg := range 4 {
		d, err := st.SnapshotKeyGroup(kg, nil)
		require.NoError(t, err)
		for n := range len(d) {
			dst := newSnapTimers(t, clk, 4, 1, 0)
			require.ErrorIs(t, dst.tm.State().RestoreKeyGroup(kg, d[:n]), statebackend.ErrCorruptSnapshot, "kg %d truncated to %d", kg, n)
		}
		if len(d) == 0 {
			continue
		}
		dst := newSnapTimers(t, clk, 4, 1, 0)
		err = dst.tm.State().RestoreKeyGroup((kg+1)%4, d)
		require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot)
		require.ErrorContains(t, err, fmt.Sprintf("key group %d, not %d", kg, (kg+1)%4))
		require.Zero(t, dst.tm.NumEventTimers(), "nothing restored from a bad key group")
	}
	require.Equal(t, "timers<string,runtime.tns>", st.StateType())
}
