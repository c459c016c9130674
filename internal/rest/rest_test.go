package rest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testClock is a settable clock for Config.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// quietLogger shows warnings and errors only.
var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// start serves a fake cluster on a loopback port; the server is closed
// when the test ends.
func start(t *testing.T, mod ...func(*Config)) (*fakeCluster, *client, *Server, *testClock) {
	t.Helper()
	clock := &testClock{now: t0}
	f := newFakeCluster(t0)
	cfg := Config{Addr: "127.0.0.1:0", Cluster: f, Version: "0.1.0", Revision: "abc123", Now: clock.Now, Logger: quietLogger}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return f, newClient(t, s), s, clock
}

func TestServerListensOnLoopbackByDefault(t *testing.T) {
	var cfg Config
	cfg.ensureDefaults()
	require.Equal(t, "127.0.0.1:8081", cfg.Addr)
	_, err := NewServer(Config{})
	require.ErrorContains(t, err, "Cluster is nil")

	_, _, s, _ := start(t)
	require.True(t, strings.HasPrefix(s.Addr(), "127.0.0.1:"), s.Addr())
	require.NotEqual(t, "127.0.0.1:0", s.Addr())
}

func TestClusterEndpoints(t *testing.T) {
	_, c, _, _ := start(t, func(cfg *Config) { cfg.WebSubmit = true })

	cfg := c.json("GET", "/config", nil, 200)
	require.Equal(t, "0.1.0", cfg["flink-version"])
	require.Equal(t, "abc123", cfg["flink-revision"])
	require.EqualValues(t, 3000, cfg["refresh-interval"])
	require.Equal(t, map[string]any{"web-submit": true, "web-cancel": true, "web-history": false}, cfg["features"])

	o := c.json("GET", "/overview", nil, 200)
	require.EqualValues(t, 1, o["taskmanagers"])
	require.EqualValues(t, 4, o["slots-total"])
	require.EqualValues(t, 1, o["slots-available"])
	require.EqualValues(t, 1, o["jobs-running"])
	require.EqualValues(t, 1, o["jobs-finished"])
	require.EqualValues(t, 0, o["jobs-cancelled"])
	require.EqualValues(t, 0, o["jobs-failed"])
	require.Equal(t, "0.1.0", o["flink-version"])

	tms := c.json("GET", "/taskmanagers", nil, 200)["taskmanagers"].([]any)
	require.Len(t, tms, 1)
	tm := tms[0].(map[string]any)
	require.Equal(t, tmID, tm["id"])
	require.Equal(t, "127.0.0.1:6121", tm["path"])
	require.EqualValues(t, 4, tm["slotsNumber"])
	require.EqualValues(t, 1, tm["freeSlots"])
	require.EqualValues(t, t0.Add(-time.Second).UnixMilli(), tm["timeSinceLastHeartbeat"])

	d := c.json("GET", "/taskmanagers/"+tmID, nil, 200)
	require.Len(t, d["allocatedSlots"], 3)
	require.EqualValues(t, 10<<20, d["metrics"].(map[string]any)["heapUsed"])
	c.errorOf("GET", "/taskmanagers/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", nil, 404)
}

func TestJobEndpoints(t *testing.T) {
	_, c, _, _ := start(t)

	jobs := c.json("GET", "/jobs", nil, 200)["jobs"].([]any)
	require.Equal(t, []any{map[string]any{"id": jobA, "status": "RUNNING"}, map[string]any{"id": jobB, "status": "FINISHED"}}, jobs)

	ov := c.json("GET", "/jobs/overview", nil, 200)["jobs"].([]any)
	require.Len(t, ov, 2)
	a := ov[0].(map[string]any)
	// Flink's wire fields ...
	require.Equal(t, jobA, a["jid"])
	require.Equal(t, "numbers", a["name"])
	require.Equal(t, "RUNNING", a["state"])
	require.EqualValues(t, t0.Add(-time.Minute).UnixMilli(), a["start-time"])
	require.EqualValues(t, -1, a["end-time"])
	require.EqualValues(t, time.Minute.Milliseconds(), a["duration"])
	require.EqualValues(t, 3, a["tasks"].(map[string]any)["running"])
	require.EqualValues(t, 3, a["tasks"].(map[string]any)["total"])
	// ... and the spec's.
	require.Equal(t, jobA, a["jobId"])
	require.EqualValues(t, 3, a["numTasks"])
	require.EqualValues(t, 3, a["tasksPerState"].([]any)[3]) // RUNNING's ordinal
	b := ov[1].(map[string]any)
	require.EqualValues(t, 10_000, b["duration"])

	j := c.json("GET", "/jobs/"+jobA, nil, 200)
	require.Equal(t, jobA, j["jid"])
	require.Equal(t, true, j["isStoppable"])
	require.Equal(t, "RUNNING", j["state"])
	require.EqualValues(t, t0.UnixMilli(), j["now"])
	require.EqualValues(t, 3, j["status-counts"].(map[string]any)["RUNNING"])
	require.EqualValues(t, t0.Add(-time.Minute).UnixMilli(), j["timestamps"].(map[string]any)["RUNNING"])
	vs := j["vertices"].([]any)
	require.Len(t, vs, 2)
	src := vs[0].(map[string]any)
	require.Equal(t, VertexID(1), src["id"])
	require.Equal(t, "RUNNING", src["status"])
	require.EqualValues(t, 150, src["metrics"].(map[string]any)["write-records"])
	require.EqualValues(t, 1200, src["metrics"].(map[string]any)["write-bytes"])
	plan := j["plan"].(map[string]any)
	require.Equal(t, jobA, plan["jid"])
	require.Len(t, plan["nodes"], 2)

	p := c.json("GET", "/jobs/"+jobA+"/plan", nil, 200)["plan"].(map[string]any)
	nodes := p["nodes"].([]any)
	in := nodes[1].(map[string]any)["inputs"].([]any)[0].(map[string]any)
	require.Equal(t, VertexID(1), in["id"])
	require.Equal(t, "REBALANCE", in["ship_strategy"])

	require.Equal(t, map[string]any{"status": "FINISHED"}, c.json("GET", "/jobs/"+jobB+"/status", nil, 200))

	cfg := c.json("GET", "/jobs/"+jobA+"/config", nil, 200)
	require.Equal(t, jobA, cfg["jid"])
	require.Equal(t, jobA, cfg["jobId"])
	ec := cfg["execution-config"].(map[string]any)
	require.Equal(t, cfg["executionConfigInfo"], ec)
	require.EqualValues(t, 2, ec["job-parallelism"])
	require.Equal(t, "fixed-delay (3 attempts, 1s)", ec["restart-strategy"])
	require.Equal(t, map[string]any{"k": "v"}, ec["user-config"])
}

func TestExceptions(t *testing.T) {
	_, c, _, _ := start(t)
	ex := c.json("GET", "/jobs/"+jobA+"/exceptions", nil, 200)
	require.Equal(t, "boom\ngoroutine 1 [running]:", ex["root-exception"])
	require.Equal(t, false, ex["truncated"])
	all := ex["all-exceptions"].([]any)
	require.Len(t, all, 1, "only task failures are execution exceptions")
	require.Equal(t, "Sink: print (1/1)", all[0].(map[string]any)["task"])
	hist := ex["exceptionHistory"].(map[string]any)
	entries := hist["entries"].([]any)
	require.Len(t, entries, 2)
	first := entries[0].(map[string]any)
	require.Equal(t, "panic", first["exceptionName"])
	require.Equal(t, "127.0.0.1:6121", first["location"])
	require.Len(t, first["concurrentExceptions"], 1)

	ex = c.json("GET", "/jobs/"+jobA+"/exceptions?maxExceptions=1", nil, 200)
	require.Len(t, ex["exceptionHistory"].(map[string]any)["entries"], 1)
	require.Equal(t, true, ex["exceptionHistory"].(map[string]any)["truncated"])
	c.errorOf("GET", "/jobs/"+jobA+"/exceptions?maxExceptions=-1", nil, 400)
	c.errorOf("GET", "/jobs/"+jobA+"/exceptions?maxExceptions=x", nil, 400)

	ex = c.json("GET", "/jobs/"+jobB+"/exceptions", nil, 200)
	require.NotContains(t, ex, "root-exception")
	require.Empty(t, ex["exceptionHistory"].(map[string]any)["entries"])
}

func TestCheckpointEndpoints(t *testing.T) {
	_, c, _, _ := start(t)
	st := c.json("GET", "/jobs/"+jobA+"/checkpoints", nil, 200)
	require.Equal(t, map[string]any{"restored": 1.0, "total": 4.0, "in_progress": 1.0, "completed": 2.0, "failed": 1.0}, st["counts"])
	hist := st["history"].([]any)
	require.Len(t, hist, 4)
	var classes []any
	for _, h := range hist {
		classes = append(classes, h.(map[string]any)["className"])
	}
	require.Equal(t, []any{"in_progress", "completed", "failed", "completed"}, classes)
	sp := hist[1].(map[string]any)
	require.Equal(t, "SAVEPOINT", sp["checkpoint_type"])
	require.Equal(t, true, sp["is_savepoint"])
	require.Equal(t, "file:///tmp/sp/savepoint-1", sp["external_path"])
	sum := st["summary"].(map[string]any)
	// Sizes of the two completed ones: 4096 and 8192.
	require.Equal(t, map[string]any{"min": 4096.0, "max": 8192.0, "avg": 6144.0, "p50": 4096.0, "p90": 8192.0, "p95": 8192.0, "p99": 8192.0, "p999": 8192.0},
		sum["checkpointed_size"])
	require.EqualValues(t, 2000, sum["end_to_end_duration"].(map[string]any)["max"])
	require.EqualValues(t, 900, sum["checkpoint_duration"].(map[string]any)["async"])
	latest := st["latest"].(map[string]any)
	require.EqualValues(t, 9, latest["completed"].(map[string]any)["id"])
	require.EqualValues(t, 8, latest["failed"].(map[string]any)["id"])
	require.Equal(t, "task failed", latest["failed"].(map[string]any)["failure_message"])
	require.EqualValues(t, 5, latest["restored"].(map[string]any)["id"])

	d := c.json("GET", "/jobs/"+jobA+"/checkpoints/details/7", nil, 200)
	require.EqualValues(t, 7, d["id"])
	require.Equal(t, "COMPLETED", d["status"])
	require.Equal(t, "completed", d["className"])
	require.EqualValues(t, 2, d["tasks"].(map[string]any)[VertexID(1)].(map[string]any)["num_acknowledged_subtasks"])
	require.Equal(t, "in_progress", c.json("GET", "/jobs/"+jobA+"/checkpoints/details/10", nil, 200)["className"])
	c.errorOf("GET", "/jobs/"+jobA+"/checkpoints/details/99", nil, 404)
	c.errorOf("GET", "/jobs/"+jobA+"/checkpoints/details/x", nil, 400)
	c.errorOf("GET", "/jobs/"+jobA+"/checkpoints/details/-1", nil, 400)

	empty := c.json("GET", "/jobs/"+jobB+"/checkpoints", nil, 200)
	require.Empty(t, empty["history"])
	require.Nil(t, empty["latest"].(map[string]any)["completed"])

	cc := c.json("GET", "/jobs/"+jobA+"/checkpoints/config", nil, 200)
	require.Equal(t, "EXACTLY_ONCE", cc["mode"])
	require.EqualValues(t, 10_000, cc["interval"])
	require.EqualValues(t, 600_000, cc["timeout"])
	require.Equal(t, map[string]any{"enabled": true, "delete_on_cancellation": false}, cc["externalization"])
	require.Equal(t, "heap", cc["state_backend"])
	// Without checkpointing: 404, as in Flink.
	msg := c.errorOf("GET", "/jobs/"+jobB+"/checkpoints/config", nil, 404)
	require.Contains(t, msg[0], "checkpointing is not enabled")
}

func TestVertexEndpoints(t *testing.T) {
	_, c, _, _ := start(t)
	base := "/jobs/" + jobA + "/vertices/" + VertexID(1)
	v := c.json("GET", base, nil, 200)
	require.Equal(t, "Source: numbers", v["name"])
	require.EqualValues(t, 2, v["parallelism"])
	subs := v["subtasks"].([]any)
	require.Len(t, subs, 2)
	s0 := subs[0].(map[string]any)
	require.Equal(t, "RUNNING", s0["status"])
	require.Equal(t, tmID, s0["taskmanager-id"])
	require.EqualValues(t, 100, s0["metrics"].(map[string]any)["write-records"])
	require.EqualValues(t, time.Minute.Milliseconds(), s0["duration"])

	bp := c.json("GET", base+"/backpressure", nil, 200)
	require.Equal(t, "ok", bp["status"])
	require.Equal(t, "high", bp["backpressure-level"], "the worst subtask decides")
	require.EqualValues(t, t0.UnixMilli(), bp["end-timestamp"])
	bsubs := bp["subtasks"].([]any)
	require.Equal(t, map[string]any{"subtask": 0.0, "attempt-number": 0.0, "backpressure-level": "high", "ratio": 0.7, "idleRatio": 0.1, "busyRatio": 0.2}, bsubs[0])
	require.Equal(t, "ok", bsubs[1].(map[string]any)["backpressure-level"])
	require.Equal(t, "ok", c.json("GET", "/jobs/"+jobA+"/vertices/"+VertexID(2)+"/backpressure", nil, 200)["backpressure-level"])

	wm := c.json("GET", base+"/watermarks", nil, 200)
	require.Equal(t, []any{
		map[string]any{"id": "0.currentInputWatermark", "value": "1000"},
		map[string]any{"id": "1.currentInputWatermark", "value": "-9223372036854775808"},
	}, wm["metrics"])

	for _, p := range []string{"", "/backpressure", "/watermarks"} {
		c.errorOf("GET", "/jobs/"+jobA+"/vertices/"+VertexID(7)+p, nil, 404)
		c.errorOf("GET", "/jobs/"+jobA+"/vertices/nope"+p, nil, 400)
		c.errorOf("GET", "/jobs/"+strings.Repeat("9", 32)+"/vertices/"+VertexID(1)+p, nil, 404)
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  string
	}{{0, "ok"}, {0.1, "ok"}, {0.11, "low"}, {0.5, "low"}, {0.51, "high"}, {1, "high"}} {
		require.Equal(t, tc.want, backPressureLevel(tc.ratio), "%v", tc.ratio)
	}
	require.Equal(t, 1.0, ratio(1500), "ratios are capped at 1")
	require.Equal(t, 0.0, ratio(-3))
}

func TestErrors(t *testing.T) {
	_, c, _, _ := start(t, func(cfg *Config) { cfg.MaxBodyBytes = 1024 })

	// Unknown and malformed ids.
	for _, p := range []string{"", "/plan", "/exceptions", "/config", "/checkpoints", "/checkpoints/config", "/status"} {
		c.errorOf("GET", "/jobs/"+strings.Repeat("0", 32)+p, nil, 404)
		c.errorOf("GET", "/jobs/XYZ"+p, nil, 400)
		c.errorOf("GET", "/jobs/"+strings.ToUpper(jobA)+p, nil, 400)
	}
	c.errorOf("GET", "/jobs/"+jobA+"/savepoints/"+strings.Repeat("1", 32), nil, 404)
	c.errorOf("GET", "/jobs/"+jobA+"/savepoints/zz", nil, 400)
	c.errorOf("GET", "/savepoint-disposal/"+strings.Repeat("1", 32), nil, 404)
	c.errorOf("GET", "/savepoint-disposal/1", nil, 400)

	// Unknown paths.
	msg := c.errorOf("GET", "/nope", nil, 404)
	require.Equal(t, "Not found: /nope", msg[0])
	c.errorOf("GET", "/jobs/"+jobA+"/nope", nil, 404)
	c.errorOf("GET", "/jobs/"+jobA+"/../"+jobB, nil, 404)
	c.errorOf("GET", "/jobs//overview", nil, 404)

	// Wrong methods: 405 with Allow.
	for _, tc := range []struct{ method, path, allow string }{
		// /jobs/{jobid} takes PATCH, and "overview" could be a job id.
		{"POST", "/jobs/overview", "GET, HEAD, PATCH"},
		{"DELETE", "/jobs/" + jobA, "GET, HEAD, PATCH"},
		{"GET", "/jobs/" + jobA + "/savepoints", "POST"},
		{"PUT", "/jars/upload", "DELETE, POST"}, // "upload" could be a jar id
		{"GET", "/jars/x/run", "POST"},
		{"PATCH", "/config", "GET, HEAD"},
	} {
		req, err := http.NewRequest(tc.method, c.base+tc.path, nil)
		require.NoError(t, err)
		resp, err := c.hc.Do(req)
		require.NoError(t, err)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 405, resp.StatusCode, "%s %s: %s", tc.method, tc.path, data)
		require.Equal(t, tc.allow, resp.Header.Get("Allow"), "%s %s", tc.method, tc.path)
		c.sp.validate(t, req, resp.StatusCode, resp.Header, data)
		require.Contains(t, string(data), `"errors"`)
	}

	// Malformed bodies.
	sp := "/jobs/" + jobA + "/savepoints"
	c.errorOf("POST", sp, []byte("{"), 400)
	c.errorOf("POST", sp, []byte(`{"target-directory": 5}`), 400)
	c.errorOf("POST", sp, []byte(`{"unknown": 1}`), 400)
	c.errorOf("POST", sp, []byte(`{} {}`), 400)
	c.errorOf("POST", sp, []byte(`{}}`), 400)
	c.errorOf("POST", sp, []byte(`[]`), 400)
	c.errorOf("POST", sp, map[string]any{"triggerId": "short"}, 400)
	c.errorOf("POST", sp, map[string]any{"formatType": "ZIP"}, 400)
	c.errorOf("POST", "/jobs/"+jobA+"/stop", []byte(`{"drain": "yes"}`), 400)
	c.errorOf("POST", "/savepoint-disposal", []byte(`{"savepoint-path": ""}`), 400)
	c.errorOf("POST", "/savepoint-disposal", []byte(`{}`), 400)
	c.errorOf("POST", "/savepoint-disposal", nil, 400)
	// Over MaxBodyBytes.
	big := fmt.Sprintf(`{"target-directory": %q}`, strings.Repeat("x", 2048))
	msg = c.errorOf("POST", sp, []byte(big), 413)
	require.Contains(t, msg[0], "1024")

	// Flink's /v1 prefix.
	require.Equal(t, jobA, c.json("GET", "/v1/jobs/"+jobA, nil, 200)["jid"])
}

func TestCancelJob(t *testing.T) {
	f, c, _, _ := start(t)
	code, body := c.do("PATCH", "/jobs/"+jobA+"?mode=cancel", nil)
	require.Equal(t, 202, code, "%s", body)
	require.Equal(t, []string{jobA}, f.cancelled)
	require.Equal(t, "CANCELLING", c.json("GET", "/jobs/"+jobA, nil, 200)["state"])
	// Without mode: cancel, Flink's default.
	code, _ = c.do("PATCH", "/jobs/"+jobA, nil)
	require.Equal(t, 202, code)
	require.Len(t, f.cancelled, 2)

	msg := c.errorOf("PATCH", "/jobs/"+jobB+"?mode=cancel", nil, 409)
	require.Contains(t, msg[0], "already ended")
	c.errorOf("PATCH", "/jobs/"+jobA+"?mode=stop", nil, 400)
	c.errorOf("PATCH", "/jobs/"+jobA+"?mode=kill", nil, 400)
	c.errorOf("PATCH", "/jobs/"+strings.Repeat("3", 32)+"?mode=cancel", nil, 404)
	require.Len(t, f.cancelled, 2)
}

// poll reads an operation's status until it is COMPLETED.
func poll(t *testing.T, c *client, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.json("GET", path, nil, 200)
		if r["status"].(map[string]any)["id"] == "COMPLETED" {
			return r
		}
		require.True(t, time.Now().Before(deadline), "operation %s did not complete", path)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSavepointOperations(t *testing.T) {
	f, c, _, _ := start(t)
	f.gate = make(chan struct{})

	r := c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "file:///sp", "cancel-job": false}, 202)
	tid := r["request-id"].(string)
	require.True(t, hex32(tid), tid)
	st := c.json("GET", "/jobs/"+jobA+"/savepoints/"+tid, nil, 200)
	require.Equal(t, map[string]any{"status": map[string]any{"id": "IN_PROGRESS"}}, st)
	// The trigger id belongs to the job.
	c.errorOf("GET", "/jobs/"+jobB+"/savepoints/"+tid, nil, 404)

	// A client-chosen trigger id is idempotent: the same POST again starts
	// no second savepoint.
	mine := strings.Repeat("ab", 16)
	for range 2 {
		r = c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "file:///sp", "triggerId": mine}, 202)
		require.Equal(t, mine, r["request-id"])
	}
	close(f.gate)
	done := poll(t, c, "/jobs/"+jobA+"/savepoints/"+tid)
	loc := done["operation"].(map[string]any)["location"].(string)
	require.True(t, strings.HasPrefix(loc, "file:///sp/savepoint-"), loc)
	poll(t, c, "/jobs/"+jobA+"/savepoints/"+mine)
	f.mu.Lock()
	require.Len(t, f.calls, 2)
	require.Equal(t, SavepointRequest{TargetDirectory: "file:///sp", Format: "CANONICAL"}, f.calls[0])
	f.mu.Unlock()

	// A failed savepoint completes with its cause.
	r = c.json("POST", "/jobs/"+jobA+"/savepoints", nil, 202)
	failed := poll(t, c, "/jobs/"+jobA+"/savepoints/"+r["request-id"].(string))
	cause := failed["operation"].(map[string]any)["failure-cause"].(map[string]any)
	require.Contains(t, cause["stack-trace"], "no default savepoint directory")

	// An unknown job is refused at once.
	c.errorOf("POST", "/jobs/"+strings.Repeat("5", 32)+"/savepoints", map[string]any{"target-directory": "/x"}, 404)
	c.errorOf("POST", "/jobs/"+strings.Repeat("5", 32)+"/stop", map[string]any{}, 404)

	// Stop with savepoint, drained; its status is read where savepoints' are.
	r = c.json("POST", "/jobs/"+jobA+"/stop", map[string]any{"targetDirectory": "/stop", "drain": true, "formatType": "NATIVE"}, 202)
	done = poll(t, c, "/jobs/"+jobA+"/savepoints/"+r["request-id"].(string))
	require.True(t, strings.HasPrefix(done["operation"].(map[string]any)["location"].(string), "/stop/savepoint-"))
	f.mu.Lock()
	require.Equal(t, SavepointRequest{TargetDirectory: "/stop", Stop: true, Drain: true, Format: "NATIVE"}, f.calls[len(f.calls)-1])
	f.mu.Unlock()
	require.Equal(t, "FINISHED", c.json("GET", "/jobs/"+jobA, nil, 200)["state"])

	// The job has ended: a new savepoint fails in the operation (409 is
	// the cluster's, inside the result).
	r = c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "/x"}, 202)
	failed = poll(t, c, "/jobs/"+jobA+"/savepoints/"+r["request-id"].(string))
	require.Contains(t, failed["operation"].(map[string]any)["failure-cause"].(map[string]any)["stack-trace"], "FINISHED")
}

func TestSavepointDisposal(t *testing.T) {
	f, c, _, _ := start(t)
	r := c.json("POST", "/savepoint-disposal", map[string]any{"savepoint-path": "file:///tmp/sp/savepoint-1"}, 200)
	done := poll(t, c, "/savepoint-disposal/"+r["request-id"].(string))
	require.Equal(t, map[string]any{"status": map[string]any{"id": "COMPLETED"}, "operation": map[string]any{}}, done)
	f.mu.Lock()
	require.Empty(t, f.savepoints)
	f.mu.Unlock()

	// Again: it is gone.
	r = c.json("POST", "/savepoint-disposal", map[string]any{"savepoint-path": "file:///tmp/sp/savepoint-1"}, 200)
	done = poll(t, c, "/savepoint-disposal/"+r["request-id"].(string))
	require.Contains(t, done["operation"].(map[string]any)["failure-cause"].(map[string]any)["stack-trace"], "no savepoint at")
}

func TestOperationsExpireAndAreBounded(t *testing.T) {
	f, c, _, clock := start(t, func(cfg *Config) { cfg.MaxOperations = 2; cfg.OperationTTL = time.Minute })
	f.savepoints["a"], f.savepoints["b"] = true, true
	r1 := c.json("POST", "/savepoint-disposal", map[string]any{"savepoint-path": "a"}, 200)["request-id"].(string)
	poll(t, c, "/savepoint-disposal/"+r1)
	f.gate = make(chan struct{})
	r2 := c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "/x"}, 202)["request-id"].(string)
	// Two kept (one ended, one running): a third is refused.
	msg := c.errorOf("POST", "/savepoint-disposal", map[string]any{"savepoint-path": "b"}, 429)
	require.Contains(t, msg[0], "Too many")
	// Once the ended one expires there is room again; the running one stays.
	clock.advance(time.Minute + time.Second)
	c.errorOf("GET", "/savepoint-disposal/"+r1, nil, 404)
	c.json("GET", "/jobs/"+jobA+"/savepoints/"+r2, nil, 200)
	r3 := c.json("POST", "/savepoint-disposal", map[string]any{"savepoint-path": "b"}, 200)["request-id"].(string)
	poll(t, c, "/savepoint-disposal/"+r3)
	close(f.gate)
	poll(t, c, "/jobs/"+jobA+"/savepoints/"+r2)
}

// TestCloseCancelsOperations: a savepoint still running when the server
// closes is cancelled through its context and waited for (goleak checks
// nothing is left).
func TestCloseCancelsOperations(t *testing.T) {
	f := newFakeCluster(t0)
	f.gate = make(chan struct{}) // never opened
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: f, Logger: quietLogger})
	require.NoError(t, err)
	c := newClient(t, s)
	c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "/x"}, 202)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a running savepoint")
	}
	require.NoError(t, s.Close(), "Close twice")
	_, err = c.hc.Get(s.URL() + "/jobs")
	require.Error(t, err, "the listener is closed")
}

// blockingCluster blocks Jobs until the request's context ends.
type blockingCluster struct {
	*fakeCluster
	entered chan struct{}
	left    chan error
}

func (b *blockingCluster) Jobs(ctx context.Context) ([]JobSummary, error) {
	b.entered <- struct{}{}
	<-ctx.Done()
	b.left <- ctx.Err()
	return nil, ctx.Err()
}

func TestHandlersHonourRequestContext(t *testing.T) {
	b := &blockingCluster{fakeCluster: newFakeCluster(t0), entered: make(chan struct{}, 1), left: make(chan error, 1)}
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: b, Logger: quietLogger})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL()+"/jobs", nil)
	require.NoError(t, err)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-b.entered
	cancel() // the client goes away
	select {
	case err := <-b.left:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not see the client go away")
	}
	require.Error(t, <-errc)
}

// upload builds a multipart body with the binary in field (and an extra
// text field before it, as browsers send).
func upload(field, name string, data []byte) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("note", "ignored")
	fw, _ := w.CreateFormFile(field, name)
	_, _ = fw.Write(data)
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

var elf = append([]byte("\x7fELF"), bytes.Repeat([]byte{1}, 1000)...)

func TestJars(t *testing.T) {
	f, c, _, _ := start(t, func(cfg *Config) { cfg.MaxUploadBytes = 64 << 10 })

	require.Empty(t, c.json("GET", "/jars", nil, 200)["files"])

	body, ct := upload("jarfile", "../../wordcount", elf)
	code, data := c.do("POST", "/jars/upload", body, "Content-Type", ct)
	require.Equal(t, 200, code, "%s", data)
	require.JSONEq(t, `{"filename": "/blobs/00000001_wordcount", "status": "success"}`, string(data))
	id := "00000001_wordcount"
	f.mu.Lock()
	require.Equal(t, elf, f.blobs[id], "stored byte for byte, under its base name")
	f.mu.Unlock()

	list := c.json("GET", "/jars", nil, 200)
	require.True(t, strings.HasPrefix(list["address"].(string), "http://127.0.0.1:"))
	files := list["files"].([]any)
	require.Len(t, files, 1)
	require.Equal(t, map[string]any{"id": id, "name": "wordcount", "uploaded": float64(t0.Add(time.Millisecond).UnixMilli()),
		"entry": []any{map[string]any{"name": "main", "description": "the job's main"}}}, files[0])

	// Plan: GET with query parameters, POST with a body.
	p := c.json("GET", "/jars/"+id+"/plan?programArg=--rate,5&parallelism=3", nil, 200)["plan"].(map[string]any)
	require.Equal(t, id+" --rate 5", p["name"])
	require.EqualValues(t, 3, p["nodes"].([]any)[0].(map[string]any)["parallelism"])
	p = c.json("POST", "/jars/"+id+"/plan", map[string]any{"programArgsList": []string{"a b", "c"}, "parallelism": 2}, 200)["plan"].(map[string]any)
	require.Equal(t, id+" a b c", p["name"])
	p = c.json("POST", "/jars/"+id+"/plan", map[string]any{"programArgs": "x  y"}, 200)["plan"].(map[string]any)
	require.Equal(t, id+" x y", p["name"])
	c.errorOf("POST", "/jars/"+id+"/plan", map[string]any{"parallelism": -2}, 400)
	c.errorOf("GET", "/jars/"+id+"/plan?parallelism=many", nil, 400)
	c.errorOf("GET", "/jars/nope/plan", nil, 404)

	// Run: the job appears.
	want := strings.Repeat("c", 32)
	r := c.json("POST", "/jars/"+id+"/run", map[string]any{"jobId": want, "parallelism": 1, "savepointPath": "/sp/1", "allowNonRestoredState": true}, 200)
	require.Equal(t, map[string]any{"jobid": want}, r)
	require.Equal(t, "CREATED", c.json("GET", "/jobs/"+want, nil, 200)["state"])
	c.errorOf("POST", "/jars/"+id+"/run", map[string]any{"jobId": want}, 409)
	r = c.json("POST", "/jars/"+id+"/run?allowNonRestoredState=true", nil, 200)
	require.True(t, hex32(r["jobid"].(string)))
	c.errorOf("POST", "/jars/"+id+"/run", map[string]any{"jobId": "nothex"}, 400)
	c.errorOf("POST", "/jars/"+id+"/run", map[string]any{"restoreMode": "MOVE"}, 400)
	c.errorOf("POST", "/jars/"+id+"/run?allowNonRestoredState=perhaps", nil, 400)
	c.errorOf("POST", "/jars/nope/run", nil, 404)

	// Refused uploads.
	body, ct = upload("file", "x", elf)
	c.errorOf("POST", "/jars/upload", body, 400)
	code, data = c.do("POST", "/jars/upload", body, "Content-Type", ct)
	require.Equal(t, 400, code, "no jarfile field: %s", data)
	body, ct = upload("jarfile", "notes.txt", []byte("hello"))
	code, data = c.do("POST", "/jars/upload", body, "Content-Type", ct)
	require.Equal(t, 400, code, "not a binary: %s", data)
	code, data = c.do("POST", "/jars/upload", []byte("--x\r\nbroken"), "Content-Type", "multipart/form-data; boundary=x")
	require.Equal(t, 400, code, "broken multipart: %s", data)
	require.Len(t, c.json("GET", "/jars", nil, 200)["files"], 1, "refused uploads keep nothing")

	// Delete.
	code, _ = c.do("DELETE", "/jars/"+id, nil)
	require.Equal(t, 200, code)
	c.errorOf("DELETE", "/jars/"+id, nil, 404)
	require.Empty(t, c.json("GET", "/jars", nil, 200)["files"])
}

func TestUploadOverLimit(t *testing.T) {
	f, c, s, _ := start(t, func(cfg *Config) { cfg.MaxUploadBytes = 64 << 10 })
	// Far over the limit, so the server cannot just drain what it refuses.
	big := append([]byte("\x7fELF"), bytes.Repeat([]byte{2}, 4<<20)...)
	body, ct := upload("jarfile", "big", big)

	// With a Content-Length: refused before reading.
	code, data := c.do("POST", "/jars/upload", body, "Content-Type", ct)
	require.Equal(t, 413, code, "%s", data)
	require.Contains(t, string(data), "65536")

	// Chunked (no length known): refused once the limit is passed.
	req, err := http.NewRequest("POST", s.URL()+"/jars/upload", io.MultiReader(bytes.NewReader(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ct)
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 413, resp.StatusCode, "%s", data)
	c.sp.validate(t, req, resp.StatusCode, resp.Header, data)

	f.mu.Lock()
	require.Empty(t, f.binaries, "nothing of a refused upload is kept")
	f.mu.Unlock()
}

// TestStalledBodyTimesOut: a client that sends its headers and part of
// its body, then nothing, gets 408 once BodyTimeout has passed; the
// handler does not wait for ever.
func TestStalledBodyTimesOut(t *testing.T) {
	_, c, s, _ := start(t, func(cfg *Config) { cfg.BodyTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /jobs/%s/savepoints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", jobA)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%s", data)
	req, _ := http.NewRequest("POST", "/jobs/"+jobA+"/savepoints", nil)
	c.sp.validate(t, req, resp.StatusCode, resp.Header, data)
}

// TestRoutesAreFlinks: every path and method served is one of Flink's
// spec, under the same name, and every endpoint the issue asks for is
// served. The manual checkpoint trigger is Flink 1.17's, after the 1.16
// spec this API follows (and `strom checkpoint` uses).
func TestRoutesAreFlinks(t *testing.T) {
	sp := loadSpec(t)
	var s Server
	served := map[string]bool{}
	flink117 := map[string]bool{"POST /jobs/{jobid}/checkpoints": true, "GET /jobs/{jobid}/checkpoints/{triggerid}": true}
	for _, rt := range s.table() {
		if len(rt.methods) == 1 {
			for m := range rt.methods {
				if flink117[m+" "+rt.pattern] {
					served[m+" "+rt.pattern] = true
				}
			}
			if served["GET "+rt.pattern] && flink117["GET "+rt.pattern] {
				continue
			}
		}
		item := sp.Doc().Paths.Find(rt.pattern)
		require.NotNil(t, item, "%s is not a path of Flink's spec", rt.pattern)
		for m := range rt.methods {
			served[m+" "+rt.pattern] = true
			if flink117[m+" "+rt.pattern] {
				continue
			}
			require.NotNil(t, item.GetOperation(m), "%s %s is not in Flink's spec", m, rt.pattern)
		}
	}
	for _, want := range []string{
		"GET /config", "GET /overview", "GET /jobs", "GET /jobs/overview", "GET /jobs/{jobid}", "PATCH /jobs/{jobid}",
		"GET /jobs/{jobid}/plan", "GET /jobs/{jobid}/exceptions", "GET /jobs/{jobid}/config", "GET /jobs/{jobid}/checkpoints",
		"GET /jobs/{jobid}/checkpoints/config", "GET /jobs/{jobid}/checkpoints/details/{checkpointid}",
		"GET /jobs/{jobid}/vertices/{vertexid}", "GET /jobs/{jobid}/vertices/{vertexid}/backpressure",
		"GET /jobs/{jobid}/vertices/{vertexid}/watermarks", "POST /jobs/{jobid}/savepoints", "GET /jobs/{jobid}/savepoints/{triggerid}",
		"POST /jobs/{jobid}/stop", "GET /taskmanagers", "GET /taskmanagers/{taskmanagerid}", "GET /jars", "POST /jars/upload",
		"GET /jars/{jarid}/plan", "POST /jars/{jarid}/run", "DELETE /jars/{jarid}", "POST /savepoint-disposal",
		"GET /savepoint-disposal/{triggerid}", "POST /jobs", "GET /jobs/{jobid}/execution-result",
	} {
		require.True(t, served[want], "%s is not served", want)
	}
}

// slowRunCluster takes its time to run a binary and reports whether the
// request's context was still live at the end.
type slowRunCluster struct {
	*fakeCluster
	ctxErr chan error
}

func (s *slowRunCluster) RunBinary(ctx context.Context, id string, opts RunOptions) (string, error) {
	time.Sleep(400 * time.Millisecond)
	s.ctxErr <- ctx.Err()
	return strings.Repeat("e", 32), nil
}

// TestBodyTimeoutEndsWithTheBody: BodyTimeout bounds the body only, not
// the handler: one that works longer than BodyTimeout after reading the
// body keeps a live context and answers.
func TestBodyTimeoutEndsWithTheBody(t *testing.T) {
	sc := &slowRunCluster{fakeCluster: newFakeCluster(t0), ctxErr: make(chan error, 1)}
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: sc, Logger: quietLogger, BodyTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	c := newClient(t, s)
	r := c.json("POST", "/jars/any/run", map[string]any{"programArgsList": []string{"a"}}, 200)
	require.Equal(t, strings.Repeat("e", 32), r["jobid"])
	require.NoError(t, <-sc.ctxErr)
}

// pathCheckingCluster fails the test if a binary id that names a path
// reaches the store.
type pathCheckingCluster struct {
	*fakeCluster
	t *testing.T
}

func (p *pathCheckingCluster) check(id string) {
	if id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		p.t.Errorf("binary id %q reached the Cluster", id)
	}
}

func (p *pathCheckingCluster) DeleteBinary(ctx context.Context, id string) error {
	p.check(id)
	return p.fakeCluster.DeleteBinary(ctx, id)
}

func (p *pathCheckingCluster) BinaryPlan(ctx context.Context, id string, opts RunOptions) (Plan, error) {
	p.check(id)
	return p.fakeCluster.BinaryPlan(ctx, id, opts)
}

func (p *pathCheckingCluster) RunBinary(ctx context.Context, id string, opts RunOptions) (string, error) {
	p.check(id)
	return p.fakeCluster.RunBinary(ctx, id, opts)
}

func TestBinaryIDsThatNamePathsAreRefused(t *testing.T) {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: &pathCheckingCluster{fakeCluster: newFakeCluster(t0), t: t}, Logger: quietLogger})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	c := newClient(t, s)
	for _, id := range []string{"..%2F..%2Fetc%2Fpasswd", "a%2Fb", "a%5Cb", "%2E%2E", "x%00y"} {
		c.errorOf("DELETE", "/jars/"+id, nil, 404)
		c.errorOf("POST", "/jars/"+id+"/run", nil, 404)
		c.errorOf("GET", "/jars/"+id+"/plan", nil, 404)
	}
	// An ordinary unknown id does reach the Cluster (which says 404).
	c.errorOf("DELETE", "/jars/unknown.bin", nil, 404)
}

// panickingCluster panics in Jobs, as a bug would.
type panickingCluster struct{ *fakeCluster }

func (panickingCluster) Jobs(context.Context) ([]JobSummary, error) { panic("bug") }

// TestHandlerPanicIsA500: a bug behind a handler is answered with a JSON
// 500 and the server serves on.
func TestHandlerPanicIsA500(t *testing.T) {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Cluster: panickingCluster{newFakeCluster(t0)},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	c := newClient(t, s)
	msg := c.errorOf("GET", "/jobs", nil, 500)
	require.Equal(t, "Internal server error.", msg[0])
	require.Equal(t, "numbers", c.json("GET", "/jobs/"+jobA, nil, 200)["name"])
}

func TestExecutionResult(t *testing.T) {
	f, c, _, _ := start(t)
	require.Equal(t, map[string]any{"status": map[string]any{"id": "IN_PROGRESS"}}, c.json("GET", "/jobs/"+jobA+"/execution-result", nil, 200))

	r := c.json("GET", "/jobs/"+jobB+"/execution-result", nil, 200)
	require.Equal(t, "COMPLETED", r["status"].(map[string]any)["id"])
	res := r["job-execution-result"].(map[string]any)
	require.Equal(t, jobB, res["id"])
	require.Equal(t, "SUCCEEDED", res["application-status"])
	require.EqualValues(t, 10_000, res["net-runtime"])
	require.Equal(t, true, res["success"])
	require.NotContains(t, res, "failure-cause")

	f.mu.Lock()
	f.jobs[0].State, f.jobs[0].End = "FAILED", t0
	f.mu.Unlock()
	res = c.json("GET", "/jobs/"+jobA+"/execution-result", nil, 200)["job-execution-result"].(map[string]any)
	require.Equal(t, "FAILED", res["application-status"])
	require.Equal(t, false, res["success"])
	require.Equal(t, "boom\ngoroutine 1 [running]:", res["failure-cause"].(map[string]any)["stack-trace"])

	c.errorOf("GET", "/jobs/"+strings.Repeat("1", 32)+"/execution-result", nil, 404)
}

// TestConcurrentRequests mixes reads, savepoints and their status reads
// from several clients at once (for the race detector), each answer
// validated against the spec. (A failed require in a goroutine marks the
// test failed and ends that goroutine only; wg.Go still counts it done.)
func TestConcurrentRequests(t *testing.T) {
	_, c, _, _ := start(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 6 {
		wg.Go(func() {
			for i := range 10 {
				switch (g + i) % 4 {
				case 0:
					r := c.json("POST", "/jobs/"+jobA+"/savepoints", map[string]any{"target-directory": "/sp"}, 202)
					st := poll(t, c, "/jobs/"+jobA+"/savepoints/"+r["request-id"].(string))
					if _, ok := st["operation"].(map[string]any)["location"]; !ok {
						errs <- fmt.Sprintf("savepoint without location: %v", st)
					}
				case 1:
					c.json("GET", "/jobs/overview", nil, 200)
				case 2:
					c.json("GET", "/jobs/"+jobA+"/vertices/"+VertexID(1)+"/backpressure", nil, 200)
				case 3:
					c.json("GET", "/jobs/"+jobA+"/checkpoints", nil, 200)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A checkpoint asked for by hand (Flink 1.17's trigger): 202 with a
// trigger id, whose status carries the checkpoint's id; an unknown job is
// a 404, a bad checkpoint type or trigger id a 400, an unknown trigger a
// 404.
func TestManualCheckpointTrigger(t *testing.T) {
	_, _, srv, _ := start(t)
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL()+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		return resp.StatusCode, v
	}
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		return resp.StatusCode, v
	}
	code, v := post("/jobs/"+jobA+"/checkpoints", `{}`)
	require.Equal(t, http.StatusAccepted, code, "%v", v)
	tid, _ := v["request-id"].(string)
	require.Len(t, tid, 32)
	require.Eventually(t, func() bool {
		code, v = get("/jobs/" + jobA + "/checkpoints/" + tid)
		return code == http.StatusOK && v["status"].(map[string]any)["id"] == "COMPLETED"
	}, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 42, v["operation"].(map[string]any)["checkpointId"])
	// The savepoint status of the same trigger id knows nothing of it.
	code, _ = get("/jobs/" + jobA + "/savepoints/" + tid)
	require.Equal(t, http.StatusNotFound, code)

	code, _ = post("/jobs/"+strings.Repeat("0", 32)+"/checkpoints", `{}`)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = post("/jobs/"+jobA+"/checkpoints", `{"checkpointType": "INCREMENTAL"}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = post("/jobs/"+jobA+"/checkpoints", `{"triggerId": "nope"}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = get("/jobs/" + jobA + "/checkpoints/" + strings.Repeat("a", 32))
	require.Equal(t, http.StatusNotFound, code)
}
