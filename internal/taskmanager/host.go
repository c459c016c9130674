package taskmanager

import (
	"context"
	"fmt"
	"slices"

	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// A TaskManager of a cluster that runs job binaries (Config.Workers) runs
// no user code itself: each job's tasks run in a child process of that
// job's binary, its job worker, so a job that panics, leaks or exhausts
// memory takes down its worker only — not the TaskManager, nor the other
// jobs (Flink runs every job of a session cluster in one JVM). The worker
// is a TaskManager of its own inside the child (Config.JobWorker); this
// one holds the slots, answers heartbeats and routes:
//
//   - messages for a job (deploy, cancel, checkpoint trigger, abort and
//     completion, savepoint targets, channel releases) go to the job's
//     worker, started at the job's first deploy; until it listens they
//     wait in order;
//   - a deploy's JobMaster address is replaced by this TaskManager's, so
//     whatever the worker sends its JobMaster passes through here in
//     order: the TaskManager relays it and so knows which executions are
//     still live (for heartbeats, and to fail them when the worker dies);
//   - a worker that exits while executions of it are live fails them
//     ("job worker exited: ..." with the end of its stderr); the next
//     deploy of the job starts a new worker;
//   - a job's end (ReleaseChannels with JobEnded) stops its worker, and a
//     TaskManager told to register again (it was declared dead) stops all
//     of them: their attempts are stale, and a stopped process can
//     neither commit nor send.

// Workers starts job workers: the process side of Config.Workers
// (internal/jobworker implements it).
type Workers interface {
	// Start starts the worker of job from binary (its id in the blob
	// store) with the program arguments args, and returns once the
	// worker's TaskManager listens. It blocks (fetching the binary,
	// starting the process); the TaskManager calls it off its loop.
	Start(ctx context.Context, job, binary string, args []string) (Worker, error)
}

// Worker is a running job worker.
type Worker interface {
	// Address is where the worker's TaskManager endpoint listens.
	Address() string
	// Done is closed once the process has exited; Err then says how.
	Done() <-chan struct{}
	Err() error
	// Stop stops the process (a grace period, then SIGKILL); it does not
	// wait.
	Stop()
}

// hostedJob is a job whose tasks run in a worker of this TaskManager.
type hostedJob struct {
	id        string
	jobMaster string // the real JobMaster's address
	worker    Worker // nil while starting
	starting  bool
	// waiting are the messages for the worker that came while it started.
	waiting []rpc.Message
	// live are the executions deployed to the worker and not yet reported
	// terminal.
	live map[scheduler.ExecutionID]bool
	// gen counts the job's workers, so the exit of a worker already
	// replaced is told apart from the current one's.
	gen int
}

// workerStarted and workerExited come back to the loop from the
// goroutines that start and watch workers.
type workerStarted struct {
	job    string
	gen    int
	worker Worker
	err    error
}

type workerExited struct {
	job string
	gen int
	err error
}

// hostMessage handles m in a TaskManager with Workers; false if m is not
// one it routes.
func (tm *TaskManager) hostMessage(ctx context.Context, m rpc.Message) bool {
	switch m := m.(type) {
	case rpc.DeployTask:
		j := tm.hosted[m.JobID]
		if j == nil {
			j = &hostedJob{id: m.JobID, live: map[scheduler.ExecutionID]bool{}}
			tm.hosted[m.JobID] = j
		}
		j.jobMaster = m.JobMaster
		j.live[m.Execution] = true
		m.JobMaster = tm.cfg.Address
		if j.worker == nil && !j.starting {
			if m.Binary == "" {
				delete(j.live, m.Execution)
				tm.failHosted(j.jobMaster, m.JobID, m.Execution, fmt.Errorf("task manager %s: deploying %v: the deploy names no job binary, and this TaskManager runs jobs only in workers of their binaries", tm.cfg.ID, m.Execution))
				return true
			}
			tm.startWorker(ctx, j, m.Binary, m.Args)
		}
		tm.toWorker(j, m)
	case rpc.CancelTask:
		tm.toJob(m.JobID, m)
	case rpc.TriggerCheckpoint:
		if j := tm.hosted[m.JobID]; j != nil {
			tm.toWorker(j, m)
		} else {
			tm.decline(m.JobID, m.Execution, nil, m.CheckpointID, "task is not running")
		}
	case rpc.AbortCheckpoint:
		tm.toJob(m.JobID, m)
	case rpc.NotifyCheckpointComplete:
		tm.toJob(m.JobID, m)
	case rpc.SavepointTarget:
		tm.toJob(m.JobID, m)
	case rpc.DrainSource:
		tm.toJob(m.JobID, m)
	case rpc.ReleaseChannels:
		j := tm.hosted[m.JobID]
		if j == nil {
			return true
		}
		if m.JobEnded {
			tm.stopHosted(j)
			return true
		}
		tm.toWorker(j, m)
	// What the workers send their JobMaster, relayed.
	case rpc.TaskStateUpdate:
		if j := tm.hosted[m.JobID]; j != nil {
			if m.State.Terminal() {
				delete(j.live, m.Execution)
			}
			tm.relay(j, m)
		}
	case rpc.MetricsReport:
		if j := tm.hosted[m.JobID]; j != nil {
			tm.relay(j, m)
		}
	case rpc.AcknowledgeCheckpoint:
		if j := tm.hosted[m.JobID]; j != nil {
			tm.relay(j, m)
		}
	case rpc.DeclineCheckpoint:
		if j := tm.hosted[m.JobID]; j != nil {
			tm.relay(j, m)
		}
	case rpc.TaskEndOfInput:
		if j := tm.hosted[m.JobID]; j != nil {
			tm.relay(j, m)
		}
	default:
		return false
	}
	return true
}

// startWorker starts j's worker off the loop; the result comes back as a
// workerStarted.
func (tm *TaskManager) startWorker(ctx context.Context, j *hostedJob, binary string, args []string) {
	j.starting = true
	j.gen++
	gen, job := j.gen, j.id
	tm.wg.Add(1)
	go func() {
		defer tm.wg.Done()
		w, err := tm.cfg.Workers.Start(ctx, job, binary, args)
		select {
		case tm.hostEvents <- workerStarted{job: job, gen: gen, worker: w, err: err}:
		case <-ctx.Done():
			if w != nil {
				w.Stop()
			}
		}
	}()
}

// hostEvent handles what the worker goroutines report.
func (tm *TaskManager) hostEvent(ctx context.Context, ev any) {
	switch ev := ev.(type) {
	case workerStarted:
		j := tm.hosted[ev.job]
		if j == nil || j.gen != ev.gen {
			if ev.worker != nil { // the job ended while it started
				ev.worker.Stop()
			}
			return
		}
		j.starting = false
		if ev.err != nil {
			tm.cfg.Logger.Error("task manager: starting a job worker failed", "task_manager", tm.cfg.ID, "job_id", j.id, "error", ev.err)
			for e := range j.live {
				tm.failHosted(j.jobMaster, j.id, e, fmt.Errorf("task manager %s: starting the worker of job %s: %w", tm.cfg.ID, j.id, ev.err))
			}
			delete(tm.hosted, j.id)
			return
		}
		j.worker = ev.worker
		tm.cfg.Logger.Info("task manager: job worker started", "task_manager", tm.cfg.ID, "job_id", j.id, "worker", ev.worker.Address())
		waiting := j.waiting
		j.waiting = nil
		for _, m := range waiting {
			tm.toWorker(j, m)
		}
		tm.wg.Add(1)
		go func() {
			defer tm.wg.Done()
			select {
			case <-ev.worker.Done():
			case <-ctx.Done():
				ev.worker.Stop()
				<-ev.worker.Done()
				return
			}
			select {
			case tm.hostEvents <- workerExited{job: ev.job, gen: ev.gen, err: ev.worker.Err()}:
			case <-ctx.Done():
			}
		}()
	case workerExited:
		j := tm.hosted[ev.job]
		if j == nil || j.gen != ev.gen {
			return
		}
		delete(tm.hosted, j.id)
		if len(j.live) == 0 {
			tm.cfg.Logger.Info("task manager: job worker exited", "task_manager", tm.cfg.ID, "job_id", j.id, "status", fmt.Sprint(ev.err))
			return
		}
		err := fmt.Errorf("task manager %s: the worker process of job %s exited: %w", tm.cfg.ID, j.id, ev.err)
		tm.cfg.Logger.Error("task manager: job worker died with tasks running", "task_manager", tm.cfg.ID, "job_id", j.id, "tasks", len(j.live), "error", ev.err)
		for e := range j.live {
			tm.failHosted(j.jobMaster, j.id, e, err)
		}
	}
}

// toJob sends m to its job's worker, if the job runs here.
func (tm *TaskManager) toJob(job string, m rpc.Message) {
	if j := tm.hosted[job]; j != nil {
		tm.toWorker(j, m)
	}
}

func (tm *TaskManager) toWorker(j *hostedJob, m rpc.Message) {
	if j.worker == nil {
		j.waiting = append(j.waiting, m)
		return
	}
	gw := tm.cfg.Transport.TaskManager(j.worker.Address())
	var err error
	switch m := m.(type) {
	case rpc.DeployTask:
		err = gw.DeployTask(m)
	case rpc.CancelTask:
		err = gw.CancelTask(m)
	case rpc.TriggerCheckpoint:
		err = gw.TriggerCheckpoint(m)
	case rpc.AbortCheckpoint:
		err = gw.AbortCheckpoint(m)
	case rpc.NotifyCheckpointComplete:
		err = gw.NotifyCheckpointComplete(m)
	case rpc.SavepointTarget:
		err = gw.SavepointTarget(m)
	case rpc.DrainSource:
		err = gw.DrainSource(m)
	case rpc.ReleaseChannels:
		err = gw.ReleaseChannels(m)
	default:
		err = fmt.Errorf("no route for %T", m)
	}
	if err != nil {
		// The worker is gone; its exit fails what it ran.
		tm.cfg.Logger.Debug("task manager: message to job worker not delivered", "job_id", j.id, "type", fmt.Sprintf("%T", m), "error", err)
	}
}

// relay passes what a worker sent to its job's JobMaster.
func (tm *TaskManager) relay(j *hostedJob, m rpc.Message) {
	gw := tm.cfg.Transport.JobMaster(j.jobMaster)
	var err error
	switch m := m.(type) {
	case rpc.TaskStateUpdate:
		err = gw.UpdateTaskState(m)
	case rpc.MetricsReport:
		err = gw.ReportMetrics(m)
	case rpc.AcknowledgeCheckpoint:
		err = gw.AcknowledgeCheckpoint(m)
	case rpc.DeclineCheckpoint:
		err = gw.DeclineCheckpoint(m)
	case rpc.TaskEndOfInput:
		err = gw.EndOfInput(m)
	}
	if err != nil {
		tm.cfg.Logger.Debug("task manager: message to job master not delivered", "job_id", j.id, "type", fmt.Sprintf("%T", m), "error", err)
	}
}

func (tm *TaskManager) failHosted(jobMaster, job string, e scheduler.ExecutionID, err error) {
	u := rpc.TaskStateUpdate{JobID: job, Execution: e, State: scheduler.Failed, Failure: rpc.FailureOf(err)}
	if serr := tm.cfg.Transport.JobMaster(jobMaster).UpdateTaskState(u); serr != nil {
		tm.cfg.Logger.Debug("task manager: task state not delivered", "execution", e.String(), "error", serr)
	}
}

// stopHosted stops j's worker and forgets the job: its executions are
// over as far as its JobMaster is concerned.
func (tm *TaskManager) stopHosted(j *hostedJob) {
	delete(tm.hosted, j.id)
	if j.worker != nil {
		j.worker.Stop()
	}
}

// stopAllHosted stops every worker (fencing, on Reregister).
func (tm *TaskManager) stopAllHosted() {
	for _, j := range tm.hosted {
		tm.stopHosted(j)
	}
}

// hostedExecutions are the live executions of job in workers (every job
// when job is empty).
func (tm *TaskManager) hostedExecutions(job string) []scheduler.ExecutionID {
	var out []scheduler.ExecutionID
	for id, j := range tm.hosted {
		if job != "" && id != job {
			continue
		}
		for e := range j.live {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b scheduler.ExecutionID) int {
		if a.Vertex != b.Vertex {
			return a.Vertex - b.Vertex
		}
		return a.Subtask - b.Subtask
	})
	return out
}
