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

// JobMaster runs one job: it feeds the Scheduler with events from the
// ResourceManager, the TaskManagers and the user, and carries out the
// actions the Scheduler returns.
type JobMaster struct {
	job     *Job
	sched   *scheduler.Scheduler
	inbox   chan any
	stopped chan struct{}
	rm      *ResourceManager
	tms     map[string]*TaskManager
	onDone  func(JobResult)

	mu      sync.Mutex
	metrics []OperatorMetrics
	execs   []scheduler.Execution
	state   scheduler.JobState
	start   time.Time
	result  *JobResult
	done    chan struct{}
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
	jm.apply(ctx, jm.sched.Handle(scheduler.EvStart{}))
	for !jm.sched.State().Terminal() {
		select {
		case <-ctx.Done():
			jm.finish(JobResult{State: scheduler.JobCanceled, Err: fmt.Errorf("cluster shut down: %w", ctx.Err())})
			return
		case m := <-jm.inbox:
			var ev scheduler.Event
			switch m := m.(type) {
			case msgTaskState:
				ev = scheduler.EvTaskState(m)
			case slotAnswer:
				if m.Err != nil {
					ev = scheduler.EvSlotsRefused{Err: m.Err}
				} else {
					ev = scheduler.EvSlotsGranted{Slots: m.Slots}
				}
			case msgCancelJob:
				ev = scheduler.EvCancel{}
			}
			jm.apply(ctx, jm.sched.Handle(ev))
		}
	}
}

func (jm *JobMaster) apply(ctx context.Context, acts []scheduler.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case scheduler.ActRequestSlots:
			reply := make(chan slotAnswer, 1)
			if err := jm.rm.send(ctx, msgRequestSlots{JobID: jm.job.ID, N: a.N, Reply: reply}); err != nil {
				continue
			}
			go func() {
				select {
				case ans := <-reply:
					jm.post(ans)
				case <-ctx.Done():
				}
			}()
		case scheduler.ActDeploy:
			tm := jm.tms[a.Slot.TaskManager]
			if tm == nil {
				jm.post(msgTaskState{ID: a.ID, State: scheduler.Failed, Err: fmt.Errorf("no TaskManager %s", a.Slot.TaskManager)})
				continue
			}
			_ = tm.send(ctx, msgDeploy{Job: jm.job, ID: a.ID, Slot: a.Slot, JM: jm})
		case scheduler.ActCancelTask:
			if tm := jm.tms[a.Slot.TaskManager]; tm != nil {
				_ = tm.send(ctx, msgCancelTask{JobID: jm.job.ID, ID: a.ID})
			}
		case scheduler.ActCancelSlotRequest:
			_ = jm.rm.send(ctx, msgCancelSlotRequest{JobID: jm.job.ID})
		case scheduler.ActReleaseSlots:
			_ = jm.rm.send(ctx, msgReleaseSlots{JobID: jm.job.ID, Slots: a.Slots})
		case scheduler.ActJobDone:
			jm.logOutcome(a)
			jm.finish(JobResult{State: a.State, Err: a.Err})
		}
	}
	jm.mu.Lock()
	jm.execs = jm.sched.Executions()
	jm.state = jm.sched.State()
	jm.mu.Unlock()
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
