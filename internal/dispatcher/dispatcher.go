// Package dispatcher is the Dispatcher role: it takes job submissions,
// starts one JobMaster per job and follows each job through the status its
// JobMaster reports, which is what clients (and later REST) read. It starts
// JobMasters through a function it is given, so it does not import them.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Submission is a job as the Dispatcher sees it: plain data. The job's code
// is registered apart (internal/jobcode) by the submitting side.
type Submission struct {
	JobID    string
	JobName  string
	JobGraph *jobgraph.JobGraph
	// Incarnation is 0 for a job just submitted, n > 0 for its n-th
	// recovery from the job store: StartJobMaster then starts its
	// JobMaster in recovery mode (jobmaster.Config.Incarnation).
	Incarnation int
	// Extra is kept in the job store with the job and given back on
	// recovery (jobstore.Record.Extra): what the process that starts
	// JobMasters needs beside the graph.
	Extra map[string]string
}

// Config wires a Dispatcher.
type Config struct {
	Address   string
	Transport rpc.Transport
	// StartJobMaster starts the JobMaster of a job at address, reporting
	// to the Dispatcher at dispatcher. It returns once the JobMaster
	// listens.
	StartJobMaster func(sub Submission, address, dispatcher string) error
	// OnJobEnd, when set, runs on the Dispatcher's loop once a job has
	// ended (the embedded cluster frees the job's channels and code).
	OnJobEnd func(jobID string)
	// Store, when set, keeps every job accepted and not yet ended
	// (recovery.go): a job is put before Submit returns and removed when
	// it reaches a terminal state, and a Dispatcher created over a store
	// that holds jobs restarts each of them at once.
	Store jobstore.Store
	// Logger receives the Dispatcher's warnings (nil: slog.Default()).
	Logger *slog.Logger
}

// Dispatcher runs jobs.
type Dispatcher struct {
	cfg Config
	ep  rpc.Endpoint

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
	// savepoints are the savepoint requests waiting for their JobMaster's
	// answer, by request id.
	savepoints map[uint64]*savepointWait
	spNext     uint64
	// killed: Kill was called; Run returns without ending the jobs, and
	// nothing is removed from the store (recovery.go).
	killed bool
}

type savepointWait struct {
	job    string
	answer chan rpc.SavepointResult // buffered: the answer never blocks the loop
}

// job is a submitted job as the Dispatcher follows it.
type job struct {
	sub       Submission
	jobMaster string // its JobMaster's address (under Dispatcher.mu: RecoverJob changes it)
	start     time.Time
	done      chan struct{}
	seq       int // submission order
	// Under Dispatcher.mu.
	status rpc.JobStatus
	result *JobResult
	// stateTimes is when the Dispatcher first heard of each state of the
	// job, lastModified when its status last changed, ended when it ended.
	stateTimes   map[scheduler.JobState]time.Time
	lastModified time.Time
	ended        time.Time
	// next is the job's handle at the Dispatcher that took over from this
	// one (HandOver, under Dispatcher.mu): the handles clients hold here
	// follow it.
	next *JobHandle
}

// observe takes a status of j's into account (under Dispatcher.mu).
func (j *job) observe(st rpc.JobStatus, now time.Time) {
	if _, ok := j.stateTimes[st.State]; !ok {
		j.stateTimes[st.State] = now
	}
	j.status = st
	j.lastModified = now
}

// JobResult is how a job ended.
type JobResult struct {
	JobID    string
	JobName  string
	State    scheduler.JobState
	Err      error
	Duration time.Duration
	// Restarts is the number of times the job was restarted.
	Restarts  int
	Operators []rpc.OperatorTotals
	// CheckpointsCompleted counts the job's completed checkpoints;
	// RestoredCheckpoint is the id of the checkpoint it last restored
	// from (0: none).
	CheckpointsCompleted int
	RestoredCheckpoint   int64
	// RestoredFrom is the savepoint directory the job resumed from or
	// "checkpoint <id>", whichever it last restored from ("": none).
	RestoredFrom string
	// LastCheckpointDuration is the last completed checkpoint's, trigger
	// to metadata written (0: none).
	LastCheckpointDuration time.Duration
	// LastCheckpointSize and LastCheckpointSyncPause: see rpc.JobFinished.
	LastCheckpointSize      int64
	LastCheckpointSyncPause time.Duration
}

// ErrUnknownJob is returned for a job id the Dispatcher does not know.
var ErrUnknownJob = errors.New("unknown job")

// New creates the Dispatcher's endpoint; Run serves it.
func New(cfg Config) (*Dispatcher, error) {
	ep, err := cfg.Transport.Listen(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Dispatcher{cfg: cfg, ep: ep, jobs: map[string]*job{}, savepoints: map[uint64]*savepointWait{}}
	if err := d.recoverJobs(); err != nil {
		ep.Close()
		return nil, err
	}
	return d, nil
}

// Run follows the jobs' JobMasters until ctx ends. Then a job whose end was
// not reported is ended here as CANCELED, since its JobMaster stops with
// the cluster.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.ep.Close()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			killed := d.killed
			d.mu.Unlock()
			if killed {
				return // as on SIGKILL: the jobs stay in the store
			}
			d.receive() // ends reported before the shutdown count
			for _, j := range d.openJobs(true) {
				d.endCanceled(j, fmt.Errorf("cluster shut down: %w", ctx.Err()))
			}
			return
		case <-d.ep.Ready():
			d.receive()
		}
	}
}

func (d *Dispatcher) receive() {
	for _, m := range d.ep.Receive() {
		switch m := m.(type) {
		case rpc.JobStatus:
			d.mu.Lock()
			if j := d.jobs[m.JobID]; j != nil && j.result == nil && !staleStatus(j, m) {
				j.observe(m, time.Now())
			}
			d.mu.Unlock()
		case rpc.SavepointResult:
			d.mu.Lock()
			w := d.savepoints[m.RequestID]
			delete(d.savepoints, m.RequestID)
			d.mu.Unlock()
			if w != nil {
				w.answer <- m
			}
		case rpc.JobFinished:
			d.mu.Lock()
			j := d.jobs[m.JobID]
			d.mu.Unlock()
			if j == nil {
				continue
			}
			d.end(j, &JobResult{
				JobID: m.JobID, JobName: m.JobName, State: m.State, Err: m.Failure.Err(), Duration: m.Duration, Restarts: m.Restarts, Operators: m.Operators,
				CheckpointsCompleted: m.CheckpointsCompleted, RestoredCheckpoint: m.RestoredCheckpoint, RestoredFrom: m.RestoredFrom,
				LastCheckpointDuration: m.LastCheckpointDuration,
				LastCheckpointSize:     m.LastCheckpointSize, LastCheckpointSyncPause: m.LastCheckpointSyncPause,
			}, rpc.JobStatus{JobID: m.JobID, State: m.State, Restarts: m.Restarts, Executions: m.Executions, Operators: m.Operators, Details: m.Details})
		}
	}
}

// openJobs lists the jobs without a result; closing also refuses new
// submissions from here on.
func (d *Dispatcher) openJobs(closing bool) []*job {
	d.mu.Lock()
	defer d.mu.Unlock()
	if closing {
		d.closed = true
	}
	var open []*job
	for _, j := range d.jobs {
		if j.result == nil {
			open = append(open, j)
		}
	}
	return open
}

// endCanceled ends j as CANCELED for err (a cluster that stops).
func (d *Dispatcher) endCanceled(j *job, err error) {
	d.mu.Lock()
	st := j.status
	d.mu.Unlock()
	st.State = scheduler.JobCanceled
	d.end(j, &JobResult{JobID: j.sub.JobID, JobName: j.sub.JobName, State: scheduler.JobCanceled,
		Err: err, Duration: time.Since(j.start), Restarts: st.Restarts, Operators: st.Operators}, st)
}

// end records a job's result, once.
func (d *Dispatcher) end(j *job, r *JobResult, st rpc.JobStatus) {
	d.mu.Lock()
	if j.result != nil {
		d.mu.Unlock()
		return
	}
	j.result = r
	j.observe(st, time.Now())
	j.ended = j.lastModified
	// The JobMaster answers every request before its JobFinished; what is
	// still open (a cluster shutting down) is answered here.
	for id, w := range d.savepoints {
		if w.job == j.sub.JobID {
			delete(d.savepoints, id)
			w.answer <- rpc.SavepointResult{JobID: w.job, RequestID: id,
				Error: fmt.Sprintf("savepoint of job %s failed: the job ended (%v) before it completed", w.job, r.State)}
		}
	}
	killed, closed := d.killed, d.closed
	d.mu.Unlock()
	if d.cfg.Store != nil && !closed && !killed {
		// Ended by its JobMaster: terminal, so it leaves the store before
		// anyone hears of its end. A job the shutdown ended stays there
		// (suspended, as Flink's HA keeps it): the next Dispatcher over
		// the store recovers it. A killed Dispatcher's job ends because
		// its successor's did (HandOver), which removed it.
		if err := d.cfg.Store.Remove(j.sub.JobID); err != nil {
			d.cfg.Logger.Warn("dispatcher: ended job not removed from the job store; a new Dispatcher would run it again", "job_id", j.sub.JobID, "error", err)
		}
	}
	close(j.done)
	if killed {
		return // the successor frees and forgets it
	}
	if d.cfg.OnJobEnd != nil {
		d.cfg.OnJobEnd(j.sub.JobID)
	}
}

// Submit starts a JobMaster for the job and returns a handle to it.
func (d *Dispatcher) Submit(sub Submission) (*JobHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("cluster is shut down")
	}
	if _, ok := d.jobs[sub.JobID]; ok {
		return nil, fmt.Errorf("job %s already submitted", sub.JobID)
	}
	now := time.Now()
	j := &job{sub: sub, jobMaster: "jobmaster-" + sub.JobID, start: now, done: make(chan struct{}), seq: len(d.jobs),
		stateTimes: map[scheduler.JobState]time.Time{}}
	j.observe(rpc.JobStatus{JobID: sub.JobID, State: scheduler.JobCreated, Executions: created(sub.JobGraph)}, now)
	sub.Incarnation = 0
	if d.cfg.Store != nil {
		// Before the JobMaster starts: a job that runs is always one a
		// new Dispatcher would find.
		if err := d.cfg.Store.Put(record(sub)); err != nil {
			return nil, fmt.Errorf("submitting job %s: %w", sub.JobID, err)
		}
	}
	if err := d.cfg.StartJobMaster(sub, j.jobMaster, d.ep.Address()); err != nil {
		if d.cfg.Store != nil {
			if rerr := d.cfg.Store.Remove(sub.JobID); rerr != nil {
				d.cfg.Logger.Warn("dispatcher: job that failed to start not removed from the job store", "job_id", sub.JobID, "error", rerr)
			}
		}
		return nil, fmt.Errorf("starting the job master of job %s: %w", sub.JobID, err)
	}
	d.jobs[sub.JobID] = j
	return &JobHandle{d: d, j: j}, nil
}

// created is the execution graph of a job not yet started: it exists from
// submission, every execution CREATED.
func created(jg *jobgraph.JobGraph) []rpc.ExecutionStatus {
	var out []rpc.ExecutionStatus
	for _, v := range jg.Vertices {
		for i := range v.Parallelism {
			out = append(out, rpc.ExecutionStatus{ID: scheduler.ExecutionID{Vertex: v.ID, Subtask: i}, State: scheduler.Created})
		}
	}
	return out
}

// Job returns the handle of a submitted job.
func (d *Dispatcher) Job(id string) (*JobHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	j, ok := d.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	return &JobHandle{d: d, j: j}, nil
}

// JobHandle is the client's view of a submitted job.
type JobHandle struct {
	d *Dispatcher
	j *job
}

// ID is the job id.
func (h *JobHandle) ID() string { return h.j.sub.JobID }

// Done is closed when the job has ended.
func (h *JobHandle) Done() <-chan struct{} { return h.j.done }

// Cancel asks the job to cancel; Wait reports when it has. After the job's
// end it does nothing.
func (h *JobHandle) Cancel() {
	if n := h.successor(); n != nil {
		n.Cancel()
		return
	}
	// An error means the JobMaster is gone: the job has ended or is ending
	// with the cluster.
	_ = h.d.cfg.Transport.JobMaster(h.jobMaster()).CancelJob(rpc.CancelJob{JobID: h.ID()})
}

// TriggerSavepoint asks the job's JobMaster for a savepoint into a new
// directory under target (a blob URL, or an OS path meaning file://) and
// waits for it: it returns the savepoint directory's URL, or why there is
// none — the job keeps running either way unless stop (drain: after its
// input was drained). If ctx ends first the request is forgotten here;
// the savepoint may still complete.
func (h *JobHandle) TriggerSavepoint(ctx context.Context, target string, stop, drain bool) (string, error) {
	what := fmt.Sprintf("savepoint of job %s to %s", h.ID(), target)
	r, err := h.request(ctx, what, rpc.TriggerSavepoint{Target: target, Stop: stop, Drain: drain})
	return r.Path, err
}

// TriggerCheckpoint asks the job's JobMaster for a checkpoint now, into
// the job's checkpoint storage, and waits for it: it returns the
// checkpoint's id, or why there is none (no checkpointing configured, a
// task declined...).
func (h *JobHandle) TriggerCheckpoint(ctx context.Context) (int64, error) {
	r, err := h.request(ctx, "checkpoint of job "+h.ID(), rpc.TriggerSavepoint{Checkpoint: true})
	return r.CheckpointID, err
}

// request sends m to the job's JobMaster with a new request id and waits
// for its SavepointResult.
func (h *JobHandle) request(ctx context.Context, what string, m rpc.TriggerSavepoint) (rpc.SavepointResult, error) {
	if n := h.successor(); n != nil {
		return n.request(ctx, what, m)
	}
	d := h.d
	d.mu.Lock()
	if h.j.result != nil {
		d.mu.Unlock()
		return rpc.SavepointResult{}, fmt.Errorf("%s: the job has ended (%v)", what, h.j.result.State)
	}
	d.spNext++
	id := d.spNext
	w := &savepointWait{job: h.ID(), answer: make(chan rpc.SavepointResult, 1)}
	d.savepoints[id] = w
	d.mu.Unlock()
	forget := func() {
		d.mu.Lock()
		delete(d.savepoints, id)
		d.mu.Unlock()
	}
	m.JobID, m.RequestID = h.ID(), id
	if err := d.cfg.Transport.JobMaster(h.jobMaster()).TriggerSavepoint(m); err != nil {
		forget()
		return rpc.SavepointResult{}, fmt.Errorf("%s: the job's JobMaster is gone (the job ended): %w", what, err)
	}
	select {
	case r := <-w.answer:
		if r.Error != "" {
			return rpc.SavepointResult{}, errors.New(r.Error)
		}
		return r, nil
	case <-ctx.Done():
		forget()
		return rpc.SavepointResult{}, fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// Wait blocks until the job ends or ctx ends.
func (h *JobHandle) Wait(ctx context.Context) (JobResult, error) {
	select {
	case <-h.j.done:
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		return *h.j.result, nil
	case <-ctx.Done():
		return JobResult{}, ctx.Err()
	}
}

// Status is the job's state and executions as last reported.
func (h *JobHandle) Status() (scheduler.JobState, []scheduler.Execution) {
	if n := h.successor(); n != nil {
		return n.Status()
	}
	h.d.mu.Lock()
	st := h.j.status
	h.d.mu.Unlock()
	execs := make([]scheduler.Execution, len(st.Executions))
	for i, e := range st.Executions {
		execs[i] = scheduler.Execution{ID: e.ID, State: e.State, Slot: e.Slot, Err: e.Failure.Err()}
	}
	return st.State, execs
}

// Totals are the per-operator record counts as last reported.
func (h *JobHandle) Totals() []rpc.OperatorTotals {
	if n := h.successor(); n != nil {
		return n.Totals()
	}
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return append([]rpc.OperatorTotals(nil), h.j.status.Operators...)
}
