package runtime

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRatesSplitTheIntervalIntoBusyIdleAndBackPressured(t *testing.T) {
	prev := TimeSample{Elapsed: time.Second, Idle: 100 * time.Millisecond, BackPressured: 50 * time.Millisecond}
	cur := TimeSample{Elapsed: 3 * time.Second, Idle: 600 * time.Millisecond, BackPressured: 1050 * time.Millisecond}
	busy, idle, bp := Rates(prev, cur)
	require.InDelta(t, 250, idle, 0.001)
	require.InDelta(t, 500, bp, 0.001)
	require.InDelta(t, 250, busy, 0.001)

	// Waits counted twice by a racing sample never exceed the interval.
	busy, idle, bp = Rates(TimeSample{}, TimeSample{Elapsed: time.Second, Idle: 900 * time.Millisecond, BackPressured: 300 * time.Millisecond})
	require.InDelta(t, 1000, idle+bp, 0.001)
	require.Zero(t, busy)

	busy, idle, bp = Rates(cur, cur)
	require.Zero(t, busy+idle+bp)
}

// A wait in progress counts up to the sample, so a task asleep for long
// shows as idle (or back-pressured) already, not only once it wakes.
func TestSampleCountsTheWaitInProgress(t *testing.T) {
	var tt TaskTimes
	require.Equal(t, TimeSample{At: time.Unix(5, 0)}, tt.Sample(time.Unix(5, 0)), "not started: zero")
	start := time.Now()
	tt.begin(start)
	tt.beginWait(waitBackPressure)
	s := tt.Sample(time.Now().Add(time.Second))
	require.GreaterOrEqual(t, s.BackPressured, 900*time.Millisecond)
	require.Zero(t, s.Idle)
	tt.endWait()
	tt.beginWait(waitIdle)
	time.Sleep(2 * time.Millisecond)
	tt.endWait()
	s2 := tt.Sample(time.Now())
	require.Greater(t, s2.Idle, time.Millisecond)
	require.Less(t, s2.BackPressured, 900*time.Millisecond, "the ended back-pressure wait counts only what it took")
}
