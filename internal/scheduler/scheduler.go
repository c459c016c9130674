// Package scheduler is the JobMaster's ExecutionGraph and scheduling logic
// as a pure state machine, in the manner of etcd's raft core: events (a slot
// answer, a task's new state, a cancel request, a clock tick) go in through
// Scheduler.Handle, actions (request slots, deploy, cancel, release, ask
// for a tick, restarting, job done) come out. It starts no goroutines, does no I/O and reads no clock,
// so every interleaving of task failures, cancellations and slot answers
// can be scripted in a test (testdata/*.txt). The JobMaster in
// internal/jobmaster is the shell that turns messages into events and carries
// out the actions.
package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ExecState is the state of one execution (attempt) of a subtask.
type ExecState int

const (
	Created ExecState = iota
	Scheduled
	Deploying
	Initializing
	Running
	Finished
	Canceling
	Canceled
	Failed
)

var execStateNames = [...]string{"CREATED", "SCHEDULED", "DEPLOYING", "INITIALIZING", "RUNNING", "FINISHED", "CANCELING", "CANCELED", "FAILED"}

func (s ExecState) String() string {
	if int(s) < len(execStateNames) {
		return execStateNames[s]
	}
	return fmt.Sprintf("ExecState(%d)", int(s))
}

// Terminal reports whether the execution has ended.
func (s ExecState) Terminal() bool { return s == Finished || s == Canceled || s == Failed }

// JobState is the state of a job (Flink's JobStatus).
type JobState int

const (
	JobCreated JobState = iota
	JobRunning
	JobFailing
	JobCanceling
	JobFinished
	JobFailed
	JobCanceled
	// JobRestarting: a task failed and the restart strategy allows a
	// restart; the other tasks are being cancelled, or all have ended and
	// the strategy's delay runs. Last in the list so that the numbers of
	// the older states (which travel in messages) stay what they were.
	JobRestarting
)

var jobStateNames = [...]string{"CREATED", "RUNNING", "FAILING", "CANCELLING", "FINISHED", "FAILED", "CANCELED", "RESTARTING"}

func (s JobState) String() string {
	if int(s) < len(jobStateNames) {
		return jobStateNames[s]
	}
	return fmt.Sprintf("JobState(%d)", int(s))
}

// Terminal reports whether the job has ended.
func (s JobState) Terminal() bool { return s == JobFinished || s == JobFailed || s == JobCanceled }

// ExecutionID names one attempt of one subtask.
type ExecutionID struct {
	Vertex, Subtask, Attempt int
}

func (id ExecutionID) String() string {
	return fmt.Sprintf("v%d/%d#%d", id.Vertex, id.Subtask, id.Attempt)
}

// SlotID names a slot of a TaskManager.
type SlotID struct {
	TaskManager string
	Index       int
}

func (s SlotID) String() string { return fmt.Sprintf("%s/slot-%d", s.TaskManager, s.Index) }

// Execution is one attempt of a subtask.
type Execution struct {
	ID    ExecutionID
	State ExecState
	Slot  SlotID
	Err   error
}

// Event is an input to the Scheduler. The set is closed: only the Ev*
// types of this package implement it.
type Event interface{ isEvent() }

// Events.
type (
	// EvStart starts scheduling: every execution is SCHEDULED and the slots
	// are requested.
	EvStart struct{}
	// EvSlotsGranted answers a slot request.
	EvSlotsGranted struct{ Slots []SlotID }
	// EvSlotsRefused says the slots cannot be had (or the request was
	// withdrawn).
	EvSlotsRefused struct{ Err error }
	// EvSlotsLost says a TaskManager is gone (heartbeat timeout or lost
	// connection): every execution deployed there that has not ended
	// fails with Err, and the job no longer holds its slots. The next
	// restart of the whole job then gives back the slots it still holds
	// and asks for a full set again (the job is CREATED, waiting for
	// resources, until they come), instead of redeploying into the slots
	// it had.
	EvSlotsLost struct {
		TaskManager string
		Err         error
	}
	// EvTaskState reports an execution's new state. Reports for another
	// attempt than the current one, or for an execution that has already
	// ended, are ignored.
	//
	// NoRestart marks a failure no restart can cure (a restored state of
	// another type than the job's): the job fails at once, whatever its
	// restart strategy, instead of restarting into the same failure.
	EvTaskState struct {
		ID        ExecutionID
		State     ExecState
		Err       error
		NoRestart bool
	}
	// EvCancel asks to cancel the job.
	EvCancel struct{}
	// EvTick tells the scheduler the time: it reads no clock itself. The
	// time of every other event is that of the last tick, so a shell ticks
	// before it feeds events whose time matters (a failure: restart
	// strategies count failures by time) and when an ActScheduleTick is
	// due. A tick at or after a pending restart's time carries it out.
	EvTick struct{ Now time.Time }
)

func (EvStart) isEvent()        {}
func (EvSlotsGranted) isEvent() {}
func (EvSlotsRefused) isEvent() {}
func (EvSlotsLost) isEvent()    {}
func (EvTaskState) isEvent()    {}
func (EvCancel) isEvent()       {}
func (EvTick) isEvent()         {}

// Action is an output of the Scheduler for its shell to carry out, in
// order. The set is closed: only the Act* types of this package implement
// it.
type Action interface{ isAction() }

// Actions.
type (
	// ActRequestSlots asks the ResourceManager for N slots; the answer
	// comes back as EvSlotsGranted or EvSlotsRefused.
	ActRequestSlots struct{ N int }
	// ActDeploy deploys an execution into a slot.
	ActDeploy struct {
		ID   ExecutionID
		Slot SlotID
	}
	// ActCancelTask cancels a deployed execution.
	ActCancelTask struct {
		ID   ExecutionID
		Slot SlotID
	}
	// ActCancelSlotRequest withdraws the pending slot request (the job was
	// cancelled while waiting for slots); the ResourceManager answers the
	// request with a refusal, or the grant already on its way is released.
	ActCancelSlotRequest struct{}
	// ActReleaseSlots gives the job's slots back.
	ActReleaseSlots struct{ Slots []SlotID }
	// ActScheduleTick asks the shell for an EvTick at (or after) At: the
	// scheduler's only way to be woken up, since it reads no clock. Only
	// the latest one counts; an earlier tick does no harm.
	ActScheduleTick struct{ At time.Time }
	// ActRestarting says every task of the previous attempt has ended and
	// the job restarts as Attempt (= Restarts()), the ActDeploys of its
	// executions following; Cause is the failure that caused it. The
	// previous attempt's resources (its channels) can be released now.
	//
	// With region failover (a job of several pipelined regions, see
	// Scheduler) only the failed region restarts: Vertices lists its
	// vertices, whose executions alone get the new attempt and a deploy;
	// the other regions run on with their attempts. Vertices is nil when
	// the whole job restarts. PreviousAttempt is the attempt the restarted
	// executions had (Attempt-1 for a whole-job restart, whose attempts
	// are consecutive).
	ActRestarting struct {
		Attempt         int
		Cause           error
		Vertices        []int
		PreviousAttempt int
	}
	// ActJobDone reports the job's terminal state; it is the last action.
	ActJobDone struct {
		State JobState
		Err   error
	}
)

func (ActRequestSlots) isAction()      {}
func (ActDeploy) isAction()            {}
func (ActCancelTask) isAction()        {}
func (ActCancelSlotRequest) isAction() {}
func (ActReleaseSlots) isAction()      {}
func (ActScheduleTick) isAction()      {}
func (ActRestarting) isAction()        {}
func (ActJobDone) isAction()           {}

// Scheduler is the ExecutionGraph (one Execution per subtask, with its
// attempt number) and the job's state: Handle takes an event and returns the
// actions to carry out. It is not safe for concurrent use; its shell calls it
// from one goroutine.
//
// A task failure (or a task cancelled without the job asking) cancels every
// other task; what then is the restart strategy's call. Strategy none fails
// the job once all have ended. Otherwise the job is RESTARTING: once all
// have ended the strategy's delay runs (ActScheduleTick asks for the tick
// that ends it), then every execution is deployed again as the next attempt
// into the slot it had — the job keeps its slots across restarts, as in
// Flink.
//
// Region failover (Flink's RestartPipelinedRegionFailoverStrategy): the
// vertices connected by edges form a pipelined region (every exchange is
// pipelined, so a region is a connected component of the graph). A job of
// one region restarts as a whole, as above. In a job of several, a failure
// cancels and restarts only its own region, after the strategy's delay;
// the job stays RUNNING and the other regions are untouched. Each failover
// counts once with the strategy, and the restarted region's executions get
// the attempt number Restarts() has then: the executions of a region share
// an attempt (producer and consumer of a pipelined channel restart
// together), different regions may be at different attempts, and an
// attempt number is never reused.
type Scheduler struct {
	jg       *JobGraph
	execs    [][]*Execution
	state    JobState
	err      error
	slots    []SlotID
	inFlight bool // a slot request is unanswered
	lost     bool // slots were lost: the next full restart asks for slots again
	now      time.Time

	restart  restarter
	restarts int
	// base is added to every attempt number (SetAttemptBase): a
	// JobMaster recovering a job numbers its attempts above every one an
	// earlier JobMaster of the job can have used.
	base        int
	lastRestart time.Time     // when the current attempt was deployed
	cause       error         // of the pending restart
	delay       time.Duration // of the pending restart, once all ended
	restartAt   time.Time     // set once all ended and the delay runs
	waiting     bool          // restartAt is set

	region   []int                  // per vertex, its pipelined region
	regions  [][]int                // per region, its vertices (ascending)
	failover map[int]*regionRestart // regions being restarted alone
}

// regionRestart is a pending failover of one region of a job of several:
// its executions are being cancelled, or all have ended and the delay runs.
type regionRestart struct {
	cause     error
	delay     time.Duration
	restartAt time.Time
	waiting   bool
}

// New returns a scheduler for jg, every execution CREATED at attempt 0,
// restarting the job as the strategy says (its zero value: never).
func New(jg *JobGraph, restart RestartStrategy) (*Scheduler, error) {
	if err := restart.Validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{jg: jg, restart: newRestarter(restart)}
	s.execs = make([][]*Execution, len(jg.Vertices))
	for _, v := range jg.Vertices {
		s.execs[v.ID] = make([]*Execution, v.Parallelism)
		for i := range v.Parallelism {
			s.execs[v.ID][i] = &Execution{ID: ExecutionID{Vertex: v.ID, Subtask: i}}
		}
	}
	s.region, s.regions = pipelinedRegions(jg)
	s.failover = map[int]*regionRestart{}
	return s, nil
}

// AttemptBase is the attempt base of the n-th JobMaster of a job (n = 0:
// the one started at submission), AttemptsPerIncarnation apart.
func AttemptBase(incarnation int) int { return incarnation * AttemptsPerIncarnation }

// AttemptsPerIncarnation is how many attempt numbers one JobMaster of a
// job may use before they would meet the next one's. A JobMaster
// restarting a job more than a million times would reuse numbers of its
// successor (which only matters if it is later replaced): the restart
// strategy (or a human) stops a job long before.
const AttemptsPerIncarnation = 1 << 20

// SetAttemptBase makes the executions' attempt numbers start at base:
// attempt = base + Restarts(). Called before the first event; the
// restart strategy still counts Restarts() from 0.
func (s *Scheduler) SetAttemptBase(base int) {
	s.base = base
	for _, v := range s.execs {
		for _, e := range v {
			e.ID.Attempt = base + s.restarts
		}
	}
}

// pipelinedRegions returns each vertex's region and each region's
// vertices: the connected components of the graph, numbered in the order
// of their lowest vertex id.
func pipelinedRegions(jg *JobGraph) (region []int, regions [][]int) {
	parent := make([]int, len(jg.Vertices))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, e := range jg.Edges {
		if e.From < 0 || e.From >= len(parent) || e.To < 0 || e.To >= len(parent) {
			continue // BuildJobGraph never makes one; New must not panic on it
		}
		a, b := find(e.From), find(e.To)
		if a != b {
			parent[max(a, b)] = min(a, b)
		}
	}
	region = make([]int, len(parent))
	index := map[int]int{}
	for v := range parent {
		root := find(v)
		r, ok := index[root]
		if !ok {
			r = len(regions)
			index[root] = r
			regions = append(regions, nil)
		}
		region[v] = r
		regions[r] = append(regions[r], v)
	}
	return region, regions
}

// Regions returns the job's pipelined regions, each as its vertex ids.
func (s *Scheduler) Regions() [][]int { return s.regions }

// Restarts is the number of restarts so far; the attempt number of the
// executions of the latest restart is the attempt base plus it.
func (s *Scheduler) Restarts() int { return s.restarts }

// State is the job's state.
func (s *Scheduler) State() JobState { return s.state }

// Err is the job's failure cause.
func (s *Scheduler) Err() error { return s.err }

// Executions returns every current execution (vertex-major order).
func (s *Scheduler) Executions() []Execution {
	var out []Execution
	for _, v := range s.execs {
		for _, e := range v {
			out = append(out, *e)
		}
	}
	return out
}

// Now is the time of the last EvTick (zero before the first).
func (s *Scheduler) Now() time.Time { return s.now }

// Handle applies one event and returns the actions it calls for, in the
// order they are to be carried out.
func (s *Scheduler) Handle(ev Event) []Action {
	switch ev := ev.(type) {
	case EvTick:
		s.now = ev.Now
		if s.state == JobRestarting && s.waiting && !s.now.Before(s.restartAt) {
			return s.restartNow()
		}
		if s.state == JobRunning {
			return s.restartRegionsDue()
		}
	case EvStart:
		if s.state != JobCreated || s.inFlight {
			return nil
		}
		s.inFlight = true
		for _, v := range s.execs {
			for _, e := range v {
				e.State = Scheduled
			}
		}
		return []Action{ActRequestSlots{N: s.jg.SlotsNeeded()}}
	case EvSlotsGranted:
		s.inFlight = false
		if s.state != JobCreated {
			// Cancelled while waiting: give the slots straight back.
			return append([]Action{ActReleaseSlots{Slots: ev.Slots}}, s.finishIfDone()...)
		}
		return s.deploy(ev.Slots)
	case EvSlotsRefused:
		s.inFlight = false
		if s.state.Terminal() {
			return nil
		}
		if s.state == JobCanceling {
			// Cancelled while waiting: the refusal (typically the withdrawn
			// request) ends the cancellation, not a failure.
			return s.finishIfDone()
		}
		s.state = JobFailed
		s.err = fmt.Errorf("could not allocate slots: %w", ev.Err)
		for _, v := range s.execs {
			for _, e := range v {
				e.State = Failed
			}
		}
		return []Action{ActJobDone{State: s.state, Err: s.err}}
	case EvTaskState:
		return s.taskState(ev)
	case EvSlotsLost:
		return s.slotsLost(ev)
	case EvCancel:
		switch s.state {
		case JobCreated:
			s.state = JobCanceling
			acts := s.cancelAll()
			if s.inFlight {
				// Finish when the slot answer arrives, which the withdrawal
				// makes immediate.
				return append(acts, ActCancelSlotRequest{})
			}
			return append(acts, s.finishIfDone()...)
		case JobRunning:
			s.state = JobCanceling
			// A region waiting for its restart delay has no task left to
			// cancel: the job may end at once.
			clear(s.failover)
			return append(s.cancelAll(), s.finishIfDone()...)
		case JobRestarting:
			// No restart after a cancel: the tasks still being cancelled
			// end the job, or, if all have ended (the delay runs), it
			// ends now.
			s.state = JobCanceling
			s.waiting = false
			s.cause = nil
			return append(s.cancelAll(), s.finishIfDone()...)
		}
	}
	return nil
}

func (s *Scheduler) deploy(slots []SlotID) []Action {
	if len(slots) < s.jg.SlotsNeeded() {
		// The job cannot use them: give them back before failing.
		release := ActReleaseSlots{Slots: slots}
		return append([]Action{release}, s.Handle(EvSlotsRefused{Err: fmt.Errorf("granted %d slots, need %d", len(slots), s.jg.SlotsNeeded())})...)
	}
	s.slots = slots
	s.state = JobRunning
	// Slot sharing: subtask i of every vertex of a group goes to the group's
	// slot i; groups take consecutive runs of slots.
	groups := map[string]int{}
	var names []string
	for _, v := range s.jg.Vertices {
		if v.Parallelism > groups[v.SlotSharingGroup] {
			if _, ok := groups[v.SlotSharingGroup]; !ok {
				names = append(names, v.SlotSharingGroup)
			}
			groups[v.SlotSharingGroup] = v.Parallelism
		}
	}
	sort.Strings(names)
	offset := map[string]int{}
	next := 0
	for _, n := range names {
		offset[n] = next
		next += groups[n]
	}
	var acts []Action
	for _, v := range s.jg.Vertices {
		for _, e := range s.execs[v.ID] {
			e.Slot = slots[offset[v.SlotSharingGroup]+e.ID.Subtask]
			e.State = Deploying
			acts = append(acts, ActDeploy{ID: e.ID, Slot: e.Slot})
		}
	}
	return acts
}

func (s *Scheduler) exec(id ExecutionID) *Execution {
	if id.Vertex < 0 || id.Vertex >= len(s.execs) || id.Subtask < 0 || id.Subtask >= len(s.execs[id.Vertex]) {
		return nil
	}
	e := s.execs[id.Vertex][id.Subtask]
	if e.ID != id {
		return nil // a stale attempt
	}
	return e
}

func (s *Scheduler) taskState(ev EvTaskState) []Action {
	e := s.exec(ev.ID)
	if e == nil || e.State.Terminal() {
		return nil
	}
	if e.State == Canceling && !ev.State.Terminal() {
		// The cancel is on its way to the task, which reported an earlier
		// step (INITIALIZING, RUNNING) before it saw it: the execution
		// stays CANCELING until it ends, as in Flink, so nothing (a
		// restart, a second cancel) mistakes it for a live task.
		return nil
	}
	e.State = ev.State
	if ev.State == Failed {
		e.Err = ev.Err
		if ev.Err == nil {
			e.Err = errors.New("task failed")
		}
	}
	var acts []Action
	r := s.region[e.ID.Vertex]
	failingOver := s.failover[r] != nil
	if ev.State == Failed && ev.NoRestart && (s.state == JobRunning || s.state == JobRestarting) {
		clear(s.failover)
		s.state = JobFailing
		s.waiting = false
		s.err = fmt.Errorf("not restarted (a restart cannot help): %w", e.Err)
		return append(s.cancelAll(), s.finishIfDone()...)
	}
	switch {
	case failingOver:
		// A consequence of the region's failure (or the cancellation
		// ending): the region restarts once all its executions ended.
		return s.scheduleRegionRestart(r)
	case ev.State == Failed && s.state == JobRunning && len(s.regions) > 1:
		acts = s.failRegion(r, e.Err)
	case ev.State == Canceled && s.state == JobRunning && len(s.regions) > 1:
		acts = s.failRegion(r, fmt.Errorf("task %v was canceled unexpectedly", ev.ID))
	case ev.State == Failed && s.state == JobRunning:
		acts = s.fail(e.Err)
	case ev.State == Failed && s.state == JobCreated:
		// Not deployed, so nothing to restart.
		s.state = JobFailing
		s.err = e.Err
		acts = s.cancelAll()
	case ev.State == Canceled && s.state == JobRunning:
		// A task cancelled without the job asking: treat it as a failure.
		acts = s.fail(fmt.Errorf("task %v was canceled unexpectedly", ev.ID))
	}
	// Failures while FAILING or RESTARTING (typically the consequences of
	// the first: a consumer losing its producer) only end their execution:
	// one failover counts once with the strategy.
	if s.state == JobRestarting {
		return append(acts, s.scheduleRestart()...)
	}
	return append(acts, s.finishIfDone()...)
}

// fail handles the failure that ends the current attempt: the strategy
// decides between restarting and failing the job; either way every other
// task is cancelled first.
func (s *Scheduler) fail(cause error) []Action {
	delay, ok, err := s.restart.failed(s.now, s.lastRestart, s.restarts)
	if !ok {
		s.state = JobFailing
		s.err = cause
		if err != nil {
			s.err = fmt.Errorf("%w: %w", err, cause)
		}
		return s.cancelAll()
	}
	s.state = JobRestarting
	s.cause = cause
	s.delay = delay
	return s.cancelAll()
}

// scheduleRestart starts the delay once every execution has ended (Flink
// waits for the cancellation too: a new attempt must not meet the old one
// in its slot), and restarts at once when there is none.
func (s *Scheduler) scheduleRestart() []Action {
	if s.waiting || !s.allEnded() {
		return nil
	}
	if s.delay <= 0 {
		return s.restartNow()
	}
	s.waiting = true
	s.restartAt = s.now.Add(s.delay)
	return []Action{ActScheduleTick{At: s.restartAt}}
}

// restartNow deploys every execution again, as the next attempt, into the
// slot its subtask had.
func (s *Scheduler) restartNow() []Action {
	s.restarts++
	s.lastRestart = s.now
	s.state = JobRunning
	s.waiting = false
	acts := []Action{ActRestarting{Attempt: s.base + s.restarts, Cause: s.cause, PreviousAttempt: s.base + s.restarts - 1}}
	s.cause = nil
	if s.lost {
		// Some slots are gone with their TaskManager: give back the rest
		// and ask for a full set; the new attempt is deployed when it
		// comes (deploy), and meanwhile the job waits, CREATED.
		s.lost = false
		s.state = JobCreated
		if len(s.slots) > 0 {
			acts = append(acts, ActReleaseSlots{Slots: s.slots})
			s.slots = nil
		}
		for _, v := range s.execs {
			for _, e := range v {
				*e = Execution{ID: ExecutionID{Vertex: e.ID.Vertex, Subtask: e.ID.Subtask, Attempt: s.base + s.restarts}, State: Scheduled}
			}
		}
		s.inFlight = true
		return append(acts, ActRequestSlots{N: s.jg.SlotsNeeded()})
	}
	for _, v := range s.execs {
		for _, e := range v {
			*e = Execution{ID: ExecutionID{Vertex: e.ID.Vertex, Subtask: e.ID.Subtask, Attempt: s.base + s.restarts}, State: Deploying, Slot: e.Slot}
			acts = append(acts, ActDeploy{ID: e.ID, Slot: e.Slot})
		}
	}
	return acts
}

func (s *Scheduler) allEnded() bool {
	for _, v := range s.execs {
		for _, e := range v {
			if !e.State.Terminal() {
				return false
			}
		}
	}
	return true
}

func (s *Scheduler) cancelAll() []Action {
	var acts []Action
	for _, v := range s.execs {
		acts = cancelExecs(acts, v)
	}
	return acts
}

// cancelExecs cancels the executions that have not ended: those not
// deployed yet end at once, the others get an ActCancelTask (appended).
func cancelExecs(acts []Action, execs []*Execution) []Action {
	for _, e := range execs {
		switch e.State {
		case Created, Scheduled:
			e.State = Canceled
		case Deploying, Initializing, Running:
			e.State = Canceling
			acts = append(acts, ActCancelTask{ID: e.ID, Slot: e.Slot})
		}
	}
	return acts
}

func (s *Scheduler) finishIfDone() []Action {
	if s.state.Terminal() || s.state == JobRestarting || s.inFlight || len(s.failover) > 0 {
		return nil
	}
	allFinished := true
	for _, v := range s.execs {
		for _, e := range v {
			if !e.State.Terminal() {
				return nil
			}
			if e.State != Finished {
				allFinished = false
			}
		}
	}
	switch {
	case s.state == JobFailing:
		s.state = JobFailed
	case s.state == JobCanceling:
		s.state = JobCanceled
	case allFinished:
		s.state = JobFinished
	default:
		s.state = JobFailed
		if s.err == nil {
			s.err = errors.New("tasks ended without finishing")
		}
	}
	var acts []Action
	if len(s.slots) > 0 {
		acts = append(acts, ActReleaseSlots{Slots: s.slots})
		s.slots = nil
	}
	return append(acts, ActJobDone{State: s.state, Err: s.err})
}

// failRegion handles a failure in region r of a job of several regions:
// the strategy decides between restarting the region and failing the job.
func (s *Scheduler) failRegion(r int, cause error) []Action {
	// Restarts still pending count as made: each failover is one.
	delay, ok, err := s.restart.failed(s.now, s.lastRestart, s.restarts+len(s.failover))
	if !ok {
		// The job fails: every region goes, including those restarting.
		clear(s.failover)
		s.state = JobFailing
		s.err = cause
		if err != nil {
			s.err = fmt.Errorf("%w: %w", err, cause)
		}
		return s.cancelAll()
	}
	s.failover[r] = &regionRestart{cause: cause, delay: delay}
	var acts []Action
	for _, v := range s.regions[r] {
		acts = cancelExecs(acts, s.execs[v])
	}
	return append(acts, s.scheduleRegionRestart(r)...)
}

// scheduleRegionRestart starts region r's delay once all its executions
// have ended, and restarts it at once when there is none.
func (s *Scheduler) scheduleRegionRestart(r int) []Action {
	rr := s.failover[r]
	if rr == nil || rr.waiting {
		return nil
	}
	for _, v := range s.regions[r] {
		for _, e := range s.execs[v] {
			if !e.State.Terminal() {
				return nil
			}
		}
	}
	rr.waiting = true
	rr.restartAt = s.now.Add(rr.delay)
	if rr.delay <= 0 {
		return s.restartRegionsDue()
	}
	return s.nextRegionTick()
}

// restartRegionsDue restarts, in region order, every region whose delay
// has run out, and asks for a tick for the next one still waiting.
func (s *Scheduler) restartRegionsDue() []Action {
	var acts []Action
	for r := range s.regions {
		rr := s.failover[r]
		if rr == nil || !rr.waiting || s.now.Before(rr.restartAt) {
			continue
		}
		delete(s.failover, r)
		s.restarts++
		s.lastRestart = s.now
		prev := s.execs[s.regions[r][0]][0].ID.Attempt
		acts = append(acts, ActRestarting{Attempt: s.base + s.restarts, Cause: rr.cause, Vertices: s.regions[r], PreviousAttempt: prev})
		for _, v := range s.regions[r] {
			for _, e := range s.execs[v] {
				*e = Execution{ID: ExecutionID{Vertex: e.ID.Vertex, Subtask: e.ID.Subtask, Attempt: s.base + s.restarts}, State: Deploying, Slot: e.Slot}
				acts = append(acts, ActDeploy{ID: e.ID, Slot: e.Slot})
			}
		}
	}
	if len(acts) == 0 {
		return nil
	}
	return append(acts, s.nextRegionTick()...)
}

// nextRegionTick asks for a tick at the earliest restart time of the
// regions whose delay runs: the shell keeps only the latest request, so
// it must be the one that matters first.
func (s *Scheduler) nextRegionTick() []Action {
	var at time.Time
	for _, rr := range s.failover {
		if rr.waiting && (at.IsZero() || rr.restartAt.Before(at)) {
			at = rr.restartAt
		}
	}
	if at.IsZero() {
		return nil
	}
	return []Action{ActScheduleTick{At: at}}
}

// slotsLost drops the slots of a TaskManager that is gone and fails the
// executions deployed there that have not ended, in order.
func (s *Scheduler) slotsLost(ev EvSlotsLost) []Action {
	kept := s.slots[:0]
	for _, sl := range s.slots {
		if sl.TaskManager == ev.TaskManager {
			s.lost = true
			continue
		}
		kept = append(kept, sl)
	}
	s.slots = kept
	var acts []Action
	for _, v := range s.execs {
		for _, e := range v {
			if e.Slot.TaskManager == ev.TaskManager && !e.State.Terminal() && e.State != Created && e.State != Scheduled {
				acts = append(acts, s.taskState(EvTaskState{ID: e.ID, State: Failed, Err: ev.Err})...)
			}
		}
	}
	return acts
}
