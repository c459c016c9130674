package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
)

// JobMaster runs one job. It is the thin shell around the job's
// scheduler.Scheduler (a pure state machine): its loop turns messages from
// the ResourceManager, the TaskManagers and the user into typed events and
// carries out the typed actions the Scheduler returns.
//
// The loop never blocks on anything but its own select, so it always keeps
// draining its inbox (a TaskManager's tasks report into it; were the loop
// stuck in a send to that TaskManager, neither could move):
//   - Events the JobMaster raises itself (a deploy to a TaskManager it does
//     not know fails the execution) go to a local queue fed to the Scheduler
//     after the current actions, never to its own inbox, which may be full.
//   - Messages to the ResourceManager and TaskManagers go to the outbox, a
//     FIFO drained by the loop: each message is handed off without blocking
//     when the receiver's inbox has room, otherwise the loop offers the head
//     as one case of its select, next to its inbox. One FIFO keeps the
//     Scheduler's order across receivers (a deploy before its cancel, the
//     slot release before the job is reported done). It needs no bound of
//     its own: the Scheduler emits at most one deploy and one cancel per
//     execution and a few slot messages per job.
//   - The slot answer arrives on a reply channel that is a case of the same
//     select, so waiting for slots needs no goroutine.
type JobMaster struct {
	job     *Job
	sched   *scheduler.Scheduler
	inbox   chan any
	stopped chan struct{}
	rm      *ResourceManager
	tms     map[string]*TaskManager
	onDone  func(JobResult)

	// Owned by the run loop.
	local     []scheduler.Event // events raised by the JobMaster itself
	outbox    []outMsg          // messages not yet handed to their receiver
	slotReply chan slotAnswer   // the pending slot request's answer, or nil

	mu      sync.Mutex
	metrics []OperatorMetrics
	execs   []scheduler.Execution
	state   scheduler.JobState
	start   time.Time
	result  *JobResult
	done    chan struct{}
}

// outMsg is one message in the outbox: m for the inbox to, or, when done is
// set, the job's end, reported once everything before it was handed off.
type outMsg struct {
	to   chan<- any
	m    any
	done *JobResult
}

// JobResult is how a job ended.
type JobResult struct {
	JobID     string
	JobName   string
	State     scheduler.JobState
	Err       error
	Duration  time.Duration
	Operators []OperatorTotals
}

// OperatorTotals are an operator's record counts summed over its subtasks.
type OperatorTotals struct {
	Node        int
	Name        string
	UID         string
	Parallelism int
	RecordsIn   int64
	RecordsOut  int64
	// BackpressureWaits counts how often the operator's output had to wait
	// for a free buffer.
	BackpressureWaits int64
}

type msgCancelJob struct{}

func newJobMaster(job *Job, rm *ResourceManager, tms map[string]*TaskManager) *JobMaster {
	sched := scheduler.New(job.JobGraph)
	return &JobMaster{
		job:     job,
		sched:   sched,
		execs:   sched.Executions(), // CREATED until the JobMaster starts
		inbox:   make(chan any, 256),
		stopped: make(chan struct{}),
		rm:      rm,
		tms:     tms,
		done:    make(chan struct{}),
		start:   time.Now(),
	}
}

// post delivers a message from another goroutine (a task, the user). The
// run loop itself never posts: see JobMaster.
func (jm *JobMaster) post(m any) {
	select {
	case jm.inbox <- m:
	case <-jm.stopped:
	}
}

func (jm *JobMaster) registerMetrics(m []OperatorMetrics) {
	jm.mu.Lock()
	jm.metrics = append(jm.metrics, m...)
	jm.mu.Unlock()
}

func (jm *JobMaster) run(ctx context.Context) {
	defer close(jm.stopped)
	jm.step(scheduler.EvTick{Now: time.Now()})
	jm.step(scheduler.EvStart{})
	for {
		jm.flush()
		if jm.sched.State().Terminal() && len(jm.outbox) == 0 {
			return
		}
		var out chan<- any
		var head any
		if len(jm.outbox) > 0 {
			out, head = jm.outbox[0].to, jm.outbox[0].m
		}
		select {
		case <-ctx.Done():
			jm.finish(JobResult{State: scheduler.JobCanceled, Err: fmt.Errorf("cluster shut down: %w", ctx.Err())})
			return
		case out <- head:
			jm.outbox = jm.outbox[1:]
		case ans := <-jm.slotReply:
			jm.slotReply = nil
			if ans.Err != nil {
				jm.step(scheduler.EvSlotsRefused{Err: ans.Err})
			} else {
				jm.step(scheduler.EvSlotsGranted{Slots: ans.Slots})
			}
		case m := <-jm.inbox:
			switch m := m.(type) {
			case msgTaskState:
				jm.step(scheduler.EvTaskState(m))
			case msgCancelJob:
				jm.step(scheduler.EvCancel{})
			}
		}
	}
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
	jm.mu.Lock()
	jm.execs = jm.sched.Executions()
	jm.state = jm.sched.State()
	jm.mu.Unlock()
}

// apply carries out actions without blocking: messages go to the outbox,
// events for the Scheduler to the local queue.
func (jm *JobMaster) apply(acts []scheduler.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case scheduler.ActRequestSlots:
			// Room for the one answer, so the ResourceManager never waits
			// for this loop.
			jm.slotReply = make(chan slotAnswer, 1)
			jm.send(jm.rm.inbox, msgRequestSlots{JobID: jm.job.ID, N: a.N, Reply: jm.slotReply})
		case scheduler.ActDeploy:
			tm := jm.tms[a.Slot.TaskManager]
			if tm == nil {
				jm.local = append(jm.local, scheduler.EvTaskState{ID: a.ID, State: scheduler.Failed, Err: fmt.Errorf("no TaskManager %s", a.Slot.TaskManager)})
				continue
			}
			jm.send(tm.inbox, msgDeploy{Job: jm.job, ID: a.ID, Slot: a.Slot, JM: jm})
		case scheduler.ActCancelTask:
			if tm := jm.tms[a.Slot.TaskManager]; tm != nil {
				jm.send(tm.inbox, msgCancelTask{JobID: jm.job.ID, ID: a.ID})
			}
		case scheduler.ActCancelSlotRequest:
			jm.send(jm.rm.inbox, msgCancelSlotRequest{JobID: jm.job.ID})
		case scheduler.ActReleaseSlots:
			jm.send(jm.rm.inbox, msgReleaseSlots{JobID: jm.job.ID, Slots: a.Slots})
		case scheduler.ActJobDone:
			jm.logOutcome(a)
			jm.outbox = append(jm.outbox, outMsg{done: &JobResult{State: a.State, Err: a.Err}})
		}
	}
}

func (jm *JobMaster) send(to chan<- any, m any) {
	jm.outbox = append(jm.outbox, outMsg{to: to, m: m})
}

// flush hands off queued messages, in order, while their receivers have
// room, and reports the job's end when it reaches it.
func (jm *JobMaster) flush() {
	for len(jm.outbox) > 0 {
		o := jm.outbox[0]
		if o.done != nil {
			jm.finish(*o.done)
		} else {
			select {
			case o.to <- o.m:
			default:
				return
			}
		}
		jm.outbox[0] = outMsg{}
		jm.outbox = jm.outbox[1:]
	}
}

// logOutcome logs how the job ended, once: here is where its fate is
// decided, so a failure is logged here and not by every task it touches.
// The failing subtask is named by attributes; a panic's stack is logged at
// debug level only (it is in the error for whoever wants it).
func (jm *JobMaster) logOutcome(a scheduler.ActJobDone) {
	log := jm.job.Config.Logger
	if log == nil {
		return
	}
	log = log.With("job", jm.job.Name, "job_id", jm.job.ID)
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

func (jm *JobMaster) finish(r JobResult) {
	jm.mu.Lock()
	if jm.result != nil {
		jm.mu.Unlock()
		return
	}
	r.JobID = jm.job.ID
	r.JobName = jm.job.Name
	r.Duration = time.Since(jm.start)
	r.Operators = jm.totalsLocked()
	jm.result = &r
	jm.state = r.State
	jm.execs = jm.sched.Executions()
	jm.mu.Unlock()
	close(jm.done)
	if jm.onDone != nil {
		jm.onDone(r)
	}
}

func (jm *JobMaster) totalsLocked() []OperatorTotals {
	byNode := map[int]*OperatorTotals{}
	for _, m := range jm.metrics {
		t := byNode[int(m.Node)]
		if t == nil {
			t = &OperatorTotals{Node: int(m.Node), Name: m.Name, UID: m.UID}
			byNode[int(m.Node)] = t
		}
		t.Parallelism++
		t.RecordsIn += m.In.Load()
		t.RecordsOut += m.Out.Load()
		if m.Blocked != nil {
			t.BackpressureWaits += m.Blocked()
		}
	}
	out := make([]OperatorTotals, 0, len(byNode))
	for _, t := range byNode {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// JobHandle is the client's view of a submitted job.
type JobHandle struct{ jm *JobMaster }

// ID is the job id.
func (h *JobHandle) ID() string { return h.jm.job.ID }

// Done is closed when the job has ended.
func (h *JobHandle) Done() <-chan struct{} { return h.jm.done }

// Cancel asks the job to cancel; Wait reports when it has.
func (h *JobHandle) Cancel() { h.jm.post(msgCancelJob{}) }

// Wait blocks until the job ends or ctx ends.
func (h *JobHandle) Wait(ctx context.Context) (JobResult, error) {
	select {
	case <-h.jm.done:
		h.jm.mu.Lock()
		defer h.jm.mu.Unlock()
		return *h.jm.result, nil
	case <-ctx.Done():
		return JobResult{}, ctx.Err()
	}
}

// Status is a snapshot of the job's state and executions.
func (h *JobHandle) Status() (scheduler.JobState, []scheduler.Execution) {
	h.jm.mu.Lock()
	defer h.jm.mu.Unlock()
	return h.jm.state, append([]scheduler.Execution(nil), h.jm.execs...)
}

// Totals are the current per-operator record counts.
func (h *JobHandle) Totals() []OperatorTotals {
	h.jm.mu.Lock()
	defer h.jm.mu.Unlock()
	return h.jm.totalsLocked()
}

// ErrUnknownJob is returned for a job id the dispatcher does not know.
var ErrUnknownJob = errors.New("unknown job")
