package heartbeat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shell ticks its monitor on its own timer: a silent target is asked
// again and declared dead by the timeout; a connection loss reported on
// another goroutine waits in the queue until the loop takes it.
func TestShellTimesOutOnItsTimerAndQueuesLosses(t *testing.T) {
	s, err := NewShell(Config{Interval: 10 * time.Millisecond, Timeout: 40 * time.Millisecond})
	require.NoError(t, err)
	defer s.Stop()
	start := time.Now()
	acts := s.Handle(EvAdd{Target: "tm-1"})
	require.Equal(t, []Action{ActSendRequest{Target: "tm-1", Incarnation: 1}}, acts)
	requests := 1
	var dead *ActTimedOut
	for dead == nil {
		select {
		case <-s.C():
		case <-time.After(5 * time.Second):
			t.Fatal("the shell's timer did not fire")
		}
		for _, a := range s.Handle(nil) {
			switch a := a.(type) {
			case ActSendRequest:
				requests++
			case ActTimedOut:
				dead = &a
			}
		}
	}
	require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "not before the timeout")
	require.Greater(t, requests, 1, "asked again while waiting")
	require.Nil(t, s.C(), "no timer once nothing is alive")

	go s.ConnectionLost("host:1/taskmanager-tm-2", "reset")
	select {
	case <-s.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("loss not signalled")
	}
	require.Equal(t, []Loss{{Address: "host:1/taskmanager-tm-2", Reason: "reset"}}, s.TakeLosses())
	require.Empty(t, s.TakeLosses())
}
