package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Recovery of the jobs of a Dispatcher that died (Flink's Dispatcher over
// its JobGraphStore). The job store holds every job accepted and not yet
// ended; a Dispatcher created over it starts, for each, a JobMaster in
// recovery mode before it takes any submission: the job shows in its job
// list (and REST) at once, RESTARTING until its new JobMaster reports.
// The record's Incarnation is raised and stored before the JobMaster
// starts, so two JobMasters of the job never share attempt numbers even
// if this Dispatcher dies too before the job ran.
//
// Kill and HandOver serve an embedded cluster that kills and restarts its
// JobManager in one process: the handles clients hold at the killed
// Dispatcher follow the job at the new one and complete when it ends
// there. Between processes a client finds the job again by id.

func record(sub Submission) jobstore.Record {
	return jobstore.Record{JobID: sub.JobID, JobName: sub.JobName, JobGraph: sub.JobGraph, Incarnation: sub.Incarnation, Extra: sub.Extra}
}

// recoverJobs restarts the jobs the store holds (New, before Run). A
// store that cannot be listed fails the Dispatcher: starting without its
// jobs would lose them silently.
func (d *Dispatcher) recoverJobs() error {
	if d.cfg.Store == nil {
		return nil
	}
	recs, err := d.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("dispatcher: recovering jobs: %w", err)
	}
	for _, r := range recs {
		if r.JobGraph == nil {
			return fmt.Errorf("dispatcher: recovering job %s: its record has no job graph", r.JobID)
		}
		r.Incarnation++
		if err := d.cfg.Store.Put(r); err != nil {
			return fmt.Errorf("dispatcher: recovering job %s: %w", r.JobID, err)
		}
		sub := Submission{JobID: r.JobID, JobName: r.JobName, JobGraph: r.JobGraph, Incarnation: r.Incarnation, Extra: r.Extra}
		now := time.Now()
		j := &job{sub: sub, jobMaster: jobMasterName(sub), start: now, done: make(chan struct{}), seq: len(d.jobs),
			stateTimes: map[scheduler.JobState]time.Time{}}
		j.observe(rpc.JobStatus{JobID: sub.JobID, State: scheduler.JobRestarting, Executions: recoveredExecutions(sub)}, now)
		d.cfg.Logger.Info("dispatcher: recovering job from the job store", "job_id", sub.JobID, "job", sub.JobName, "incarnation", sub.Incarnation)
		if err := d.cfg.StartJobMaster(sub, j.jobMaster, d.ep.Address()); err != nil {
			return fmt.Errorf("dispatcher: recovering job %s: starting its job master: %w", sub.JobID, err)
		}
		d.jobs[sub.JobID] = j
	}
	return nil
}

// Kill makes Run return at once when its context ends, as if the process
// had been killed: no job is ended, nothing is removed from the store,
// OnJobEnd is not called. Safe on any goroutine.
func (d *Dispatcher) Kill() {
	d.mu.Lock()
	d.killed = true
	d.mu.Unlock()
}

// HandOver makes the handles of d's open jobs (d killed) follow the same
// jobs at next, the Dispatcher recovered from the store: Status, Totals,
// Cancel and savepoints go to next's JobMaster. For each such job it
// returns a function that waits until the job has ended at next (or ctx
// ended) and then ends it here with next's result, completing Wait and
// Done of the handles held here; the caller runs them. A job next does
// not know stays open until EndOpen.
func (d *Dispatcher) HandOver(next *Dispatcher) []func(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []func(ctx context.Context)
	for id, j := range d.jobs {
		if j.result != nil {
			continue
		}
		h, err := next.Job(id)
		if err != nil {
			continue
		}
		j.next = h
		out = append(out, func(ctx context.Context) {
			select {
			case <-h.Done():
				d.settle(j)
			case <-ctx.Done():
			}
		})
	}
	return out
}

// settle ends j with its successor's result, if that has ended.
func (d *Dispatcher) settle(j *job) bool {
	d.mu.Lock()
	n := j.next
	d.mu.Unlock()
	if n == nil {
		return false
	}
	select {
	case <-n.Done():
	default:
		return false
	}
	r, _ := n.Wait(context.Background())
	n.d.mu.Lock()
	st := n.j.status
	n.d.mu.Unlock()
	d.end(j, &r, st)
	return true
}

// EndOpen ends the jobs still open at a killed Dispatcher, as their
// successors ended them or, if they have none that ended, CANCELED with
// reason: the cluster is closing and their handles must complete.
func (d *Dispatcher) EndOpen(reason string) {
	for _, j := range d.openJobs(false) {
		if !d.settle(j) {
			d.endCanceled(j, errors.New(reason))
		}
	}
}

// successor is the handle at the Dispatcher that took the job over, nil
// if none did.
func (h *JobHandle) successor() *JobHandle {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.j.next
}

// RecoverJob starts a new JobMaster, in recovery mode, for a running job
// whose JobMaster died alone (the process that runs the JobMasters saw
// it go; the Dispatcher does not watch them): the incarnation in the
// store is raised first, as when a Dispatcher recovers its jobs. It needs
// Config.Store. The job's handles stay valid.
func (d *Dispatcher) RecoverJob(id string) error {
	d.mu.Lock()
	j := d.jobs[id]
	var ended bool
	if j != nil {
		ended = j.result != nil
	}
	d.mu.Unlock()
	switch {
	case j == nil:
		return fmt.Errorf("%w: %s", ErrUnknownJob, id)
	case ended:
		return fmt.Errorf("recovering job %s: it has ended", id)
	case d.cfg.Store == nil:
		return fmt.Errorf("recovering job %s: the Dispatcher has no job store", id)
	}
	recs, err := d.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("recovering job %s: %w", id, err)
	}
	i := slices.IndexFunc(recs, func(r jobstore.Record) bool { return r.JobID == id })
	if i < 0 {
		return fmt.Errorf("recovering job %s: it is not in the job store", id)
	}
	r := recs[i]
	r.Incarnation++
	if err := d.cfg.Store.Put(r); err != nil {
		return fmt.Errorf("recovering job %s: %w", id, err)
	}
	d.mu.Lock()
	j.sub.Incarnation = r.Incarnation // a field no reader of j.sub takes without the lock
	sub := j.sub
	j.jobMaster = jobMasterName(sub)
	addr := j.jobMaster
	st := j.status
	st.State = scheduler.JobRestarting
	st.Executions = recoveredExecutions(sub)
	j.observe(st, time.Now())
	d.mu.Unlock()
	d.cfg.Logger.Info("dispatcher: recovering job after its JobMaster died", "job_id", id, "incarnation", sub.Incarnation)
	if err := d.cfg.StartJobMaster(sub, addr, d.ep.Address()); err != nil {
		return fmt.Errorf("recovering job %s: starting its job master: %w", id, err)
	}
	return nil
}

// recoveredExecutions is the execution graph of a job being recovered,
// before its new JobMaster reports: every execution CREATED, numbered as
// that JobMaster numbers them.
func recoveredExecutions(sub Submission) []rpc.ExecutionStatus {
	execs := created(sub.JobGraph)
	for i := range execs {
		execs[i].ID.Attempt = scheduler.AttemptBase(sub.Incarnation)
	}
	return execs
}

// staleStatus says st comes from a JobMaster of j older than its current
// one (sent before it died, read after the new one started): its
// executions are numbered below the current attempt base.
func staleStatus(j *job, st rpc.JobStatus) bool {
	base := scheduler.AttemptBase(j.sub.Incarnation)
	for _, e := range st.Executions {
		if e.ID.Attempt < base {
			return true
		}
	}
	return false
}

// jobMasterName is the address of a job's JobMaster: each incarnation
// has its own, so that nothing sent to (or by) a dead one reaches its
// successor, and a TaskManager tells their heartbeats apart.
func jobMasterName(sub Submission) string {
	if sub.Incarnation == 0 {
		return "jobmaster-" + sub.JobID
	}
	return fmt.Sprintf("jobmaster-%s-%d", sub.JobID, sub.Incarnation)
}

// jobMaster is the address of the job's current JobMaster.
func (h *JobHandle) jobMaster() string {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.j.jobMaster
}
