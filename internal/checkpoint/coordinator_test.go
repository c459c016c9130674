package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/importcheck"
	"github.com/strom-dev/strom/internal/jobgraph"
)

// TestCoordinator runs the scripts in testdata: each line is an event for
// the coordinator (or sets up a job), and the expected output is the
// actions it answered with, then the checkpoints in progress and the
// coordinator's state. Rewrite the expected output with
//
//	go test ./internal/checkpoint -run TestCoordinator -rewrite
//
// and then read every changed line: the scripts are only worth what the
// reading was.
//
// Commands (a task is V/S, of its current attempt, or V/S#A):
//
//	config [interval=D] [timeout=D] [min-pause=D] [max-concurrent=N] [tolerable=N] [mode=at-least-once]
//	                                   settings for the next job
//	job parallelism=(P,...) [sources=N] [edges=(A>B,...)] [forward=(A>B,...)]
//	                                   a coordinator for one vertex per entry, the first N
//	                                   (default 1) sources, each vertex with one operator
//	                                   op-V (two, op-V and op-Vb, for chains=(V,...));
//	                                   edges are all-to-all, forward ones subtask to
//	                                   subtask; without either, a pipeline v0 > v1 > ...
//	state                              prints the state, feeds nothing
//	tick +D                            EvTick D after the previous one (the first at
//	                                   2026-01-01T00:00:00Z + D)
//	running [attempt=A] [task=(T,...)] EvTasksRunning (attempt 0 unless given; with
//	                                   task=, every task with its attempt: region failover)
//	stopped [reason=R]                 EvTasksStopped
//	trigger checkpoint|savepoint [dir=DIR] [stop] [drain]
//	                                   EvTrigger, requests numbered 1, 2, ... per script
//	ack ID task=T|(T,...) [uids=(U,...)]
//	                                   EvAck per task, with a state for each operator of
//	                                   its vertex (or for the UIDs given)
//	decline ID task=T [reason=R]       EvDecline (R, E: one word each)
//	end-of-input task=T|(T,...)        EvEndOfInput per task
//	finished task=T|(T,...)            EvTaskFinished per task
//	failed task=T                      EvTaskFailed
//	metadata-written ID                EvMetadataWritten
//	metadata-failed ID [err=E]         EvMetadataWritten with an error
//	restore latest=ID                  EvRestore
func TestCoordinator(t *testing.T) {
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
		var (
			c        *Coordinator
			cfg      Config
			jg       *jobgraph.JobGraph
			requests int
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			switch d.Cmd {
			case "config":
				cfg = scriptConfig(t, d)
				return "ok\n"
			case "job":
				jg = scriptJob(t, d)
				var err error
				c, err = New("job-1", jg, cfg)
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
			default:
				if c == nil {
					d.Fatalf(t, "%s before job", d.Cmd)
				}
			}
			handle := func(ev Event) { printActions(&out, c.Handle(ev)) }
			// each feeds one event per task of the command, with a header
			// per event when there are several.
			each := func(mk func(TaskID) Event) {
				ids := scriptTasks(t, d, c)
				for _, id := range ids {
					if len(ids) > 1 {
						fmt.Fprintf(&out, "%v:\n", id)
					}
					handle(mk(id))
				}
			}
			switch d.Cmd {
			case "job", "state":
			case "tick":
				if len(d.CmdArgs) != 1 || !strings.HasPrefix(d.CmdArgs[0].Key, "+") {
					d.Fatalf(t, "tick +DURATION")
				}
				dur, err := time.ParseDuration(d.CmdArgs[0].Key[1:])
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				now := c.now
				if now.IsZero() {
					now = epoch
				}
				handle(EvTick{Now: now.Add(dur)})
			case "running":
				attempt := 0
				d.MaybeScanArgs(t, "attempt", &attempt)
				ev := EvTasksRunning{Attempt: attempt}
				if d.HasArg("task") {
					ev.Tasks = scriptTasks(t, d, c)
				}
				handle(ev)
			case "stopped":
				reason := "canceled"
				d.MaybeScanArgs(t, "reason", &reason)
				handle(EvTasksStopped{Reason: reason})
			case "trigger":
				if len(d.CmdArgs) == 0 {
					d.Fatalf(t, "trigger checkpoint|savepoint [dir=DIR]")
				}
				ev := EvTrigger{Kind: KindCheckpoint}
				switch d.CmdArgs[0].Key {
				case "checkpoint":
				case "savepoint":
					ev.Kind = KindSavepoint
				default:
					d.Fatalf(t, "trigger checkpoint|savepoint [dir=DIR]")
				}
				requests++
				ev.Request = requests
				d.MaybeScanArgs(t, "dir", &ev.Dir)
				ev.Stop, ev.Drain = d.HasArg("stop"), d.HasArg("drain")
				handle(ev)
			case "ack":
				id := scriptID(t, d)
				each(func(task TaskID) Event {
					return EvAck{ID: id, Task: task, States: scriptStates(t, d, jg, id, task)}
				})
			case "decline":
				id := scriptID(t, d)
				reason := "not ready"
				d.MaybeScanArgs(t, "reason", &reason)
				each(func(task TaskID) Event { return EvDecline{ID: id, Task: task, Reason: reason} })
			case "end-of-input":
				each(func(task TaskID) Event { return EvEndOfInput{Task: task} })
			case "finished":
				each(func(task TaskID) Event { return EvTaskFinished{Task: task} })
			case "failed":
				each(func(task TaskID) Event { return EvTaskFailed{Task: task} })
			case "metadata-written":
				handle(EvMetadataWritten{ID: scriptID(t, d)})
			case "metadata-failed":
				msg := "disk full"
				d.MaybeScanArgs(t, "err", &msg)
				handle(EvMetadataWritten{ID: scriptID(t, d), Err: errors.New(msg)})
			case "restore":
				var latest int64
				d.ScanArgs(t, "latest", &latest)
				handle(EvRestore{LatestID: ID(latest)})
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			printState(&out, c)
			return out.String()
		})
	}
}

// epoch is the time of `tick +0s`; times print as the time since.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rel(t time.Time) time.Duration { return t.Sub(epoch) }

func scriptConfig(t *testing.T, d *datadriven.TestData) Config {
	var cfg Config
	for _, a := range d.CmdArgs {
		dur := func(p *time.Duration) {
			v, err := time.ParseDuration(a.SingleVal(t))
			if err != nil {
				d.Fatalf(t, "%s: %v", a.Key, err)
			}
			*p = v
		}
		switch a.Key {
		case "interval":
			dur(&cfg.Interval)
		case "timeout":
			dur(&cfg.Timeout)
		case "min-pause":
			dur(&cfg.MinPause)
		case "max-concurrent":
			a.Scan(t, 0, &cfg.MaxConcurrent)
		case "tolerable":
			a.Scan(t, 0, &cfg.TolerableFailures)
		case "mode":
			switch a.SingleVal(t) {
			case "exactly-once":
				cfg.Mode = ExactlyOnce
			case "at-least-once":
				cfg.Mode = AtLeastOnce
			default:
				cfg.Mode = Mode(99)
			}
		default:
			d.Fatalf(t, "unknown setting %q", a.Key)
		}
	}
	return cfg
}

func scriptJob(t *testing.T, d *datadriven.TestData) *jobgraph.JobGraph {
	arg, ok := d.Arg("parallelism")
	if !ok {
		d.Fatalf(t, "job parallelism=(P,...)")
	}
	sources := 1
	d.MaybeScanArgs(t, "sources", &sources)
	chains := map[string]bool{}
	if a, ok := d.Arg("chains"); ok {
		for _, v := range a.Vals {
			chains[v] = true
		}
	}
	jg := &jobgraph.JobGraph{JobName: "job", MaxParallelism: 128}
	for i := range arg.Vals {
		var p int
		arg.Scan(t, i, &p)
		v := &jobgraph.JobVertex{ID: i, Name: fmt.Sprintf("v%d", i), Parallelism: p, IsSource: i < sources,
			Operators: []jobgraph.OperatorInfo{{Name: fmt.Sprintf("op %d", i), UID: fmt.Sprintf("op-%d", i)}}}
		if chains[strconv.Itoa(i)] {
			v.Operators = append(v.Operators, jobgraph.OperatorInfo{Name: fmt.Sprintf("op %db", i), UID: fmt.Sprintf("op-%db", i)})
		}
		jg.Vertices = append(jg.Vertices, v)
	}
	edges := func(key string, part jobgraph.Partition) bool {
		a, ok := d.Arg(key)
		for _, e := range a.Vals {
			from, to, ok := strings.Cut(e, ">")
			f, err1 := strconv.Atoi(from)
			tt, err2 := strconv.Atoi(to)
			if !ok || err1 != nil || err2 != nil {
				d.Fatalf(t, "bad edge %q, want FROM>TO", e)
			}
			jg.Edges = append(jg.Edges, &jobgraph.JobEdge{From: f, To: tt, Partition: part})
		}
		return ok
	}
	all := edges("edges", jobgraph.Hash)
	if fwd := edges("forward", jobgraph.Forward); !all && !fwd {
		for i := 1; i < len(jg.Vertices); i++ {
			jg.Edges = append(jg.Edges, &jobgraph.JobEdge{From: i - 1, To: i, Partition: jobgraph.Hash})
		}
	}
	return jg
}

func scriptID(t *testing.T, d *datadriven.TestData) ID {
	if len(d.CmdArgs) == 0 {
		d.Fatalf(t, "%s ID ...", d.Cmd)
	}
	n, err := strconv.ParseInt(d.CmdArgs[0].Key, 10, 64)
	if err != nil {
		d.Fatalf(t, "%s ID ...: %v", d.Cmd, err)
	}
	return ID(n)
}

func scriptTasks(t *testing.T, d *datadriven.TestData, c *Coordinator) []TaskID {
	a, ok := d.Arg("task")
	if !ok {
		d.Fatalf(t, "%s needs task=V/S or task=(V/S,...)", d.Cmd)
	}
	var ids []TaskID
	for _, v := range a.Vals {
		id := TaskID{Attempt: c.attempt}
		s, attempt, hasAttempt := strings.Cut(v, "#")
		vs, ss, _ := strings.Cut(s, "/")
		var err1, err2, err3 error
		id.Vertex, err1 = strconv.Atoi(vs)
		id.Subtask, err2 = strconv.Atoi(ss)
		if hasAttempt {
			id.Attempt, err3 = strconv.Atoi(attempt)
		} else if err1 == nil && err2 == nil && id.Vertex >= 0 && id.Vertex < len(c.tasks) && id.Subtask >= 0 && id.Subtask < len(c.tasks[id.Vertex]) && c.started {
			id.Attempt = c.tasks[id.Vertex][id.Subtask].attempt
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			d.Fatalf(t, "bad task %q, want V/S or V/S#A: %v", v, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// scriptStates gives each operator of the task's vertex (or each UID the
// command names) one state file named after the checkpoint, operator and
// subtask, so the metadata shows which ack it came from.
func scriptStates(t *testing.T, d *datadriven.TestData, jg *jobgraph.JobGraph, id ID, task TaskID) []OperatorSnapshot {
	var uids []string
	if a, ok := d.Arg("uids"); ok {
		uids = a.Vals
	} else if task.Vertex >= 0 && task.Vertex < len(jg.Vertices) {
		for _, op := range jg.Vertices[task.Vertex].Operators {
			uids = append(uids, op.UID)
		}
	}
	var out []OperatorSnapshot
	for _, uid := range uids {
		path := fmt.Sprintf("chk-%d/%s-%d", id, uid, task.Subtask)
		out = append(out, OperatorSnapshot{UID: uid, State: SubtaskState{Subtask: task.Subtask, Keyed: []StateHandle{{Path: path, Size: 1}}}})
	}
	return out
}

func printActions(out *strings.Builder, acts []Action) {
	if len(acts) == 0 {
		out.WriteString("no actions\n")
	}
	for _, a := range acts {
		switch a := a.(type) {
		case ActTrigger:
			fmt.Fprintf(out, "> trigger %d %v at %s tasks=%v mode=%v", a.ID, a.Kind, rel(a.Timestamp), a.Tasks, a.Mode)
			if a.Dir != "" {
				fmt.Fprintf(out, " dir=%s", a.Dir)
			}
			if a.Request != 0 {
				fmt.Fprintf(out, " request=%d", a.Request)
			}
			if a.Final {
				out.WriteString(" final")
			}
			if a.Stop {
				out.WriteString(" stop")
			}
			if a.Drain {
				out.WriteString(" drain")
			}
			out.WriteString("\n")
		case ActWriteMetadata:
			m := a.Metadata
			fmt.Fprintf(out, "> write-metadata %d %v job=%s triggered=%s completed=%s", m.ID, m.Kind, m.JobID, rel(m.Triggered), rel(m.Completed))
			if a.Dir != "" {
				fmt.Fprintf(out, " dir=%s", a.Dir)
			}
			if a.Request != 0 {
				fmt.Fprintf(out, " request=%d", a.Request)
			}
			out.WriteString("\n")
			for _, op := range m.Operators {
				fmt.Fprintf(out, "    %s p=%d max=%d:", op.UID, op.Parallelism, op.MaxParallelism)
				for _, s := range op.Subtasks {
					fmt.Fprintf(out, " %d=", s.Subtask)
					switch {
					case s.Finished:
						out.WriteString("finished")
					case len(s.Keyed) == 0:
						out.WriteString("empty")
					default:
						out.WriteString(s.Keyed[0].Path)
					}
				}
				out.WriteString("\n")
			}
		case ActNotifyComplete:
			fmt.Fprintf(out, "> notify-complete %d tasks=%v", a.ID, a.Tasks)
			if len(a.Finish) > 0 {
				fmt.Fprintf(out, " finish=%v", a.Finish)
			}
			if a.Savepoint {
				out.WriteString(" savepoint")
			}
			out.WriteString("\n")
		case ActEndInput:
			fmt.Fprintf(out, "> end-input tasks=%v\n", a.Tasks)
		case ActAbort:
			fmt.Fprintf(out, "> abort %d reason=%q tasks=%v", a.ID, a.Reason, a.Tasks)
			if a.Request != 0 {
				fmt.Fprintf(out, " request=%d", a.Request)
			}
			out.WriteString("\n")
		case ActDiscard:
			var paths []string
			for _, s := range a.States {
				for _, h := range s.State.Keyed {
					paths = append(paths, h.Path)
				}
			}
			fmt.Fprintf(out, "> discard %d from %v %v\n", a.ID, a.Task, paths)
		case ActFailJob:
			fmt.Fprintf(out, "> fail-job reason=%q\n", a.Reason)
		default:
			fmt.Fprintf(out, "> unknown action %#v\n", a)
		}
	}
}

func printState(out *strings.Builder, c *Coordinator) {
	switch {
	case c.running:
		fmt.Fprintf(out, "running attempt=%d", c.attempt)
	case c.started:
		fmt.Fprintf(out, "stopped attempt=%d", c.attempt)
	default:
		out.WriteString("not started")
	}
	fmt.Fprintf(out, " next=%d failures=%d/%d", c.NextID(), c.Failures(), c.cfg.TolerableFailures)
	if !c.now.IsZero() {
		fmt.Fprintf(out, " now=%v", rel(c.now))
	}
	out.WriteString("\n")
	var finished, ended []string
	for vi, v := range c.tasks {
		for si, t := range v {
			name := fmt.Sprintf("v%d/%d", vi, si)
			switch {
			case t.finished:
				finished = append(finished, name)
			case t.released:
				ended = append(ended, name+"(released)")
			case t.endOfInput:
				ended = append(ended, name)
			}
		}
	}
	if len(finished) > 0 {
		fmt.Fprintf(out, "  finished %v\n", finished)
	}
	if len(ended) > 0 {
		fmt.Fprintf(out, "  end of input %v\n", ended)
	}
	for _, r := range c.requests {
		fmt.Fprintf(out, "  queued request %d %v\n", r.Request, r.Kind)
	}
	for _, p := range c.Pending() {
		fmt.Fprintf(out, "  pending %d %v", p.ID, p.Kind)
		if p.Final {
			out.WriteString(" final")
		}
		if p.Writing {
			out.WriteString(" writing metadata\n")
		} else {
			fmt.Fprintf(out, " waiting for %v\n", p.Waiting)
		}
	}
}

// The coordinator stays a pure state machine: it depends on no runtime,
// network, storage or role package of the module, not even through
// another package, so it can be driven by scripts alone.
func TestImportsNoRuntime(t *testing.T) {
	const module = importcheck.Module
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	via := importcheck.Deps(t, root, module+"/internal/checkpoint")
	for _, f := range []string{
		module,
		module + "/internal/runtime",
		module + "/internal/network",
		module + "/internal/statebackend",
		module + "/internal/streamgraph",
		module + "/internal/scheduler",
		module + "/internal/rpc",
		module + "/internal/dispatcher",
		module + "/internal/jobmaster",
		module + "/internal/resourcemanager",
		module + "/internal/taskmanager",
		module + "/internal/minicluster",
	} {
		if _, ok := via[f]; ok {
			t.Errorf("internal/checkpoint depends on %s: %s", f, importcheck.Chain(via, f))
		}
	}
}

// What a script cannot show: the names printed in logs and status pages,
// and that a refused setting is refused by New as by Validate.
func TestNames(t *testing.T) {
	require.Equal(t, "v1/2#3", TaskID{Vertex: 1, Subtask: 2, Attempt: 3}.String())
	require.Equal(t, "EXACTLY_ONCE", ExactlyOnce.String())
	require.Equal(t, "AT_LEAST_ONCE", AtLeastOnce.String())
	require.Equal(t, "Mode(7)", Mode(7).String())
	require.Equal(t, "SAVEPOINT", KindSavepoint.String())
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{}.Validate())
	require.NoError(t, Config{Interval: time.Second, Timeout: time.Minute, MinPause: time.Second, MaxConcurrent: 3, TolerableFailures: 2, Mode: AtLeastOnce}.Validate())
	bad := Config{MinPause: -time.Second}
	require.ErrorContains(t, bad.Validate(), "min pause")
	_, err := New("job", &jobgraph.JobGraph{}, bad)
	require.ErrorContains(t, err, "min pause")
	d := Config{}.withDefaults()
	require.Equal(t, DefaultTimeout, d.Timeout)
	require.Equal(t, 1, d.MaxConcurrent)
}

// The metadata the coordinator asks to write survives the JSON round trip
// the metadata file makes, finished subtasks included.
func TestMetadataJSONRoundTrip(t *testing.T) {
	jg := &jobgraph.JobGraph{MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Parallelism: 2, IsSource: true, Operators: []jobgraph.OperatorInfo{{Name: "src", UID: "src"}}},
	}}
	c, err := New("job", jg, Config{})
	require.NoError(t, err)
	c.Handle(EvTick{Now: epoch})
	c.Handle(EvTasksRunning{})
	c.Handle(EvTaskFinished{Task: TaskID{Vertex: 0, Subtask: 1}})
	acts := c.Handle(EvTrigger{Request: 1, Kind: KindSavepoint, Dir: "/sp"})
	require.Equal(t, []Action{ActTrigger{ID: 1, Kind: KindSavepoint, Timestamp: epoch, Tasks: []TaskID{{}}, Mode: ExactlyOnce, Dir: "/sp", Request: 1}}, acts)
	state := SubtaskState{Subtask: 0, Operator: []StateHandle{{Path: "sp/src-0", Size: 3}}, Watermark: 42}
	acts = c.Handle(EvAck{ID: 1, Task: TaskID{}, States: []OperatorSnapshot{{UID: "src", State: state}}})
	require.Len(t, acts, 1)
	md := acts[0].(ActWriteMetadata).Metadata
	want := Metadata{JobID: "job", ID: 1, Kind: KindSavepoint, Triggered: epoch, Completed: epoch, Operators: []OperatorState{
		{UID: "src", Name: "src", Parallelism: 2, MaxParallelism: 128, Subtasks: []SubtaskState{state, {Subtask: 1, Finished: true}}},
	}}
	require.Equal(t, want, md)
	b, err := json.Marshal(md)
	require.NoError(t, err)
	var back Metadata
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, want, back)
}
