package jobmaster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These tests drive a JobMaster against stand-ins for its peers on the
// in-process transport: a ResourceManager that grants every request with
// the slots of one TaskManager, a Dispatcher that records what it is told,
// and TaskManagers that are missing, never read, or answer as the test
// says. The shell must keep its loop free whatever its peers do.

// oneVertexJob is a job of one vertex with parallelism p.
func oneVertexJob(p int) *jobgraph.JobGraph {
	return &jobgraph.JobGraph{JobName: "j", MaxParallelism: 128, Vertices: []*jobgraph.JobVertex{
		{ID: 0, Name: "v", Parallelism: p, MaxParallelism: 128, SlotSharingGroup: "default", IsSource: true},
	}}
}

// peer serves an endpoint with handle until the test ends.
func peer(t *testing.T, ctx context.Context, wg *sync.WaitGroup, net *rpc.Local, address string, handle func(rpc.Message)) {
	t.Helper()
	ep, err := net.Listen(address)
	require.NoError(t, err)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ep.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ep.Ready():
				for _, m := range ep.Receive() {
					handle(m)
				}
			}
		}
	}()
}

// harness is a JobMaster with its stand-in peers.
type harness struct {
	net *rpc.Local

	mu       sync.Mutex
	status   rpc.JobStatus
	finished chan rpc.JobFinished
	stopped  chan struct{} // closed when the JobMaster's Run returned
}

// start runs the ResourceManager and Dispatcher stand-ins and a JobMaster
// for jg. The ResourceManager grants slots of TaskManager tm at tmAddress.
// The JobMaster runs until ctx ends, the stand-ins until the test ends, so
// they hear the JobMaster's last words.
func start(t *testing.T, ctx context.Context, wg *sync.WaitGroup, jg *jobgraph.JobGraph, tm, tmAddress string) *harness {
	t.Helper()
	pctx, pcancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	t.Cleanup(func() { pcancel(); pwg.Wait() })
	h := &harness{net: rpc.NewLocal(), finished: make(chan rpc.JobFinished, 1), stopped: make(chan struct{})}
	peer(t, pctx, &pwg, h.net, "rm", func(m rpc.Message) {
		if r, ok := m.(rpc.RequestSlots); ok {
			g := rpc.SlotsGranted{JobID: r.JobID, RequestID: r.RequestID}
			for i := range r.N {
				g.Slots = append(g.Slots, rpc.SlotOffer{Slot: scheduler.SlotID{TaskManager: tm, Index: i}, Address: tmAddress})
			}
			require.NoError(t, h.net.JobMaster(r.JobMaster).SlotsGranted(g))
		}
	})
	peer(t, pctx, &pwg, h.net, "dispatcher", func(m rpc.Message) {
		switch m := m.(type) {
		case rpc.JobStatus:
			h.mu.Lock()
			h.status = m
			h.mu.Unlock()
		case rpc.JobFinished:
			h.finished <- m
		}
	})
	jm, err := New(Config{JobID: "job-1", JobName: "j", JobGraph: jg, Address: "jm", ResourceManager: "rm", Dispatcher: "dispatcher", Transport: h.net})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); defer close(h.stopped); jm.Run(ctx) }()
	return h
}

func (h *harness) state() rpc.JobStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

func (h *harness) wait(t *testing.T) rpc.JobFinished {
	t.Helper()
	select {
	case f := <-h.finished:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("job did not end")
		return rpc.JobFinished{}
	}
}

// Every deploy to a TaskManager that cannot be reached fails its
// execution, through the JobMaster's local queue (never its own inbox), and
// the job fails.
func TestJobMasterDeploysToUnreachableTaskManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const p = 32
	h := start(t, ctx, &wg, oneVertexJob(p), "ghost", "taskmanager-ghost")

	f := h.wait(t)
	require.Equal(t, scheduler.JobFailed, f.State)
	require.ErrorContains(t, f.Failure.Err(), "to TaskManager ghost")
	require.ErrorIs(t, f.Failure.Err(), rpc.ErrUnreachable)
	require.Len(t, f.Executions, p)
	for _, e := range f.Executions {
		require.Equal(t, scheduler.Failed, e.State, "%v", e.ID)
	}
	select {
	case <-h.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("JobMaster loop did not end")
	}
}

// A TaskManager that does not read its endpoint must not stop the
// JobMaster: its deploys wait in the transport while the JobMaster keeps
// taking messages (here the user's cancel).
func TestJobMasterKeepsServingWhileTaskManagerIsStuck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const p = 8
	h := start(t, ctx, &wg, oneVertexJob(p), "tm-1", "taskmanager-tm-1")
	stuck, err := h.net.Listen("taskmanager-tm-1") // never read
	require.NoError(t, err)
	defer stuck.Close()

	require.Eventually(t, func() bool { return h.state().State == scheduler.JobRunning }, 10*time.Second, time.Millisecond)
	require.NoError(t, h.net.JobMaster("jm").CancelJob(rpc.CancelJob{JobID: "job-1"}))
	require.Eventually(t, func() bool {
		st := h.state()
		return st.State == scheduler.JobCanceling && st.Executions[p-1].State == scheduler.Canceling
	}, 10*time.Second, time.Millisecond, "the JobMaster took the cancel although the TaskManager reads nothing")
	select {
	case <-h.finished:
		t.Fatal("job ended before its tasks were cancelled")
	default:
	}

	// Shutting the cluster down ends the JobMaster.
	cancel()
	f := h.wait(t)
	require.Equal(t, scheduler.JobCanceled, f.State)
	require.ErrorContains(t, f.Failure.Err(), "cluster shut down")
}

// The final counts are the ones sent with a task's terminal state: a
// periodic report that arrives later (it was taken earlier) does not
// replace them, and a report of an older attempt never counts.
func TestJobMasterKeepsFinalMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	metrics := func(out int64) []rpc.OperatorMetrics {
		return []rpc.OperatorMetrics{{Node: 3, Name: "src", UID: "u", IsSource: true, RecordsOut: out}}
	}
	deployed := make(chan rpc.DeployTask, 1)
	h := start(t, ctx, &wg, oneVertexJob(1), "tm-1", "taskmanager-tm-1")
	net := h.net
	peer(t, ctx, &wg, net, "taskmanager-tm-1", func(m rpc.Message) {
		if d, ok := m.(rpc.DeployTask); ok {
			deployed <- d
		}
	})
	d := <-deployed
	jm := net.JobMaster(d.JobMaster)
	id := d.Execution
	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: id, State: scheduler.Initializing, Metrics: metrics(0)}))
	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: id, State: scheduler.Running, Metrics: metrics(0)}))
	old := id
	old.Attempt--
	require.NoError(t, jm.ReportMetrics(rpc.MetricsReport{JobID: d.JobID, TaskManager: "tm-1", Tasks: []rpc.TaskMetrics{{Execution: old, Operators: metrics(99)}}}))
	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: id, State: scheduler.Finished, Metrics: metrics(10)}))
	require.NoError(t, jm.ReportMetrics(rpc.MetricsReport{JobID: d.JobID, TaskManager: "tm-1", Tasks: []rpc.TaskMetrics{{Execution: id, Operators: metrics(5)}}}))

	f := h.wait(t)
	require.Equal(t, scheduler.JobFinished, f.State)
	require.Equal(t, []rpc.OperatorTotals{{Node: 3, Name: "src", UID: "u", Parallelism: 1, RecordsOut: 10}}, f.Operators)
}
