package jobmaster

import (
	"context"
	"errors"
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
	// savepoints are the answers to savepoint requests.
	savepoints chan rpc.SavepointResult
}

// start runs the ResourceManager and Dispatcher stand-ins and a JobMaster
// for jg. The ResourceManager grants slots of TaskManager tm at tmAddress.
// The JobMaster runs until ctx ends, the stand-ins until the test ends, so
// they hear the JobMaster's last words.
func start(t *testing.T, ctx context.Context, wg *sync.WaitGroup, jg *jobgraph.JobGraph, tm, tmAddress string, opts ...func(*Config)) *harness {
	t.Helper()
	pctx, pcancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	t.Cleanup(func() { pcancel(); pwg.Wait() })
	h := &harness{net: rpc.NewLocal(), finished: make(chan rpc.JobFinished, 1), stopped: make(chan struct{}),
		savepoints: make(chan rpc.SavepointResult, 8)}
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
		case rpc.SavepointResult:
			h.savepoints <- m
		}
	})
	cfg := Config{JobID: "job-1", JobName: "j", JobGraph: jg, Address: "jm", ResourceManager: "rm", Dispatcher: "dispatcher", Transport: h.net}
	for _, o := range opts {
		o(&cfg)
	}
	jm, err := New(cfg)
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
	return receive(t, h.finished, "job did not end")
}

// receive returns the next value of ch, failing the test after 10s.
func receive[T any](t *testing.T, ch <-chan T, timeoutMsg string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal(timeoutMsg)
		var zero T
		return zero
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
	// The stuck TaskManager listens before the JobMaster starts, or its
	// deploys could find no endpoint (and fail the job) on a slow machine.
	var stuck rpc.Endpoint
	h := start(t, ctx, &wg, oneVertexJob(p), "tm-1", "taskmanager-tm-1", func(c *Config) {
		var err error
		stuck, err = c.Transport.Listen("taskmanager-tm-1") // never read
		require.NoError(t, err)
	})
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
	// The TaskManager listens before the JobMaster starts: a deploy that
	// found no endpoint would fail the job, and this test hung in CI
	// waiting for it.
	var deployed <-chan rpc.DeployTask
	h := start(t, ctx, &wg, oneVertexJob(1), "tm-1", "taskmanager-tm-1", listening(t, ctx, &wg, &deployed))
	d := nextDeploy(t, deployed)
	jm := h.net.JobMaster(d.JobMaster)
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

// taskManager is a TaskManager stand-in that hands the test every deploy.
func taskManager(t *testing.T, ctx context.Context, wg *sync.WaitGroup, net *rpc.Local) <-chan rpc.DeployTask {
	deployed := make(chan rpc.DeployTask, 16)
	peer(t, ctx, wg, net, "taskmanager-tm-1", func(m rpc.Message) {
		if d, ok := m.(rpc.DeployTask); ok {
			deployed <- d
		}
	})
	return deployed
}

// listening starts the TaskManager stand-in before the JobMaster (an
// option of start), so that the first deploy never finds its address
// unserved, which would fail the task and spend a restart.
func listening(t *testing.T, ctx context.Context, wg *sync.WaitGroup, deployed *<-chan rpc.DeployTask) func(*Config) {
	return func(c *Config) { *deployed = taskManager(t, ctx, wg, c.Transport.(*rpc.Local)) }
}

func nextDeploy(t *testing.T, deployed <-chan rpc.DeployTask) rpc.DeployTask {
	t.Helper()
	select {
	case d := <-deployed:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no deploy")
		return rpc.DeployTask{}
	}
}

// A failed task is deployed again as the next attempt, into the same slot,
// once the strategy's delay has run on the JobMaster's timer; the shell
// tells its process which attempt to release and reports the restart.
func TestJobMasterRestartsAfterTheDelay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const delay = 50 * time.Millisecond
	released := make(chan int, 4)
	var deployed <-chan rpc.DeployTask
	h := start(t, ctx, &wg, oneVertexJob(1), "tm-1", "taskmanager-tm-1", func(c *Config) {
		c.Restart = scheduler.FixedDelayRestart(1, delay)
		c.OnRestart = func(previous int, _ []int) { released <- previous }
	}, listening(t, ctx, &wg, &deployed))
	jm := h.net.JobMaster("jm")

	d := nextDeploy(t, deployed)
	require.Equal(t, 0, d.Execution.Attempt)
	failedAt := time.Now()
	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: d.Execution, State: scheduler.Failed, Failure: rpc.FailureOf(errors.New("boom"))}))

	again := nextDeploy(t, deployed)
	require.GreaterOrEqual(t, time.Since(failedAt), delay, "restarted before the delay")
	require.Equal(t, scheduler.ExecutionID{Attempt: 1}, again.Execution)
	require.Equal(t, d.Slot, again.Slot, "the job keeps its slots")
	require.Equal(t, 0, <-released)
	require.Eventually(t, func() bool { st := h.state(); return st.Restarts == 1 && st.State == scheduler.JobRunning }, 10*time.Second, time.Millisecond)

	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: again.Execution, State: scheduler.Finished}))
	f := h.wait(t)
	require.Equal(t, scheduler.JobFinished, f.State)
	require.Equal(t, 1, f.Restarts)
	require.Empty(t, released, "one restart, one release")
}

// A cancel while the restart delay runs ends the job at once; the timer
// dies with the loop.
func TestJobMasterCancelWhileWaitingToRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var deployed <-chan rpc.DeployTask
	h := start(t, ctx, &wg, oneVertexJob(1), "tm-1", "taskmanager-tm-1", func(c *Config) {
		c.Restart = scheduler.FixedDelayRestart(1, time.Hour)
	}, listening(t, ctx, &wg, &deployed))
	jm := h.net.JobMaster("jm")
	d := nextDeploy(t, deployed)
	require.NoError(t, jm.UpdateTaskState(rpc.TaskStateUpdate{JobID: d.JobID, Execution: d.Execution, State: scheduler.Failed, Failure: rpc.FailureOf(errors.New("boom"))}))
	require.Eventually(t, func() bool { return h.state().State == scheduler.JobRestarting }, 10*time.Second, time.Millisecond)

	require.NoError(t, jm.CancelJob(rpc.CancelJob{JobID: "job-1"}))
	f := h.wait(t)
	require.Equal(t, scheduler.JobCanceled, f.State)
	require.Zero(t, f.Restarts)
	select {
	case <-h.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("JobMaster loop did not end")
	}
	require.Empty(t, deployed)
}

// An exponential-delay strategy without a seed gets one from the job id;
// the caller's strategy is left alone.
func TestJobMasterSeedsJitterFromJobID(t *testing.T) {
	r := scheduler.ExponentialDelayRestart()
	net := rpc.NewLocal()
	jm, err := New(Config{JobID: "job-1", JobGraph: oneVertexJob(1), Address: "jm", Transport: net, Restart: r})
	require.NoError(t, err)
	defer jm.ep.Close()
	require.NotZero(t, jm.cfg.Restart.ExponentialDelay.Seed)
	require.Zero(t, r.ExponentialDelay.Seed)

	_, err = New(Config{JobID: "job-2", JobGraph: oneVertexJob(1), Address: "jm-2", Transport: net, Restart: scheduler.FixedDelayRestart(0, 0)})
	require.ErrorContains(t, err, "job master of job job-2: restart strategy fixed-delay: attempts must be at least 1")
}

// A TaskManager that stops answering heartbeats is declared dead after the
// timeout: its executions fail with a clear cause (here the job fails: no
// restart strategy).
func TestJobMasterFailsTheTasksOfASilentTaskManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var deployed <-chan rpc.DeployTask // its TaskManager never answers a heartbeat
	h := start(t, ctx, &wg, oneVertexJob(1), "tm-1", "taskmanager-tm-1", func(c *Config) {
		c.HeartbeatInterval, c.HeartbeatTimeout = 10*time.Millisecond, 50*time.Millisecond
	}, listening(t, ctx, &wg, &deployed))
	nextDeploy(t, deployed)
	f := h.wait(t)
	require.Equal(t, scheduler.JobFailed, f.State)
	require.ErrorContains(t, f.Failure.Err(), "TaskManager tm-1 lost: heartbeat timeout after 50ms")
}
