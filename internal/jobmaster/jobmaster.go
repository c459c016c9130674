// Package jobmaster is the JobMaster role: the thin shell that drives one
// job's scheduler.Scheduler (a pure state machine). Its loop turns the
// messages of the ResourceManager, the TaskManagers and the Dispatcher into
// events and carries out the actions the Scheduler returns by sending
// messages through rpc gateways. It shares nothing with the other roles:
// it knows the ResourceManager and the Dispatcher by address, and the
// TaskManagers from the slots it is granted.
package jobmaster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Config describes one job's JobMaster.
type Config struct {
	JobID    string
	JobName  string
	JobGraph *jobgraph.JobGraph
	// Address is where the JobMaster listens; ResourceManager and
	// Dispatcher are where it reaches those roles.
	Address         string
	ResourceManager string
	Dispatcher      string
	Transport       rpc.Transport
	// Restart is the job's restart strategy (zero: none). An
	// exponential-delay strategy without a seed gets one from the job id,
	// so that jobs failing together do not restart in step, yet a job's
	// delays do not depend on chance.
	Restart scheduler.RestartStrategy
	// OnRestart, if set, is called when the job restarts, once every task
	// of the previous attempt has ended: the process that runs the roles
	// releases that attempt's channels in its shuffle environment (the
	// JobMaster shares nothing with the TaskManagers, so it cannot). It
	// runs on the JobMaster's loop and must not block. Vertices is nil
	// for the whole job, else the vertices of the region restarted alone
	// (region failover), whose previous attempt it is.
	OnRestart func(previousAttempt int, vertices []int)
	// Checkpoint enables checkpoints (nil: none): the JobMaster runs the
	// job's checkpoint coordinator and, on a restart, deploys the new
	// attempt from the latest completed checkpoint (checkpoint.go).
	Checkpoint *jobcode.Checkpointing
	// Resume, if set, is the savepoint the job starts from: loaded and
	// matched to the job's operators by UID before the job starts
	// (savepoint.go); a failure before the job's first completed
	// checkpoint restores from it again.
	Resume *jobcode.Resume
	// Logger receives how the job ended; nil: nothing is logged.
	Logger *slog.Logger
	// HeartbeatInterval and HeartbeatTimeout set the heartbeats to the
	// job's TaskManagers (heartbeat.go; 0: internal/heartbeat's defaults,
	// 1 s and 5 s).
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// Binary and Args, in a cluster that runs job binaries, are the
	// job's binary (its id in the Dispatcher's blob store) and program
	// arguments, which every deploy carries to its TaskManager; empty
	// when the job's code is in the TaskManagers' process.
	Binary string
	Args   []string
	// Incarnation is how many JobMasters of the job ran before this one
	// (jobstore.Record.Incarnation). Above 0 the JobMaster recovers the
	// job (recovery.go): its attempts are numbered from
	// scheduler.AttemptBase(Incarnation), and its first deploy restores
	// the latest completed checkpoint in the job's checkpoint storage.
	Incarnation int
}

// JobMaster runs one job.
//
// Its loop never blocks on anything but its own select, so it always keeps
// draining its inbox:
//   - Sends go through rpc gateways, which never wait for the receiver; the
//     transport keeps them in order per receiver, and the loop sends in the
//     Scheduler's order (a deploy before its cancel, the slot release
//     before the job is reported done). That was the JobMaster's own FIFO
//     outbox before the roles were split; it is now the transport's
//     contract.
//   - Events the JobMaster raises itself (a deploy to a TaskManager that
//     cannot be reached fails the execution) go to a local queue fed to the
//     Scheduler after the current actions, never to its own inbox.
//   - The slot answer is a message like any other (SlotsGranted or
//     SlotsRefused with the request's id), so waiting for slots needs no
//     goroutine and no reply channel.
//   - Time reaches the Scheduler only as EvTick: the loop ticks before each
//     batch of messages (so a failure is timed when it arrives, which the
//     restart strategies count by) and when the timer set for an
//     ActScheduleTick (a restart delay) fires. One timer serves, since the
//     Scheduler asks for one tick at a time; it is stopped when Run
//     returns.
type JobMaster struct {
	cfg   Config
	ep    rpc.Endpoint
	sched *scheduler.Scheduler
	rm    rpc.ResourceManagerGateway
	disp  rpc.DispatcherGateway
	start time.Time

	local   []scheduler.Event // events raised by the JobMaster itself
	request uint64            // id of the latest slot request
	tms     map[string]string // TaskManager id → address, from slot grants
	// dataAddrs are the TaskManagers' data-plane addresses, from slot
	// grants (none in the embedded cluster).
	dataAddrs map[string]string
	metrics   map[subtask]*execMetrics
	done      bool        // JobFinished was sent
	timer     *time.Timer // for the tick the Scheduler asked for; nil: none

	ck *ckShell // nil without checkpointing
	// rest is what the REST API shows beyond the Scheduler's view
	// (details.go).
	rest details
	// hb watches the TaskManagers (heartbeat.go); set when Run starts,
	// under hbMu for TaskManagerUnreachable, which may come earlier.
	hb   *hbShell
	hbMu sync.Mutex
	// Work off the loop (storage I/O) hands its result back on asyncC;
	// asyncCtx ends and asyncWG is waited for when Run returns.
	asyncC      chan func()
	asyncCtx    context.Context
	asyncCancel context.CancelFunc
	asyncWG     sync.WaitGroup
	// killed makes Run return without a word to anyone (Kill).
	killed atomic.Bool
}

type subtask struct{ vertex, index int }

// execMetrics is the latest counter snapshot of a subtask's current attempt.
type execMetrics struct {
	attempt int
	final   bool // from the task's terminal state: later reports are older
	ops     []rpc.OperatorMetrics
}

// New creates the JobMaster's endpoint; Run serves it.
func New(cfg Config) (*JobMaster, error) {
	if r := cfg.Restart; r.Kind == scheduler.RestartExponentialDelay && r.ExponentialDelay != nil && r.ExponentialDelay.Seed == 0 {
		p := *r.ExponentialDelay // the caller's copy stays as it was
		h := fnv.New64a()
		h.Write([]byte(cfg.JobID))
		p.Seed = h.Sum64()
		cfg.Restart.ExponentialDelay = &p
	}
	sched, err := scheduler.New(cfg.JobGraph, cfg.Restart)
	if err != nil {
		return nil, fmt.Errorf("job master of job %s: %w", cfg.JobID, err)
	}
	if cfg.Incarnation < 0 {
		return nil, fmt.Errorf("job master of job %s: negative incarnation %d", cfg.JobID, cfg.Incarnation)
	}
	sched.SetAttemptBase(scheduler.AttemptBase(cfg.Incarnation))
	ep, err := cfg.Transport.Listen(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("job master of job %s: %w", cfg.JobID, err)
	}
	actx, acancel := context.WithCancel(context.Background())
	return &JobMaster{
		asyncC:      make(chan func()),
		asyncCtx:    actx,
		asyncCancel: acancel,
		cfg:         cfg,
		ep:          ep,
		sched:       sched,
		rm:          cfg.Transport.ResourceManager(cfg.ResourceManager),
		disp:        cfg.Transport.Dispatcher(cfg.Dispatcher),
		start:       time.Now(),
		tms:         map[string]string{},
		dataAddrs:   map[string]string{},
		metrics:     map[subtask]*execMetrics{},
		rest:        newDetails(),
	}, nil
}

// Run drives the job until it has ended and been reported, or until ctx
// ends (the cluster shuts down), which ends the job as CANCELED.
func (jm *JobMaster) Run(ctx context.Context) {
	defer jm.ep.Close()
	defer jm.stopTimer()
	defer jm.asyncCancel()
	defer jm.stopCheckpointing()
	jm.step(scheduler.EvTick{Now: time.Now()})
	// Every job has a checkpoint coordinator: without checkpointing it
	// takes no checkpoints but serves savepoints (as Flink's does).
	if err := jm.startCheckpointing(ctx); err != nil {
		jm.finish(scheduler.JobFailed, err)
		return
	}
	defer jm.stopHeartbeats()
	if err := jm.startHeartbeats(); err != nil {
		jm.finish(scheduler.JobFailed, err)
		return
	}
	jm.recover()
	jm.step(scheduler.EvStart{})
	if !jm.done { // the job may already have failed (no ResourceManager)
		jm.publish()
	}
	shutdown := func() {
		if jm.killed.Load() {
			return // as on SIGKILL: nobody hears of the job's end
		}
		jm.finish(scheduler.JobCanceled, fmt.Errorf("cluster shut down: %w", ctx.Err()))
	}
	for !jm.done {
		// A cluster shutting down comes first: its TaskManagers cancel
		// their tasks too, and their reports (ready at the same time)
		// must not fail the job as unexpected cancellations.
		if ctx.Err() != nil {
			shutdown()
			return
		}
		select {
		case <-ctx.Done():
			shutdown()
			return
		case <-jm.ep.Ready():
			if ctx.Err() != nil {
				// The shutdown raced the messages (see above).
				shutdown()
				return
			}
			jm.step(scheduler.EvTick{Now: time.Now()})
			for _, m := range jm.ep.Receive() {
				jm.handle(m)
			}
			if len(jm.local) > 0 { // raised by the checkpoint shell
				jm.step(scheduler.EvTick{Now: time.Now()})
			}
			if !jm.done {
				jm.publish()
			}
		case <-jm.timerC():
			jm.timer = nil
			jm.step(scheduler.EvTick{Now: time.Now()})
			if !jm.done {
				jm.publish()
			}
		case now := <-jm.ckTickC():
			jm.ckStep(checkpoint.EvTick{Now: now})
			jm.step(scheduler.EvTick{Now: now}) // a failed job fails from ckStep
		case <-jm.hbTimerC():
			jm.step(scheduler.EvTick{Now: time.Now()}) // a failure is timed when it is found
			jm.hbEvent(nil)
			if !jm.done {
				jm.publish()
			}
		case <-jm.hbLostC():
			jm.step(scheduler.EvTick{Now: time.Now()}) // a failure is timed when it is found
			jm.hbLosses()
			if !jm.done {
				jm.publish()
			}
		case done := <-jm.asyncC:
			done()
			jm.step(scheduler.EvTick{Now: time.Now()}) // deploys released, restores failed
			if !jm.done {
				jm.publish()
			}
		}
	}
}

// timerC is the channel of the pending tick's timer; nil (never ready)
// when none is pending.
func (jm *JobMaster) timerC() <-chan time.Time {
	if jm.timer == nil {
		return nil
	}
	return jm.timer.C
}

func (jm *JobMaster) stopTimer() {
	if jm.timer != nil {
		jm.timer.Stop()
		jm.timer = nil
	}
}

func (jm *JobMaster) handle(m rpc.Message) {
	switch m := m.(type) {
	case rpc.SlotsGranted:
		if m.RequestID != jm.request {
			// An answer to a request the Scheduler no longer waits for.
			jm.releaseSlots(offeredSlots(m.Slots))
			return
		}
		for _, s := range m.Slots {
			jm.tms[s.Slot.TaskManager] = s.Address
			if s.DataAddress != "" {
				jm.dataAddrs[s.Slot.TaskManager] = s.DataAddress
			}
		}
		jm.step(scheduler.EvSlotsGranted{Slots: offeredSlots(m.Slots)})
		// Watched after the deploys went out: a TaskManager that cannot be
		// reached fails them with the transport's error.
		for _, s := range m.Slots {
			jm.watchTaskManager(s.Slot.TaskManager, s.Address)
		}
	case rpc.SlotsRefused:
		if m.RequestID == jm.request {
			jm.step(scheduler.EvSlotsRefused{Err: errors.New(m.Reason)})
		}
	case rpc.TaskStateUpdate:
		if m.Metrics != nil {
			jm.recordMetrics(m.Execution, m.Metrics, m.State.Terminal())
		}
		jm.rest.taskState(m, time.Now())
		jm.step(scheduler.EvTaskState{ID: m.Execution, State: m.State, Err: m.Failure.Err(), NoRestart: m.Failure != nil && m.Failure.NoRestart})
		jm.taskStateForCheckpoints(m.Execution, m.State)
	case rpc.AcknowledgeCheckpoint:
		jm.ck.ackStats(m)
		jm.rest.ckAck(m, time.Now())
		jm.ckStep(checkpoint.EvAck{ID: checkpoint.ID(m.CheckpointID), Task: taskID(m.Execution), States: m.States})
	case rpc.DeclineCheckpoint:
		jm.ckStep(checkpoint.EvDecline{ID: checkpoint.ID(m.CheckpointID), Task: taskID(m.Execution), Reason: m.Reason})
	case rpc.TaskEndOfInput:
		jm.endOfInput(m.Execution)
	case rpc.MetricsReport:
		for _, t := range m.Tasks {
			jm.recordMetrics(t.Execution, t.Operators, false)
			jm.rest.rates(t)
		}
	case rpc.TaskManagerHeartbeat:
		jm.hbEvent(heartbeat.EvHeartbeat{Target: m.TaskManager, Payload: m.Executions})
		jm.fenceUnknown(m.TaskManager, m.Executions)
	case rpc.CancelJob:
		jm.step(scheduler.EvCancel{})
	case rpc.TriggerSavepoint:
		jm.triggerSavepoint(m)
	default:
		jm.logger().Warn("job master: unexpected message", "job_id", jm.cfg.JobID, "type", fmt.Sprintf("%T", m))
	}
}

func offeredSlots(offers []rpc.SlotOffer) []scheduler.SlotID {
	slots := make([]scheduler.SlotID, len(offers))
	for i, o := range offers {
		slots[i] = o.Slot
	}
	return slots
}

// recordMetrics keeps the newest snapshot of a subtask's current attempt.
// A periodic report may arrive after the task's terminal state (they are
// sent from different goroutines of the TaskManager), so once the final
// counts are in, later reports of that attempt are ignored.
func (jm *JobMaster) recordMetrics(id scheduler.ExecutionID, ops []rpc.OperatorMetrics, final bool) {
	k := subtask{id.Vertex, id.Subtask}
	cur := jm.metrics[k]
	if cur != nil && (cur.attempt > id.Attempt || cur.attempt == id.Attempt && cur.final) {
		return
	}
	jm.metrics[k] = &execMetrics{attempt: id.Attempt, final: final, ops: ops}
}

// step feeds ev to the Scheduler and carries out its actions, then does the
// same for every event those actions raised, in order, until none is left.
func (jm *JobMaster) step(ev scheduler.Event) {
	jm.local = append(jm.local, ev)
	for len(jm.local) > 0 {
		ev := jm.local[0]
		jm.local = jm.local[1:]
		jm.apply(jm.sched.Handle(ev))
	}
}

// apply carries out actions; a send that fails becomes an event for the
// Scheduler on the local queue.
func (jm *JobMaster) apply(acts []scheduler.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case scheduler.ActRequestSlots:
			jm.request++
			err := jm.rm.RequestSlots(rpc.RequestSlots{JobID: jm.cfg.JobID, RequestID: jm.request, N: a.N, JobMaster: jm.cfg.Address})
			if err != nil {
				jm.local = append(jm.local, scheduler.EvSlotsRefused{Err: fmt.Errorf("resource manager: %w", err)})
			}
		case scheduler.ActDeploy:
			jm.rest.deployed(a.ID, a.Slot, time.Now())
			if !jm.holdDeploy(a) {
				jm.deploy(a)
			}
		case scheduler.ActCancelTask:
			if jm.unholdDeploy(a.ID) {
				jm.local = append(jm.local, scheduler.EvTaskState{ID: a.ID, State: scheduler.Canceled})
				continue
			}
			addr, ok := jm.tms[a.Slot.TaskManager]
			if !ok || jm.cfg.Transport.TaskManager(addr).CancelTask(rpc.CancelTask{JobID: jm.cfg.JobID, Execution: a.ID}) != nil {
				// No TaskManager to run it: the task is gone.
				jm.local = append(jm.local, scheduler.EvTaskState{ID: a.ID, State: scheduler.Canceled})
			}
		case scheduler.ActCancelSlotRequest:
			if err := jm.rm.CancelSlotRequest(rpc.CancelSlotRequest{JobID: jm.cfg.JobID, RequestID: jm.request}); err != nil {
				jm.local = append(jm.local, scheduler.EvSlotsRefused{Err: fmt.Errorf("resource manager: %w", err)})
			}
		case scheduler.ActReleaseSlots:
			jm.releaseSlots(a.Slots)
		case scheduler.ActScheduleTick:
			// At carries the monotonic reading of the tick it was computed
			// from, so the timer does not fire before it: the tick it
			// brings is never too early for the Scheduler.
			jm.stopTimer()
			jm.timer = time.NewTimer(time.Until(a.At))
		case scheduler.ActRestarting:
			jm.logger().Info("job restarting", "job", jm.cfg.JobName, "job_id", jm.cfg.JobID, "attempt", a.Attempt, "cause", a.Cause)
			if jm.cfg.OnRestart != nil {
				jm.cfg.OnRestart(a.PreviousAttempt, a.Vertices)
			}
			jm.restarting()
		case scheduler.ActJobDone:
			jm.logOutcome(a)
			jm.finish(a.State, a.Err)
		}
	}
}

// deploy sends a deploy to its TaskManager, with the checkpoint the
// attempt restores from.
func (jm *JobMaster) deploy(a scheduler.ActDeploy) {
	addr, ok := jm.tms[a.Slot.TaskManager]
	if !ok {
		jm.local = append(jm.local, scheduler.EvTaskState{ID: a.ID, State: scheduler.Failed, Err: fmt.Errorf("no TaskManager %s", a.Slot.TaskManager)})
		return
	}
	err := jm.cfg.Transport.TaskManager(addr).DeployTask(rpc.DeployTask{JobID: jm.cfg.JobID, Execution: a.ID, Slot: a.Slot, JobMaster: jm.cfg.Address, Restore: jm.restoreHandles(), Placement: jm.placement(),
		Binary: jm.cfg.Binary, Args: jm.cfg.Args})
	if err != nil {
		jm.local = append(jm.local, scheduler.EvTaskState{ID: a.ID, State: scheduler.Failed, Err: fmt.Errorf("deploying %v to TaskManager %s: %w", a.ID, a.Slot.TaskManager, err)})
	}
}

// placement is where every execution runs, by data-plane address, for a
// deploy: all slots are known by then (the scheduler deploys once it has
// them all). Nil when no TaskManager has a data plane of its own.
func (jm *JobMaster) placement() []rpc.TaskPlacement {
	if len(jm.dataAddrs) == 0 {
		return nil
	}
	var out []rpc.TaskPlacement
	for _, e := range jm.sched.Executions() {
		out = append(out, rpc.TaskPlacement{Vertex: e.ID.Vertex, Subtask: e.ID.Subtask, DataAddress: jm.dataAddrs[e.Slot.TaskManager]})
	}
	return out
}

func (jm *JobMaster) releaseSlots(slots []scheduler.SlotID) {
	if err := jm.rm.ReleaseSlots(rpc.ReleaseSlots{JobID: jm.cfg.JobID, Slots: slots}); err != nil {
		// The ResourceManager is gone, and its slot table with it.
		jm.logger().Debug("job master: slot release not delivered", "job_id", jm.cfg.JobID, "error", err)
	}
}

// publish sends the job's current status to the Dispatcher.
func (jm *JobMaster) publish() {
	st := rpc.JobStatus{JobID: jm.cfg.JobID, State: jm.sched.State(), Restarts: jm.sched.Restarts(), Executions: jm.executions(), Operators: jm.totals(),
		Details: jm.details()}
	if err := jm.disp.UpdateJobStatus(st); err != nil {
		jm.logger().Debug("job master: job status not delivered", "job_id", jm.cfg.JobID, "error", err)
	}
}

// finish reports the job's end to the Dispatcher, once.
func (jm *JobMaster) finish(state scheduler.JobState, err error) {
	if jm.done {
		return
	}
	jm.done = true
	jm.refuseSavepoints(state)
	completed, restored := jm.checkpointCounts()
	if state == scheduler.JobFailed {
		jm.rest.jobFailed(rpc.FailureOf(err), time.Now())
	}
	f := rpc.JobFinished{
		JobID: jm.cfg.JobID, JobName: jm.cfg.JobName, State: state, Failure: rpc.FailureOf(err),
		Duration: time.Since(jm.start), Restarts: jm.sched.Restarts(), Executions: jm.executions(), Operators: jm.totals(),
		CheckpointsCompleted: completed, RestoredCheckpoint: restored, RestoredFrom: jm.restoredFrom(),
		LastCheckpointDuration: jm.lastCheckpointDuration(),
		Details:                jm.details(),
	}
	if jm.ck != nil {
		f.LastCheckpointSize, f.LastCheckpointSyncPause = jm.ck.lastSize, jm.ck.lastSyncPause
	}
	if err := jm.disp.JobFinished(f); err != nil {
		jm.logger().Debug("job master: job end not delivered", "job_id", jm.cfg.JobID, "error", err)
	}
}

// lastCheckpointDuration is the last completed checkpoint's duration (0:
// none, or no checkpointing).
func (jm *JobMaster) lastCheckpointDuration() time.Duration {
	if jm.ck == nil {
		return 0
	}
	return jm.ck.lastDuration
}

func (jm *JobMaster) executions() []rpc.ExecutionStatus {
	execs := jm.sched.Executions()
	out := make([]rpc.ExecutionStatus, len(execs))
	for i, e := range execs {
		out[i] = rpc.ExecutionStatus{ID: e.ID, State: e.State, Slot: e.Slot, Failure: rpc.FailureOf(e.Err)}
		jm.rest.execDetails(&out[i])
		jm.execMetrics(&out[i])
	}
	return out
}

// totals sums the latest snapshots per operator.
func (jm *JobMaster) totals() []rpc.OperatorTotals {
	byNode := map[int]*rpc.OperatorTotals{}
	for _, em := range jm.metrics {
		for _, m := range em.ops {
			t := byNode[m.Node]
			if t == nil {
				t = &rpc.OperatorTotals{Node: m.Node, Name: m.Name, UID: m.UID}
				byNode[m.Node] = t
			}
			t.Parallelism++
			t.RecordsIn += m.RecordsIn
			t.RecordsOut += m.RecordsOut
			t.BackpressureWaits += m.BackpressureWaits
		}
	}
	out := make([]rpc.OperatorTotals, 0, len(byNode))
	for _, t := range byNode {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

func (jm *JobMaster) logger() *slog.Logger {
	if jm.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return jm.cfg.Logger
}

// logOutcome logs how the job ended, once: here is where its fate is
// decided, so a failure is logged here and not by every task it touches.
// The failing subtask is named by attributes; a panic's stack is logged at
// debug level only (it is in the error for whoever wants it).
func (jm *JobMaster) logOutcome(a scheduler.ActJobDone) {
	log := jm.cfg.Logger
	if log == nil {
		return
	}
	log = log.With("job", jm.cfg.JobName, "job_id", jm.cfg.JobID)
	if a.State != scheduler.JobFailed {
		log.Debug("job ended", "state", a.State.String())
		return
	}
	var te *runtime.TaskError
	if !errors.As(a.Err, &te) {
		log.Error("job failed", "error", a.Err)
		return
	}
	log.Error("job failed", "operator", te.Operator, "task", te.Task.VertexName,
		"subtask", te.Task.Subtask, "attempt", te.Task.Attempt, "error", te.Err)
	if te.Stack != "" {
		log.Debug("stack of the failing subtask", "operator", te.Operator, "subtask", te.Task.Subtask, "stack", te.Stack)
	}
}
