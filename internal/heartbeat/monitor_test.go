package heartbeat

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"
)

// epoch is the monitor's time at `new`; times print as the time since.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rel(t time.Time) time.Duration { return t.Sub(epoch) }

// TestMonitor runs the scripts in testdata: each command is an event for
// the monitor, and the expected output is the actions it answered with,
// then the monitor's state. Rewrite the expected output with
//
//	go test ./internal/heartbeat -run TestMonitor -rewrite
//
// and then read every changed line: the scripts are only worth what the
// reading was.
//
// Commands (T is a target id; several may be given, one event each):
//
//	new [interval=D] [timeout=D] [passive]  a monitor whose clock reads the epoch
//	state                                   prints the state, feeds nothing
//	tick +D                                 EvTick D after the monitor's time
//	add T...                                EvAdd
//	remove T...                             EvRemove
//	heartbeat T... [payload=P]              EvHeartbeat
//	lost T... [reason=R]                    EvConnectionLost
func TestMonitor(t *testing.T) {
	// Only the scripts: rapid keeps its failure files in testdata/rapid.
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) { runScript(t, path) })
	}
}

func runScript(t *testing.T, path string) {
	{
		var m *Monitor
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			if d.Cmd == "new" {
				var cfg Config
				d.MaybeScanArgs(t, "interval", &cfg.Interval)
				d.MaybeScanArgs(t, "timeout", &cfg.Timeout)
				cfg.Passive = d.HasArg("passive")
				var err error
				m, err = New(cfg, epoch)
				if err != nil {
					m = nil
					return fmt.Sprintf("error: %v\n", err)
				}
				printState(&out, m)
				return out.String()
			}
			if m == nil {
				d.Fatalf(t, "%s before new", d.Cmd)
			}
			each := func(mk func(target string) Event) {
				var targets []string
				for _, a := range d.CmdArgs {
					if len(a.Vals) == 0 {
						targets = append(targets, a.Key)
					}
				}
				if len(targets) == 0 {
					d.Fatalf(t, "%s needs a target", d.Cmd)
				}
				for _, target := range targets {
					printActions(&out, m.Handle(mk(target)))
				}
			}
			switch d.Cmd {
			case "state":
			case "tick":
				if len(d.CmdArgs) != 1 || !strings.HasPrefix(d.CmdArgs[0].Key, "+") {
					d.Fatalf(t, "tick +DURATION")
				}
				dur, err := time.ParseDuration(d.CmdArgs[0].Key[1:])
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				printActions(&out, m.Handle(EvTick{Now: m.Now().Add(dur)}))
			case "add":
				each(func(target string) Event { return EvAdd{Target: target} })
			case "remove":
				each(func(target string) Event { return EvRemove{Target: target} })
			case "heartbeat":
				var payload any
				if d.HasArg("payload") {
					var p string
					d.ScanArgs(t, "payload", &p)
					payload = p
				}
				each(func(target string) Event { return EvHeartbeat{Target: target, Payload: payload} })
			case "lost":
				reason := "connection reset"
				d.MaybeScanArgs(t, "reason", &reason)
				each(func(target string) Event { return EvConnectionLost{Target: target, Reason: reason} })
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			printState(&out, m)
			return out.String()
		})
	}
}

func printActions(out *strings.Builder, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case ActSendRequest:
			fmt.Fprintf(out, "> request %s #%d\n", a.Target, a.Incarnation)
		case ActHeartbeat:
			fmt.Fprintf(out, "> heartbeat %s #%d payload=%v\n", a.Target, a.Incarnation, a.Payload)
		case ActTimedOut:
			fmt.Fprintf(out, "> timed-out %s #%d last-seen=%v\n", a.Target, a.Incarnation, rel(a.LastSeen))
		case ActLost:
			fmt.Fprintf(out, "> lost %s #%d reason=%s\n", a.Target, a.Incarnation, a.Reason)
		case ActResumed:
			fmt.Fprintf(out, "> resumed %s #%d previous=#%d payload=%v\n", a.Target, a.Incarnation, a.Previous, a.Payload)
		default:
			panic(fmt.Sprintf("unknown action %T", a))
		}
	}
}

func printState(out *strings.Builder, m *Monitor) {
	fmt.Fprintf(out, "now=%v", rel(m.Now()))
	if next, ok := m.NextTick(); ok {
		fmt.Fprintf(out, " next-tick=%v", rel(next))
	}
	out.WriteString("\n")
	for _, t := range m.Targets() {
		fmt.Fprintf(out, "  %s #%d %v last-seen=%v", t.ID, t.Incarnation, t.State, rel(t.LastSeen))
		if !t.NextRequest.IsZero() {
			fmt.Fprintf(out, " next-request=%v", rel(t.NextRequest))
		}
		out.WriteString("\n")
	}
}

func TestConfigDefaults(t *testing.T) {
	m, err := New(Config{}, epoch)
	require.NoError(t, err)
	require.Equal(t, Config{Interval: time.Second, Timeout: 5 * time.Second}, m.Config())

	_, err = New(Config{Interval: 2 * time.Second, Timeout: time.Second}, epoch)
	require.ErrorContains(t, err, "shorter than the interval")
	_, err = New(Config{Timeout: -time.Second}, epoch)
	require.ErrorContains(t, err, "negative")
}
