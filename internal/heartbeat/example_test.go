package heartbeat_test

import (
	"fmt"
	"time"

	"github.com/strom-dev/strom/internal/heartbeat"
)

// A ResourceManager's use of a monitor, with the clock of the shell
// replaced by explicit times: a TaskManager registers, answers once with
// its slot report, freezes (SIGSTOP), is declared dead at its deadline,
// and wakes up — reported as resumed, for the owner to fence. A real shell
// keeps one timer for NextTick and ticks with time.Now before it feeds
// each batch of messages.
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, err := heartbeat.New(heartbeat.Config{}, start) // 1 s interval, 5 s timeout
	if err != nil {
		panic(err)
	}
	do := func(acts []heartbeat.Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case heartbeat.ActSendRequest:
				fmt.Printf("%v: ask %s\n", m.Now().Sub(start), a.Target)
			case heartbeat.ActHeartbeat:
				fmt.Printf("%v: %s reports %v\n", m.Now().Sub(start), a.Target, a.Payload)
			case heartbeat.ActTimedOut:
				fmt.Printf("%v: %s timed out: fail its tasks\n", m.Now().Sub(start), a.Target)
			case heartbeat.ActLost:
				fmt.Printf("%v: %s lost: fail its tasks\n", m.Now().Sub(start), a.Target)
			case heartbeat.ActResumed:
				fmt.Printf("%v: %s resumed as #%d: fence it, its attempts are stale\n", m.Now().Sub(start), a.Target, a.Incarnation)
			}
		}
	}
	do(m.Handle(heartbeat.EvAdd{Target: "tm-1"}))
	do(m.Handle(heartbeat.EvHeartbeat{Target: "tm-1", Payload: "2 free slots"}))
	// Frozen: the shell's timer fires at each NextTick, nothing answers.
	for {
		next, ok := m.NextTick()
		if !ok {
			break
		}
		do(m.Handle(heartbeat.EvTick{Now: next}))
	}
	do(m.Handle(heartbeat.EvTick{Now: start.Add(7 * time.Second)}))
	do(m.Handle(heartbeat.EvHeartbeat{Target: "tm-1", Payload: "running v0/0#0"}))
	// Output:
	// 0s: ask tm-1
	// 0s: tm-1 reports 2 free slots
	// 1s: ask tm-1
	// 2s: ask tm-1
	// 3s: ask tm-1
	// 4s: ask tm-1
	// 5s: tm-1 timed out: fail its tasks
	// 7s: tm-1 resumed as #2: fence it, its attempts are stale
}
