package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/rest"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

func testGraph() *jobgraph.JobGraph {
	return &jobgraph.JobGraph{JobName: "wc", Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "Source: words", Parallelism: 1, MaxParallelism: 128, Operators: []jobgraph.OperatorInfo{{Name: "words", UID: "src"}}},
		{ID: 1, Name: "Count -> Sink", Parallelism: 2, MaxParallelism: 128, Operators: []jobgraph.OperatorInfo{{Name: "Count", UID: "count"}, {Name: "Sink", UID: "sink"}}},
	}, Edges: []*jobgraph.JobEdge{{From: 0, To: 1, Partition: jobgraph.Hash}}}
}

// script stores a shell script as a job binary and returns its id.
func script(t *testing.T, a *REST, body string) string {
	t.Helper()
	b, err := a.UploadBinary(context.Background(), "job", strings.NewReader("#!/bin/sh\n"+body+"\n"))
	require.NoError(t, err)
	return b.ID
}

// A binary's plan comes from running it with STROM_PRINT_PLAN=1 in a child
// process; a binary that fails, hangs or prints something else is refused
// as invalid, with what it said.
func TestBinaryPlanRunsTheBinaryForItsJobGraph(t *testing.T) {
	ctx := context.Background()
	store, err := NewDirStore(t.TempDir(), 0)
	require.NoError(t, err)
	var mu sync.Mutex
	var ran []string
	a := (&Dispatcher{}).REST(RESTConfig{Binaries: store, PlanTimeout: 500 * time.Millisecond,
		Run: func(_ context.Context, jobID string, jg *jobgraph.JobGraph, b StoredBinary, opts rest.RunOptions) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, fmt.Sprintf("%s %s %s %v", jobID, jg.JobName, b.ID, opts.Args))
			return nil
		}})
	data, err := json.Marshal(testGraph())
	require.NoError(t, err)
	good := script(t, a, `[ "$STROM_PRINT_PLAN" = 1 ] || { echo "would run the job" >&2; exit 3; }
[ "$1" = "--in" ] || { echo "args: $*" >&2; exit 4; }
cat <<'JSON'
`+string(data)+`
JSON`)

	plan, err := a.BinaryPlan(ctx, good, rest.RunOptions{Args: []string{"--in", "x"}})
	require.NoError(t, err)
	require.Equal(t, "wc", plan.Name)
	require.Len(t, plan.Nodes, 2)
	require.Equal(t, rest.VertexID(1), plan.Nodes[1].ID)
	require.Equal(t, rest.VertexID(0), plan.Nodes[1].Inputs[0].ID)

	_, err = a.BinaryPlan(ctx, good, rest.RunOptions{})
	require.ErrorIs(t, err, rest.ErrInvalid)
	require.ErrorContains(t, err, "args:")

	id, err := a.RunBinary(ctx, good, rest.RunOptions{Args: []string{"--in", "y"}, JobID: strings.Repeat("ab", 16)})
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("ab", 16), id)
	id2, err := a.RunBinary(ctx, good, rest.RunOptions{Args: []string{"--in", "z"}})
	require.NoError(t, err)
	require.Regexp(t, `^[0-9a-f]{32}$`, id2)
	require.Equal(t, []string{id + " wc " + good + " [--in y]", id2 + " wc " + good + " [--in z]"}, ran)

	for name, tc := range map[string]struct {
		body, want string
	}{
		"fails":       {`echo "boom" >&2; exit 1`, "boom"},
		"hangs":       {`exec sleep 30`, "did not print its job graph within"},
		"prints junk": {`echo hello`, "printed no job graph"},
	} {
		_, err := a.BinaryPlan(ctx, script(t, a, tc.body), rest.RunOptions{})
		require.ErrorIs(t, err, rest.ErrInvalid, name)
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err = a.BinaryPlan(ctx, good, rest.RunOptions{Parallelism: 4})
	require.ErrorIs(t, err, rest.ErrInvalid)
	_, err = a.BinaryPlan(ctx, strings.Repeat("0", 64), rest.RunOptions{})
	require.ErrorIs(t, err, rest.ErrNotFound)
	require.ErrorIs(t, a.DeleteBinary(ctx, "nope"), rest.ErrNotFound)

	// Without a way to run binaries (the embedded cluster) a run is refused.
	noRun := (&Dispatcher{}).REST(RESTConfig{Binaries: store})
	_, err = noRun.RunBinary(ctx, good, rest.RunOptions{Args: []string{"--in", "x"}})
	require.ErrorContains(t, err, "cannot run job binaries")
	bs, err := noRun.Binaries(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 4) // the good one and the three refused
	require.Equal(t, filepath.Join(filepath.Dir(bs[0].Path), bs[0].ID), bs[0].Path)
	_, err = os.Stat(bs[0].Path)
	require.NoError(t, err)
}

// A run from a savepoint that is not there (no directory, or no metadata
// in it) is refused as invalid before the job exists; a savepoint that is
// there but wrong (here: corrupt metadata) is left to the JobMaster.
func TestRunFromMissingSavepointIsRefused(t *testing.T) {
	ctx := context.Background()
	store, err := NewDirStore(t.TempDir(), 0)
	require.NoError(t, err)
	var runs atomic.Int32
	a := (&Dispatcher{}).REST(RESTConfig{Binaries: store, PlanTimeout: 5 * time.Second,
		Run: func(context.Context, string, *jobgraph.JobGraph, StoredBinary, rest.RunOptions) error {
			runs.Add(1)
			return nil
		}})
	data, err := json.Marshal(testGraph())
	require.NoError(t, err)
	bin := script(t, a, "cat <<'JSON'\n"+string(data)+"\nJSON")

	empty := t.TempDir()
	for _, sp := range []string{filepath.Join(t.TempDir(), "nope"), "file://" + filepath.Join(t.TempDir(), "nope"), empty} {
		_, err := a.RunBinary(ctx, bin, rest.RunOptions{SavepointPath: sp})
		require.ErrorIs(t, err, rest.ErrInvalid, sp)
		require.ErrorContains(t, err, sp)
	}
	require.Zero(t, runs.Load(), "a job was started from a missing savepoint")

	require.NoError(t, os.WriteFile(filepath.Join(empty, "_metadata"), []byte("garbage"), 0o644))
	_, err = a.RunBinary(ctx, bin, rest.RunOptions{SavepointPath: empty})
	require.NoError(t, err)
	require.EqualValues(t, 1, runs.Load())
}

// The adapter answers from what the JobMasters report: a job's state times,
// subtasks with their TaskManager and time rates, exceptions and
// checkpoint statistics; an unknown job is ErrNotFound and cancelling an
// ended one ErrConflict.
func TestRESTAnswersFromJobMasterReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	net := rpc.NewLocal()
	d, err := New(Config{Address: "dispatcher", Transport: net, StartJobMaster: func(Submission, string, string) error { return nil }})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	a := d.REST(RESTConfig{})
	const id = "0123456789abcdef0123456789abcdef"
	_, err = d.Submit(Submission{JobID: id, JobName: "wc", JobGraph: testGraph()})
	require.NoError(t, err)

	j, err := a.Job(ctx, id)
	require.NoError(t, err)
	require.Equal(t, rest.JobState("CREATED"), j.State)
	require.Equal(t, 3, j.Tasks["CREATED"])
	require.Len(t, j.Vertices[1].Subtasks, 2)
	_, err = a.Job(ctx, strings.Repeat("f", 32))
	require.ErrorIs(t, err, rest.ErrNotFound)
	require.ErrorIs(t, err, ErrUnknownJob)
	_, err = a.CheckpointConfig(ctx, id)
	require.ErrorIs(t, err, rest.ErrNotFound, "no checkpointing reported")

	t0 := time.Now().Add(-time.Second).UTC()
	exec := func(v, i int, st scheduler.ExecState, m *rpc.TaskMetrics) rpc.ExecutionStatus {
		return rpc.ExecutionStatus{ID: scheduler.ExecutionID{Vertex: v, Subtask: i, Attempt: 1}, State: st,
			Slot: scheduler.SlotID{TaskManager: "tm-1", Index: i}, Start: t0, Metrics: m}
	}
	srcMetrics := &rpc.TaskMetrics{BusyMsPerSecond: 100, BackPressuredMsPerSecond: 900,
		Operators: []rpc.OperatorMetrics{{RecordsIn: 0, RecordsOut: 50, Watermark: 1234}}}
	gw := net.Dispatcher("dispatcher")
	require.NoError(t, gw.UpdateJobStatus(rpc.JobStatus{JobID: id, State: scheduler.JobRunning, Restarts: 1,
		Executions: []rpc.ExecutionStatus{exec(0, 0, scheduler.Running, srcMetrics), exec(1, 0, scheduler.Running, nil), exec(1, 1, scheduler.Deploying, nil)},
		Details: rpc.JobDetails{
			Exceptions: []rpc.JobException{{Time: t0, TaskManager: "tm-1", Failure: rpc.Failure{Message: "boom", Task: "Count -> Sink", Subtask: 1, Parallelism: 2, Stack: "goroutine 7"}}},
			Checkpoints: rpc.CheckpointStats{Total: 2, Completed: 1, Failed: 1, History: []rpc.CheckpointRecord{
				{ID: 2, Status: "FAILED", Triggered: t0, Duration: time.Second, FailureMessage: "expired"},
				{ID: 1, Status: "COMPLETED", Triggered: t0, Duration: 20 * time.Millisecond, Size: 300, NumSubtasks: 3, NumAcknowledged: 3},
			}},
			CheckpointConfig: &rpc.CheckpointSettings{ExactlyOnce: true, Interval: time.Second, Storage: "file:///ck"},
		}}))
	require.Eventually(t, func() bool {
		j, err = a.Job(ctx, id)
		return err == nil && j.State == "RUNNING"
	}, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, j.Timestamps, rest.JobState("CREATED"))
	require.Contains(t, j.Timestamps, rest.JobState("RUNNING"))
	src := j.Vertices[0].Subtasks[0]
	require.Equal(t, rest.ExecState("RUNNING"), src.State)
	require.Equal(t, 1, src.Attempt)
	require.Equal(t, TaskManagerID("tm-1"), src.TaskManagerID)
	require.Regexp(t, `^[0-9a-f]{32}$`, src.TaskManagerID)
	require.Equal(t, 900.0, src.BackPressuredMsPerSecond)
	require.EqualValues(t, 50, src.RecordsOut)
	require.EqualValues(t, 1234, src.Watermark)
	require.Equal(t, rest.NoWatermark, j.Vertices[1].Subtasks[0].Watermark, "no metrics yet")

	ex, err := a.Exceptions(ctx, id)
	require.NoError(t, err)
	require.Len(t, ex, 1)
	require.Equal(t, "Count -> Sink (2/2)#0", ex[0].TaskName)
	require.Contains(t, ex[0].Message, "boom\ngoroutine 7")
	require.Equal(t, TaskManagerID("tm-1"), ex[0].Location)

	cs, err := a.Checkpoints(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 2, cs.Total)
	require.Len(t, cs.History, 2)
	require.EqualValues(t, 1, cs.LatestCompleted.ID)
	require.Equal(t, "file:///ck/"+id+"/chk-1", cs.LatestCompleted.ExternalPath)
	require.EqualValues(t, 2, cs.LatestFailed.ID)
	require.Equal(t, "expired", cs.LatestFailed.FailureMessage)
	cc, err := a.CheckpointConfig(ctx, id)
	require.NoError(t, err)
	require.Equal(t, time.Second, cc.Interval)

	_, err = a.Savepoint(ctx, id, rest.SavepointRequest{})
	require.ErrorIs(t, err, rest.ErrInvalid, "no target and no default")

	require.NoError(t, gw.JobFinished(rpc.JobFinished{JobID: id, JobName: "wc", State: scheduler.JobCanceled}))
	h, err := d.Job(id)
	require.NoError(t, err)
	<-h.Done()
	require.ErrorIs(t, a.CancelJob(ctx, id), rest.ErrConflict)
	_, err = a.Savepoint(ctx, id, rest.SavepointRequest{TargetDirectory: t.TempDir()})
	require.ErrorIs(t, err, rest.ErrConflict)
	jobs, err := a.Jobs(ctx)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, rest.JobState("CANCELED"), jobs[0].State)
	require.False(t, jobs[0].End.IsZero())
}
