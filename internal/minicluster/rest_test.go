package minicluster

import (
	"log/slog"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/rest"
	"github.com/strom-dev/strom/internal/rest/resttest"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// slowSink takes about a millisecond per record: its upstream task, fed
// faster than that, is back-pressured.
type slowSink struct{}

func (slowSink) Open(*runtime.Context) error { return nil }
func (slowSink) Finish() error               { return nil }
func (slowSink) Close() error                { return nil }
func (slowSink) ProcessElement(int, int64)   { time.Sleep(time.Millisecond) }
func (slowSink) ProcessWatermark(int64)      {}
func (slowSink) ProcessIdle()                {}

// slowJob is an endless source → a slow sink over a rebalance edge (two
// tasks), checkpointing every 100ms into a directory.
func slowJob(t *testing.T) *Job {
	t.Helper()
	g := &streamgraph.StreamGraph{}
	src := g.AddNode(&streamgraph.Node{Kind: "source", Name: "Source", UID: "src", Parallelism: 1, Out: runtime.Ops[int]{},
		Build: func(_ *runtime.Context, out any) (runtime.Operator, error) {
			return &testSource{out: out.(runtime.Output[int]), n: 1 << 40, panicAt: -1}, nil
		}})
	sink := g.AddNode(&streamgraph.Node{Kind: "sink", Name: "Slow", UID: "slow", Parallelism: 1, NumInputs: 1, Out: runtime.Ops[struct{}]{},
		Build: func(*runtime.Context, any) (runtime.Operator, error) { return slowSink{}, nil },
		Input: func(ch [][]any, head runtime.Operator, name string) (runtime.InputProcessor, *runtime.Counter) {
			return runtime.Ops[int]{}.NewOneInputProcessor(ch[0], head, name)
		}})
	g.Connect(&streamgraph.Edge{From: src.ID, To: sink.ID, Partition: runtime.Rebalance, Type: runtime.Ops[int]{}})
	jg, err := streamgraph.BuildJobGraph(g, streamgraph.Options{JobName: "slow", DefaultParallelism: 1, MaxParallelism: 128})
	require.NoError(t, err)
	ck := &jobcode.Checkpointing{Storage: "file://" + t.TempDir()}
	ck.Interval = 100 * time.Millisecond
	return &Job{Name: "slow", Graph: g, JobGraph: jg, Config: JobConfig{Logger: slog.New(slog.DiscardHandler), BatchSize: 16, Checkpoint: ck}}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// eventually polls cond every 50ms for up to 15s, failing with what the last
// attempt said.
func eventually(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached; last: %v", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func num(v any) float64 { return v.(float64) }

// The embedded cluster serves the REST API over its Dispatcher: real jobs,
// every answer validated against Flink's spec. A slow sink makes its
// upstream task back-pressured, an idle source is idle, checkpoints and a
// savepoint show in the statistics, a failed job's cause in its
// exceptions, and cancelling works once.
func TestRESTOverARunningCluster(t *testing.T) {
	t.Run("in-process", func(t *testing.T) { testRESTOverCluster(t, false) })
	// The details cross protobuf and HTTP/2 from the JobMasters to the
	// Dispatcher, as between processes.
	t.Run("network-rpc", func(t *testing.T) { testRESTOverCluster(t, true) })
}

func testRESTOverCluster(t *testing.T, networkRPC bool) {
	mc, err := Start(Config{TaskManagers: 2, SlotsPerManager: 4, RESTAddress: "127.0.0.1:0", NetworkRPC: networkRPC})
	require.NoError(t, err)
	defer mc.Close()
	c := resttest.NewClient(t, mc.RESTURL())

	slow, err := mc.Submit(slowJob(t))
	require.NoError(t, err)
	var total atomic.Int64
	idle, err := mc.Submit(newJob(t, jobSpec{name: "idle", parallelism: 1, n: -1, panicAt: -1}, &total))
	require.NoError(t, err)
	failing, err := mc.Submit(newJob(t, jobSpec{name: "failing", parallelism: 1, n: 100, panicAt: 10}, &total))
	require.NoError(t, err)
	wait(t, failing)

	ov := c.JSON("GET", "/overview", nil, 200)
	require.EqualValues(t, 2, ov["taskmanagers"])
	require.EqualValues(t, 8, ov["slots-total"])
	require.EqualValues(t, 1, ov["jobs-failed"])

	jobs := c.JSON("GET", "/jobs/overview", nil, 200)["jobs"].([]any)
	require.Len(t, jobs, 3)
	require.Equal(t, slow.ID(), jobs[0].(map[string]any)["jid"], "in submission order")
	require.Equal(t, "FAILED", jobs[2].(map[string]any)["state"])

	base := "/jobs/" + slow.ID()
	eventually(t, "slow job running with a completed checkpoint", func() (bool, any) {
		cp := c.JSON("GET", base+"/checkpoints", nil, 200)
		return num(cp["counts"].(map[string]any)["completed"]) >= 1, cp["counts"]
	})
	cp := c.JSON("GET", base+"/checkpoints", nil, 200)
	latest := cp["latest"].(map[string]any)["completed"].(map[string]any)
	require.Equal(t, "COMPLETED", latest["status"])
	require.EqualValues(t, 2, latest["num_subtasks"])
	require.EqualValues(t, 2, latest["num_acknowledged_subtasks"])
	require.NotEmpty(t, cp["history"])
	cc := c.JSON("GET", base+"/checkpoints/config", nil, 200)
	require.EqualValues(t, 100, cc["interval"])
	require.Equal(t, "EXACTLY_ONCE", cc["mode"])
	c.JSON("GET", "/jobs/"+idle.ID()+"/checkpoints/config", nil, 404) // no checkpointing

	job := c.JSON("GET", base, nil, 200)
	require.Equal(t, "RUNNING", job["state"])
	vertices := job["vertices"].([]any)
	require.Len(t, vertices, 2)
	srcVertex := vertices[0].(map[string]any)["id"].(string)
	require.Equal(t, rest.VertexID(0), srcVertex)
	plan := c.JSON("GET", base+"/plan", nil, 200)["plan"].(map[string]any)
	require.Len(t, plan["nodes"], 2)

	eventually(t, "source task of the slow job back-pressured", func() (bool, any) {
		bp := c.JSON("GET", base+"/vertices/"+srcVertex+"/backpressure", nil, 200)
		st := bp["subtasks"].([]any)[0].(map[string]any)
		return bp["backpressure-level"] == "high" && num(st["ratio"]) > 0.5, bp
	})
	eventually(t, "source of the idle job idle", func() (bool, any) {
		bp := c.JSON("GET", "/jobs/"+idle.ID()+"/vertices/"+rest.VertexID(0)+"/backpressure", nil, 200)
		st := bp["subtasks"].([]any)[0].(map[string]any)
		return bp["backpressure-level"] == "ok" && num(st["idleRatio"]) > 0.9, bp
	})

	tms := c.JSON("GET", "/taskmanagers", nil, 200)["taskmanagers"].([]any)
	require.Len(t, tms, 2)
	for _, tm := range tms {
		tm := tm.(map[string]any)
		require.Regexp(t, hex32, tm["id"])
		require.EqualValues(t, 4, tm["slotsNumber"])
	}
	used := 8 - num(tms[0].(map[string]any)["freeSlots"]) - num(tms[1].(map[string]any)["freeSlots"])
	require.EqualValues(t, 2, used, "the slow and the idle job hold a slot each (their source and sink share it)")

	ex := c.JSON("GET", "/jobs/"+failing.ID()+"/exceptions", nil, 200)
	entries := ex["exceptionHistory"].(map[string]any)["entries"].([]any)
	require.NotEmpty(t, entries)
	require.Contains(t, entries[0].(map[string]any)["stacktrace"], "source failed at 10")
	require.Contains(t, ex["root-exception"], "source failed at 10")

	// The rest of what a job shows, each validated against the spec.
	wms := c.JSON("GET", base+"/vertices/"+rest.VertexID(1)+"/watermarks", nil, 200)
	require.NotNil(t, wms)
	c.JSON("GET", base+"/vertices/"+rest.VertexID(1), nil, 200)
	c.JSON("GET", base+"/config", nil, 200)
	c.JSON("GET", base+"/exceptions", nil, 200)
	c.JSON("GET", "/taskmanagers/"+tms[0].(map[string]any)["id"].(string), nil, 200)

	dir := t.TempDir()
	trig := c.JSON("POST", base+"/savepoints", map[string]any{"target-directory": dir, "cancel-job": false}, 202)
	tid := trig["request-id"].(string)
	var location string
	eventually(t, "savepoint completed", func() (bool, any) {
		st := c.JSON("GET", base+"/savepoints/"+tid, nil, 200)
		if st["status"].(map[string]any)["id"] != "COMPLETED" {
			return false, st
		}
		op := st["operation"].(map[string]any)
		require.Nil(t, op["failure-cause"], "savepoint failed: %v", op)
		location, _ = op["location"].(string)
		return true, st
	})
	require.Contains(t, location, dir)
	sp := c.JSON("GET", base+"/checkpoints", nil, 200)["latest"].(map[string]any)["savepoint"].(map[string]any)
	require.Equal(t, true, sp["is_savepoint"])
	require.Equal(t, location, sp["external_path"])

	c.JSON("PATCH", base+"?mode=cancel", nil, 202)
	r := wait(t, slow)
	require.Equal(t, "CANCELED", r.State.String())
	c.JSON("PATCH", base+"?mode=cancel", nil, 409)
	require.Equal(t, "CANCELED", c.JSON("GET", base, nil, 200)["state"])
	c.JSON("GET", "/jobs/"+rest.VertexID(99), nil, 404)
}
