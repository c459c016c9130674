package scheduler

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripts in testdata: each line is an event for
// the scheduler (or sets up a job), and the expected output is the actions
// it answered with followed by the job's state and every execution's state.
// Rewrite the expected output with
//
//	go test ./internal/scheduler -run TestInteraction -rewrite
//
// and then read every changed line: the scripts are only worth what the
// reading was.
//
// Commands:
//
//	new-job vertices=N parallelism=P      N vertices of P subtasks, one slot sharing group
//	new-job parallelism=(2,1) groups=(a,b) one vertex per entry, in its group ("default" if none)
//	  [edges=(0-1,2-3)]                   the edges (default: a pipeline v0 → v1 → …, one region)
//	  [restart=KIND ...]                  the restart strategy (default none) and its parameters:
//	                                      fixed-delay attempts=N delay=D
//	                                      exponential-delay initial=D max=D multiplier=F reset=D
//	                                        [jitter=F seed=N attempts=N] (jitter 0 unless given)
//	                                      failure-rate max-failures=N interval=D delay=D
//	attempt-base n=N                      SetAttemptBase(N) (a recovering JobMaster's)
//	state                                 prints the state, feeds nothing
//	start                                 EvStart
//	grant-slots n=N [tms=T]               EvSlotsGranted with N slots spread round-robin
//	                                      over T TaskManagers (default 2), as the ResourceManager does
//	refuse-slots [err=E]                  EvSlotsRefused
//	task V/S [V/S...] STATE [attempt=A] [err=E] [no-restart]
//	                                      EvTaskState for each execution, in order
//	slots-lost tm=ID [err=MSG]            EvSlotsLost
//	cancel                                EvCancel
//	tick +D                               EvTick D after the previous tick (the first is at
//	                                      2026-01-01T00:00:00Z + D)
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s *Scheduler
		epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "new-job" && s == nil {
				d.Fatalf(t, "%s before new-job", d.Cmd)
			}
			var out strings.Builder
			switch d.Cmd {
			case "new-job":
				var err error
				s, err = New(scriptJob(t, d), scriptRestart(t, d))
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				fmt.Fprintf(&out, "slots needed: %d\n", s.jg.SlotsNeeded())
			case "attempt-base":
				var n int
				d.ScanArgs(t, "n", &n)
				s.SetAttemptBase(n)
			case "state":
			case "start":
				printActions(&out, s.Handle(EvStart{}))
			case "grant-slots":
				var n int
				tms := 2
				d.ScanArgs(t, "n", &n)
				d.MaybeScanArgs(t, "tms", &tms)
				slots := make([]SlotID, n)
				for i := range slots {
					slots[i] = SlotID{TaskManager: fmt.Sprintf("tm-%d", i%tms+1), Index: i / tms}
				}
				printActions(&out, s.Handle(EvSlotsGranted{Slots: slots}))
			case "refuse-slots":
				msg := "no slots"
				d.MaybeScanArgs(t, "err", &msg)
				printActions(&out, s.Handle(EvSlotsRefused{Err: errors.New(msg)}))
			case "task":
				evs := taskEvents(t, d)
				for _, ev := range evs {
					if len(evs) > 1 {
						fmt.Fprintf(&out, "%v %v:\n", ev.ID, ev.State)
					}
					printActions(&out, s.Handle(ev))
				}
			case "slots-lost":
				var tm string
				msg := "TaskManager lost"
				d.ScanArgs(t, "tm", &tm)
				d.MaybeScanArgs(t, "err", &msg)
				printActions(&out, s.Handle(EvSlotsLost{TaskManager: tm, Err: errors.New(msg)}))
			case "cancel":
				printActions(&out, s.Handle(EvCancel{}))
			case "tick":
				if len(d.CmdArgs) != 1 || !strings.HasPrefix(d.CmdArgs[0].Key, "+") {
					d.Fatalf(t, "tick +DURATION")
				}
				dur, err := time.ParseDuration(d.CmdArgs[0].Key[1:])
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				now := s.Now()
				if now.IsZero() {
					now = epoch
				}
				printActions(&out, s.Handle(EvTick{Now: now.Add(dur)}))
				fmt.Fprintf(&out, "now %s\n", s.Now().Format(time.RFC3339))
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			printState(&out, s)
			return out.String()
		})
	})
}

func scriptJob(t *testing.T, d *datadriven.TestData) *JobGraph {
	var ps []int
	var groups []string
	if d.HasArg("vertices") {
		var n, p int
		d.ScanArgs(t, "vertices", &n)
		d.ScanArgs(t, "parallelism", &p)
		for range n {
			ps = append(ps, p)
		}
	} else {
		arg, ok := d.Arg("parallelism")
		if !ok {
			d.Fatalf(t, "new-job needs vertices= and parallelism=, or parallelism=(...)")
		}
		for i := range arg.Vals {
			var p int
			arg.Scan(t, i, &p)
			ps = append(ps, p)
		}
		if g, ok := d.Arg("groups"); ok {
			groups = g.Vals
		}
	}
	jg := &JobGraph{JobName: "job", MaxParallelism: 128}
	for i, p := range ps {
		group := "default"
		if i < len(groups) {
			group = groups[i]
		}
		jg.Vertices = append(jg.Vertices, &JobVertex{ID: i, Name: fmt.Sprintf("v%d", i), Parallelism: p, MaxParallelism: 128, SlotSharingGroup: group})
	}
	if arg, ok := d.Arg("edges"); ok {
		for _, e := range arg.Vals {
			if e == "" {
				continue // edges=(): no edge, every vertex a region
			}
			from, to, ok := strings.Cut(e, "-")
			f, err1 := strconv.Atoi(from)
			tt, err2 := strconv.Atoi(to)
			if !ok || err1 != nil || err2 != nil {
				d.Fatalf(t, "edges=(FROM-TO,...): bad edge %q", e)
			}
			jg.Edges = append(jg.Edges, &JobEdge{From: f, To: tt})
		}
	} else {
		for i := 1; i < len(ps); i++ {
			jg.Edges = append(jg.Edges, &JobEdge{From: i - 1, To: i})
		}
	}
	return jg
}

func scriptRestart(t *testing.T, d *datadriven.TestData) RestartStrategy {
	var kind string
	d.MaybeScanArgs(t, "restart", &kind)
	dur := func(key string) time.Duration {
		var v string
		d.ScanArgs(t, key, &v)
		dd, err := time.ParseDuration(v)
		if err != nil {
			d.Fatalf(t, "%s: %v", key, err)
		}
		return dd
	}
	switch RestartKind(kind) {
	case RestartFixedDelay:
		var n int
		d.ScanArgs(t, "attempts", &n)
		return FixedDelayRestart(n, dur("delay"))
	case RestartExponentialDelay:
		p := ExponentialDelay{InitialBackoff: dur("initial"), MaxBackoff: dur("max"), ResetThreshold: dur("reset")}
		var mult, jitter string
		d.ScanArgs(t, "multiplier", &mult)
		d.MaybeScanArgs(t, "jitter", &jitter)
		d.MaybeScanArgs(t, "seed", &p.Seed)
		d.MaybeScanArgs(t, "attempts", &p.Attempts)
		var err error
		if p.Multiplier, err = strconv.ParseFloat(mult, 64); err != nil {
			d.Fatalf(t, "multiplier: %v", err)
		}
		if jitter != "" {
			if p.JitterFactor, err = strconv.ParseFloat(jitter, 64); err != nil {
				d.Fatalf(t, "jitter: %v", err)
			}
		}
		return RestartStrategy{Kind: RestartExponentialDelay, ExponentialDelay: &p}
	case RestartFailureRate:
		var n int
		d.ScanArgs(t, "max-failures", &n)
		return FailureRateRestart(n, dur("interval"), dur("delay"))
	}
	return RestartStrategy{Kind: RestartKind(kind)}
}

func taskEvents(t *testing.T, d *datadriven.TestData) []EvTaskState {
	var ids []ExecutionID
	state := ExecState(-1)
	attempt := 0
	var err error
	noRestart := false
	for _, a := range d.CmdArgs {
		switch {
		case a.Key == "no-restart":
			noRestart = true
		case a.Key == "attempt":
			a.Scan(t, 0, &attempt)
		case a.Key == "err":
			err = errors.New(a.SingleVal(t))
		case strings.Contains(a.Key, "/"):
			v, sub, _ := strings.Cut(a.Key, "/")
			vi, err1 := strconv.Atoi(v)
			si, err2 := strconv.Atoi(sub)
			if err1 != nil || err2 != nil {
				d.Fatalf(t, "bad execution %q, want VERTEX/SUBTASK", a.Key)
			}
			ids = append(ids, ExecutionID{Vertex: vi, Subtask: si})
		default:
			state = parseExecState(t, d, a.Key)
		}
	}
	if len(ids) == 0 || state < 0 {
		d.Fatalf(t, "task V/S... STATE [attempt=A] [err=E]")
	}
	evs := make([]EvTaskState, len(ids))
	for i, id := range ids {
		id.Attempt = attempt
		evs[i] = EvTaskState{ID: id, State: state, Err: err, NoRestart: noRestart}
	}
	return evs
}

func parseExecState(t *testing.T, d *datadriven.TestData, name string) ExecState {
	for i, n := range execStateNames {
		if strings.EqualFold(n, name) {
			return ExecState(i)
		}
	}
	d.Fatalf(t, "unknown execution state %q", name)
	return 0
}

func printActions(out *strings.Builder, acts []Action) {
	if len(acts) == 0 {
		out.WriteString("no actions\n")
	}
	for _, a := range acts {
		switch a := a.(type) {
		case ActRequestSlots:
			fmt.Fprintf(out, "> request-slots n=%d\n", a.N)
		case ActDeploy:
			fmt.Fprintf(out, "> deploy %v to %v\n", a.ID, a.Slot)
		case ActCancelTask:
			fmt.Fprintf(out, "> cancel-task %v on %v\n", a.ID, a.Slot)
		case ActCancelSlotRequest:
			out.WriteString("> cancel-slot-request\n")
		case ActReleaseSlots:
			fmt.Fprintf(out, "> release-slots %v\n", a.Slots)
		case ActScheduleTick:
			fmt.Fprintf(out, "> schedule-tick at %s\n", a.At.Format(time.RFC3339Nano))
		case ActRestarting:
			fmt.Fprintf(out, "> restarting attempt=%d cause=%q", a.Attempt, a.Cause)
			if a.Vertices != nil {
				fmt.Fprintf(out, " region=%v previous-attempt=%d", a.Vertices, a.PreviousAttempt)
			}
			out.WriteString("\n")
		case ActJobDone:
			fmt.Fprintf(out, "> job-done %v", a.State)
			if a.Err != nil {
				fmt.Fprintf(out, " err=%q", a.Err)
			}
			out.WriteString("\n")
		default:
			fmt.Fprintf(out, "> unknown action %#v\n", a)
		}
	}
}

func printState(out *strings.Builder, s *Scheduler) {
	fmt.Fprintf(out, "job %v", s.State())
	if s.Restarts() > 0 || s.State() == JobRestarting {
		fmt.Fprintf(out, " restarts=%d", s.Restarts())
	}
	if s.waiting {
		fmt.Fprintf(out, " restart-at=%s", s.restartAt.Format(time.RFC3339Nano))
	}
	if s.Err() != nil {
		fmt.Fprintf(out, " err=%q", s.Err())
	}
	for r := range s.regions {
		if rr := s.failover[r]; rr != nil {
			fmt.Fprintf(out, " region-%d-restarting", r)
			if rr.waiting {
				fmt.Fprintf(out, "-at=%s", rr.restartAt.Format(time.RFC3339Nano))
			}
		}
	}
	out.WriteString("\n")
	for _, e := range s.Executions() {
		fmt.Fprintf(out, "  %v %v", e.ID, e.State)
		if e.Slot != (SlotID{}) {
			fmt.Fprintf(out, " %v", e.Slot)
		}
		if e.Err != nil {
			fmt.Fprintf(out, " err=%q", e.Err)
		}
		out.WriteString("\n")
	}
}
