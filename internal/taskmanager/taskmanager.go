// Package taskmanager is the TaskManager role: it offers slots to the
// ResourceManager and runs the tasks JobMasters deploy into them, each on
// its own goroutine. A deploy names only (job, execution, slot): the
// TaskManager takes the job's code from its process (internal/jobcode) and
// builds the task itself (task.go). Task states, failures and counter
// snapshots go to the JobMaster as plain data.
package taskmanager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
)

// DefaultMetricsInterval is how often running tasks' counters are sent to
// their JobMasters when Config.MetricsInterval is not set.
const DefaultMetricsInterval = 50 * time.Millisecond

// Config describes one TaskManager.
type Config struct {
	ID              string
	Address         string // where JobMasters reach it
	Slots           int
	ResourceManager string // the ResourceManager's address
	Transport       rpc.Transport
	Code            *jobcode.Registry // the jobs' code in this process
	Network         *network.Registry // the in-process shuffle environment
	// Data is this TaskManager's data plane (nil: every channel is in
	// process, shared through Network with the other TaskManagers of the
	// process). With it, channels to subtasks of other TaskManagers cross
	// it; it is the caller's to close, after Run returned.
	Data *tcp.Endpoint
	// DataAddress is the data address registered when Data is nil: a
	// TaskManager with Workers, whose workers' data planes take the
	// connections that arrive at it.
	DataAddress     string
	MetricsInterval time.Duration
	Logger          *slog.Logger
	// Workers, when set, makes this the TaskManager of a cluster that
	// runs job binaries: it runs no task itself but starts a worker
	// process per job and routes the job's messages to it (host.go).
	Workers Workers
	// JobWorker says this TaskManager is the one inside a job worker
	// process, serving the TaskManager that started it (its parent,
	// which holds the slots): it registers with no ResourceManager, and
	// it releases channels when told (rpc.ReleaseChannels) since no
	// other role in its process can.
	JobWorker bool
	// HeartbeatTimeout is how long the TaskManager waits for a heartbeat
	// request from the ResourceManager, or from the JobMaster of tasks it
	// runs, before it takes that role for lost (liveness.go; 0:
	// heartbeat.DefaultTimeout). The roles' own timeout should be the
	// same.
	HeartbeatTimeout time.Duration
}

// TaskManager runs tasks in its slots.
type TaskManager struct {
	cfg Config
	ep  rpc.Endpoint
	wg  sync.WaitGroup // task goroutines

	mu     sync.Mutex
	tasks  map[taskKey]*slotTask
	stores map[string]blob.Store // checkpoint storage by URL (checkpoint.go)
	// savepoints are the announced targets of savepoints (checkpoint.go).
	savepoints map[spKey]*spTarget
	// freeze takes a channel from Freeze; the loop then stops until it is
	// closed.
	freeze chan (<-chan struct{})

	// With Workers (host.go), owned by the loop: the jobs whose workers
	// run here, and what the worker goroutines report back.
	hosted     map[string]*hostedJob
	hostEvents chan any

	// registeredAt is when the slots were last offered, rmSeen whether
	// the ResourceManager has asked for a heartbeat since (owned by the
	// loop): a registration sent before the ResourceManager listened (a
	// TaskManager started first) is lost, so it is sent again until the
	// ResourceManager shows it knows this TaskManager.
	registeredAt time.Time
	rmSeen       bool
	// rmLast is when the ResourceManager last asked for a heartbeat,
	// jmSeen when each JobMaster (by address) last did or deployed here
	// (owned by the loop; liveness.go).
	rmLast time.Time
	jmSeen map[string]time.Time
}

type taskKey struct {
	job string
	id  scheduler.ExecutionID
}

// slotTask is a deployed task as its TaskManager tracks it.
type slotTask struct {
	cancel    context.CancelFunc
	jobMaster string
	// release ends the task's share of the TaskManager's WaitGroup, once:
	// when its goroutine returns, or earlier when it is abandoned.
	release func()
	// ended is closed when the task's goroutine is done with it.
	ended chan struct{}
	// watchdog abandons the task if it ignores its cancellation.
	watchdog *time.Timer
	// abandoned (under TaskManager.mu) says the task was given up on: its
	// goroutine may still run user code, but it reports nothing more.
	abandoned bool
	counters  []operatorCounters // set (under TaskManager.mu) once the task is built
	task      *runtime.Task      // set (under TaskManager.mu) once the task is built
	rates     timeRates          // under TaskManager.mu (tasktime.go)
}

// New creates the TaskManager's endpoint and registers its slots with the
// ResourceManager; Run serves it. Registering here, not in Run, means the
// slots are offered before New returns (the ResourceManager takes messages
// in order), so a job submitted next finds them.
func New(cfg Config) (*TaskManager, error) {
	if cfg.MetricsInterval <= 0 {
		cfg.MetricsInterval = DefaultMetricsInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = heartbeat.DefaultTimeout
	}
	ep, err := cfg.Transport.Listen(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("task manager %s: %w", cfg.ID, err)
	}
	tm := &TaskManager{cfg: cfg, ep: ep, tasks: map[taskKey]*slotTask{}, stores: map[string]blob.Store{}, savepoints: map[spKey]*spTarget{}, freeze: make(chan (<-chan struct{}), 1),
		hosted: map[string]*hostedJob{}, hostEvents: make(chan any), jmSeen: map[string]time.Time{}}
	if cfg.JobWorker {
		return tm, nil
	}
	tm.registeredAt = time.Now()
	if err := cfg.Transport.ResourceManager(cfg.ResourceManager).RegisterTaskManager(tm.registration()); err != nil {
		ep.Close()
		return nil, fmt.Errorf("task manager %s: registering with the resource manager: %w", cfg.ID, err)
	}
	return tm, nil
}

// Run serves deploys and cancels until ctx ends, then cancels every task
// and waits for them.
func (tm *TaskManager) Run(ctx context.Context) {
	defer tm.ep.Close()
	defer tm.closeStores() // after the uploads (wg) are done
	defer tm.wg.Wait()
	tick := time.NewTicker(tm.cfg.MetricsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			tm.mu.Lock()
			for k, t := range tm.tasks {
				t.cancel()
				tm.watchCancel(k, t)
			}
			tm.mu.Unlock()
			return
		case thaw := <-tm.freeze:
			select { // frozen: no message is read, no heartbeat answered
			case <-thaw:
			case <-ctx.Done():
			}
		case now := <-tick.C:
			tm.reportMetrics()
			tm.checkLiveness(now)
			tm.registerAgain(now)
		case ev := <-tm.hostEvents:
			tm.hostEvent(ctx, ev)
		case <-tm.ep.Ready():
			for _, m := range tm.ep.Receive() {
				if tm.cfg.Workers != nil && tm.hostMessage(ctx, m) {
					continue
				}
				switch m := m.(type) {
				case rpc.ReleaseChannels:
					tm.releaseChannels(m)
				case rpc.DeployTask:
					tm.jmSeen[m.JobMaster] = time.Now()
					tm.deploy(ctx, m)
				case rpc.HeartbeatRequest:
					tm.heartbeat(m, time.Now())
				case rpc.CancelTask:
					tm.mu.Lock()
					if t, ok := tm.tasks[taskKey{m.JobID, m.Execution}]; ok {
						t.cancel()
						tm.watchCancel(taskKey{m.JobID, m.Execution}, t)
					}
					tm.mu.Unlock()
				default:
					if tm.checkpointMessage(ctx, m) {
						continue
					}
					tm.cfg.Logger.Warn("task manager: unexpected message", "task_manager", tm.cfg.ID, "type", fmt.Sprintf("%T", m))
				}
			}
		}
	}
}

// reportMetrics sends each job's JobMaster one snapshot of its tasks here.
// Tasks are read upstream vertex first (vertex ids follow the topology), so
// a consumer's count is never read before its producer's: records in
// flight computed from one report are never overstated.
func (tm *TaskManager) reportMetrics() {
	type jobTasks struct {
		jobMaster string
		tasks     []rpc.TaskMetrics
	}
	byJob := map[string]*jobTasks{}
	now := time.Now()
	tm.mu.Lock()
	keys := make([]taskKey, 0, len(tm.tasks))
	for k, t := range tm.tasks {
		if t.counters != nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b taskKey) int {
		return cmp.Or(cmp.Compare(a.id.Vertex, b.id.Vertex), cmp.Compare(a.id.Subtask, b.id.Subtask))
	})
	for _, k := range keys {
		t := tm.tasks[k]
		j := byJob[k.job]
		if j == nil {
			j = &jobTasks{jobMaster: t.jobMaster}
			byJob[k.job] = j
		}
		tmx := rpc.TaskMetrics{Execution: k.id, Operators: snapshot(t.counters)}
		if t.task != nil {
			addWatermarks(tmx.Operators, t.task)
			t.rates.add(&tmx, t.task, now)
		}
		j.tasks = append(j.tasks, tmx)
	}
	tm.mu.Unlock()
	for job, j := range byJob {
		// A JobMaster that is gone needs no metrics.
		_ = tm.cfg.Transport.JobMaster(j.jobMaster).ReportMetrics(rpc.MetricsReport{JobID: job, TaskManager: tm.cfg.ID, Tasks: j.tasks})
	}
}

func snapshot(cs []operatorCounters) []rpc.OperatorMetrics {
	out := make([]rpc.OperatorMetrics, len(cs))
	for i, c := range cs {
		out[i] = c.snapshot()
	}
	return out
}

func (tm *TaskManager) deploy(ctx context.Context, m rpc.DeployTask) {
	tctx, cancel := context.WithCancel(ctx)
	key := taskKey{m.JobID, m.Execution}
	st := &slotTask{cancel: cancel, jobMaster: m.JobMaster, release: sync.OnceFunc(tm.wg.Done), ended: make(chan struct{})}
	tm.mu.Lock()
	tm.tasks[key] = st
	tm.mu.Unlock()
	jm := tm.cfg.Transport.JobMaster(m.JobMaster)
	var counters []operatorCounters
	report := func(state scheduler.ExecState, err error) {
		if state.Terminal() {
			tm.mu.Lock()
			abandoned := st.abandoned
			tm.mu.Unlock()
			if abandoned {
				return // reported CANCELED when it was abandoned
			}
		}
		u := rpc.TaskStateUpdate{JobID: m.JobID, Execution: m.Execution, State: state, Failure: rpc.FailureOf(err)}
		if counters != nil {
			u.Metrics = snapshot(counters)
			if st.task != nil { // set by this goroutine, with counters
				addWatermarks(u.Metrics, st.task)
			}
		}
		if err := jm.UpdateTaskState(u); err != nil {
			// The JobMaster is gone (its job ended or the cluster stops):
			// nobody waits for this task's state any more.
			tm.cfg.Logger.Debug("task manager: task state not delivered", "execution", m.Execution.String(), "state", state.String(), "error", err)
		}
	}
	tm.wg.Add(1)
	go func() {
		defer st.release()
		defer func() {
			tm.mu.Lock()
			if !st.abandoned {
				delete(tm.tasks, key)
			}
			if st.watchdog != nil {
				st.watchdog.Stop()
			}
			close(st.ended)
			tm.mu.Unlock()
			cancel()
		}()
		dp := newDataPlane(tm.cfg.Data, m.Placement)
		task, cs, err := tm.build(tctx, m, dp)
		if err != nil {
			dp.release(false)
			report(scheduler.Failed, err)
			return
		}
		if job, err := tm.cfg.Code.Lookup(m.JobID); err == nil && (job.Config.Checkpoint != nil || task.OnCheckpoint == nil) {
			// Uploads use the TaskManager's context, not the task's: the
			// snapshot a task took just before finishing is still part
			// of its checkpoint. Every job can take savepoints, so
			// every task uploads, checkpointed or not — except that a
			// job without checkpointing keeps an OnCheckpoint the state
			// seam's tests set (jobcode.Config.OnTask) to drive
			// snapshots themselves.
			task.OnCheckpoint = tm.onCheckpoint(ctx, job, m, st)
		}
		if job, err := tm.cfg.Code.Lookup(m.JobID); err == nil && job.Config.Checkpoint != nil {
			// A checkpointed job's tasks wait at the end of their input
			// for a checkpoint taken after it (FLIP-147), so what they
			// flushed then is committed; the JobMaster's coordinator
			// triggers that checkpoint once every task waits.
			task.WaitForFinalCheckpoint = true
			task.OnEndOfInput = func() {
				if err := jm.EndOfInput(rpc.TaskEndOfInput{JobID: m.JobID, Execution: m.Execution}); err != nil {
					tm.cfg.Logger.Debug("task manager: end of input not delivered", "execution", m.Execution.String(), "error", err)
				}
			}
		}
		counters = cs
		tm.mu.Lock()
		st.counters = cs
		st.task = task
		tm.mu.Unlock()
		report(scheduler.Initializing, nil)
		// RUNNING once every operator is open (later: its state restored),
		// not merely once the task is built.
		task.OnRunning = func() { report(scheduler.Running, nil) }
		err = task.Run(tctx)
		dp.release(err == nil)
		// The counters were published when Run returned: the terminal
		// report carries the task's final counts.
		switch {
		case err == nil:
			report(scheduler.Finished, nil)
		case errors.Is(err, runtime.ErrTaskCanceled):
			report(scheduler.Canceled, nil)
		default:
			report(scheduler.Failed, err)
		}
	}()
}

// build finds the job's code in this process and wires the task.
func (tm *TaskManager) build(ctx context.Context, m rpc.DeployTask, dp *dataPlane) (*runtime.Task, []operatorCounters, error) {
	job, err := tm.cfg.Code.Lookup(m.JobID)
	if err != nil {
		return nil, nil, fmt.Errorf("task manager %s: deploying %v: %w", tm.cfg.ID, m.Execution, err)
	}
	vs := job.JobGraph.Vertices
	if m.Execution.Vertex < 0 || m.Execution.Vertex >= len(vs) {
		return nil, nil, fmt.Errorf("task manager %s: deploying %v: job %s has no vertex %d", tm.cfg.ID, m.Execution, m.JobID, m.Execution.Vertex)
	}
	v := vs[m.Execution.Vertex]
	restore := job.Config.Restore
	var channels *runtime.ChannelState
	if m.Restore != nil {
		// Read on the task's goroutine: the TaskManager's loop goes on.
		if restore, channels, err = tm.readRestore(ctx, job, v, m.Execution.Subtask, m.Restore); err != nil {
			return nil, nil, fmt.Errorf("task manager %s: deploying %v: %w", tm.cfg.ID, m.Execution, err)
		}
	}
	task, counters, err := buildTask(ctx, job, v, m.Execution.Subtask, m.Execution.Attempt, tm.cfg.Network, dp, restore)
	if task != nil {
		task.ChannelRestore = channels
	}
	return task, counters, err
}

// watchCancel starts the cancellation watchdog of a task just cancelled
// (tm.mu held): user code that ignores cancellation (a blocking call that
// takes no context, a busy loop) would otherwise hold its slot and the
// job's restart forever. After the job's CancellationTimeout the task is
// abandoned: reported CANCELED, so the job can restart, and fenced — it is
// dropped from the TaskManager's tasks, so no checkpoint trigger or
// completion notification reaches it any more (a two-phase-commit sink in
// it can never commit), and its goroutine no longer holds up the
// TaskManager's shutdown. What it still writes goes into channels of an
// attempt that was released. Flink's watchdog kills the whole TaskManager
// process instead; here one leaked goroutine is the price, logged.
func (tm *TaskManager) watchCancel(key taskKey, st *slotTask) {
	if st.watchdog != nil || st.abandoned {
		return
	}
	timeout := jobcode.DefaultCancellationTimeout
	if job, err := tm.cfg.Code.Lookup(key.job); err == nil {
		timeout = job.Config.WithDefaults().CancellationTimeout
	}
	st.watchdog = time.AfterFunc(timeout, func() { tm.abandon(key, st, timeout) })
}

func (tm *TaskManager) abandon(key taskKey, st *slotTask, timeout time.Duration) {
	tm.mu.Lock()
	select {
	case <-st.ended:
		tm.mu.Unlock()
		return
	default:
	}
	st.abandoned = true
	if tm.tasks[key] == st {
		delete(tm.tasks, key)
	}
	tm.mu.Unlock()
	tm.cfg.Logger.Error("task ignored its cancellation: abandoned and fenced; its goroutine leaks until its user code returns",
		"task_manager", tm.cfg.ID, "job_id", key.job, "execution", key.id.String(), "timeout", timeout)
	u := rpc.TaskStateUpdate{JobID: key.job, Execution: key.id, State: scheduler.Canceled}
	_ = tm.cfg.Transport.JobMaster(st.jobMaster).UpdateTaskState(u)
	st.release()
}

// heartbeat answers a heartbeat request with the executions it runs (of
// the asking JobMaster's job, or all of them for the ResourceManager). A
// request with Reregister comes from a ResourceManager that declared this
// TaskManager dead and dropped its slots: every task here is of a stale
// attempt (its JobMaster failed it), so all are cancelled, and the slots
// are offered again, as a new registration.
func (tm *TaskManager) heartbeat(m rpc.HeartbeatRequest, now time.Time) {
	tm.mu.Lock()
	if m.Reregister {
		for k, t := range tm.tasks {
			t.cancel()
			tm.watchCancel(k, t)
		}
		tm.stopAllHosted()
	}
	if m.JobID == "" {
		tm.rmSeen = true
		tm.rmLast = now
	} else {
		tm.jmSeen[m.ReplyTo] = now
	}
	var execs []scheduler.ExecutionID
	for k := range tm.tasks {
		if m.JobID == "" || k.job == m.JobID {
			execs = append(execs, k.id)
		}
	}
	tm.mu.Unlock()
	execs = append(execs, tm.hostedExecutions(m.JobID)...)
	if m.Reregister {
		tm.cfg.Logger.Info("task manager: declared dead by the resource manager; cancelled its tasks, registering again", "task_manager", tm.cfg.ID)
		if err := tm.cfg.Transport.ResourceManager(tm.cfg.ResourceManager).RegisterTaskManager(tm.registration()); err != nil {
			tm.cfg.Logger.Warn("task manager: registering again failed", "task_manager", tm.cfg.ID, "error", err)
		}
	}
	hb := rpc.TaskManagerHeartbeat{TaskManager: tm.cfg.ID, JobID: m.JobID, Seq: m.Seq, Slots: tm.cfg.Slots, Executions: execs}
	var err error
	if m.JobID == "" {
		err = tm.cfg.Transport.ResourceManager(m.ReplyTo).HeartbeatFromTaskManager(hb)
	} else {
		err = tm.cfg.Transport.JobMaster(m.ReplyTo).HeartbeatFromTaskManager(hb)
	}
	if err != nil { // the asker is gone: it will not miss the answer
		tm.cfg.Logger.Debug("task manager: heartbeat not delivered", "task_manager", tm.cfg.ID, "to", m.ReplyTo, "error", err)
	}
}

// registration is this TaskManager's offer of its slots.
func (tm *TaskManager) registration() rpc.RegisterTaskManager {
	reg := rpc.RegisterTaskManager{TaskManager: tm.cfg.ID, Address: tm.cfg.Address, Slots: tm.cfg.Slots, DataAddress: tm.cfg.DataAddress}
	if tm.cfg.Data != nil {
		reg.DataAddress = tm.cfg.Data.Addr()
	}
	return reg
}

// Freeze stops the TaskManager's loop until thaw is closed (or Run's
// context ends): it reads no message and answers no heartbeat, while its
// tasks run on, like a process stopped by SIGSTOP as far as the other
// roles can tell (fault-injection tests). One freeze at a time.
func (tm *TaskManager) Freeze(thaw <-chan struct{}) { tm.freeze <- thaw }

// releaseChannels applies a release to this process's channels: in a job
// worker only, where no other role shares the process. Elsewhere the
// process that runs the roles releases them itself (the embedded
// cluster's JobMaster hook), and the message changes nothing.
func (tm *TaskManager) releaseChannels(m rpc.ReleaseChannels) {
	if !tm.cfg.JobWorker {
		return
	}
	switch {
	case m.JobEnded:
		tm.cfg.Network.ReleaseJob(m.JobID)
		if tm.cfg.Data != nil {
			tm.cfg.Data.ReleaseJob(m.JobID)
		}
	case m.Vertices == nil:
		tm.cfg.Network.ReleaseAttempt(m.JobID, m.Attempt)
		if tm.cfg.Data != nil {
			tm.cfg.Data.ReleaseAttempt(m.JobID, m.Attempt)
		}
	default:
		tm.cfg.Network.ReleaseVertices(m.JobID, m.Attempt, m.Vertices, m.Edges)
		if tm.cfg.Data != nil {
			tm.cfg.Data.ReleaseEdges(m.JobID, m.Attempt, m.Edges)
		}
	}
}

// RegistrationRetry is how long a TaskManager waits for the
// ResourceManager's first heartbeat request before it registers again.
const RegistrationRetry = 3 * time.Second

// registerAgain re-sends the registration while the ResourceManager has
// not shown it received one.
func (tm *TaskManager) registerAgain(now time.Time) {
	if tm.cfg.JobWorker || tm.rmSeen || now.Sub(tm.registeredAt) < RegistrationRetry {
		return
	}
	tm.registeredAt = now
	tm.cfg.Logger.Info("task manager: no word from the resource manager; registering again", "task_manager", tm.cfg.ID, "resource_manager", tm.cfg.ResourceManager)
	if err := tm.cfg.Transport.ResourceManager(tm.cfg.ResourceManager).RegisterTaskManager(tm.registration()); err != nil {
		tm.cfg.Logger.Debug("task manager: registration not delivered", "error", err)
	}
}
