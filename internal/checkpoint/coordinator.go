package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"time"

	// The only package of the module the coordinator reads: which
	// vertices (and their operators' UIDs) the job has, which are sources
	// and how they are connected.
	"github.com/strom-dev/strom/internal/jobgraph"
)

// Config holds the checkpointing settings (Flink's execution.checkpointing.*).
type Config struct {
	// Interval between periodic checkpoints; 0 takes none (requested and
	// final checkpoints still happen).
	Interval time.Duration
	// Timeout after which a checkpoint still waiting for acks is aborted;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// MinPause is the least time from the end (completion or abort) of one
	// checkpoint to the periodic or requested trigger of the next, so the
	// job keeps time to process records when checkpoints are slow.
	MinPause time.Duration
	// MaxConcurrent bounds the checkpoints pending at once (savepoints
	// are not held back by it but count); 0 means 1.
	MaxConcurrent int
	// TolerableFailures is how many consecutive checkpoints may fail
	// (decline, expire, metadata not written) before the job is failed.
	// Savepoint failures and aborts caused by the job failing do not
	// count; a completed checkpoint resets the count.
	TolerableFailures int
	Mode              Mode
}

// DefaultTimeout is Flink's default checkpoint timeout.
const DefaultTimeout = 10 * time.Minute

// Validate reports settings that cannot be meant.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", c.Interval}, {"timeout", c.Timeout}, {"min pause", c.MinPause}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("checkpoint %s %v is negative", d.name, d.v))
		}
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("max concurrent checkpoints %d is negative", c.MaxConcurrent))
	}
	if c.TolerableFailures < 0 {
		errs = append(errs, fmt.Errorf("tolerable checkpoint failures %d is negative", c.TolerableFailures))
	}
	if c.Mode != ExactlyOnce && c.Mode != AtLeastOnce && c.Mode != Unaligned {
		errs = append(errs, fmt.Errorf("unknown checkpointing mode %v", c.Mode))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 1
	}
	return c
}

// Coordinator is the JobMaster's checkpoint coordinator as a pure state
// machine: Handle takes an event and returns the actions to carry out. It
// is not safe for concurrent use; its shell calls it from one goroutine.
type Coordinator struct {
	cfg    Config
	jobID  string
	jg     *jobgraph.JobGraph
	inputs [][]input // per vertex

	tasks   [][]taskState // per vertex, per subtask, of its current attempt
	attempt int           // the job's restart count (EvTasksRunning.Attempt)
	started bool          // an EvTasksRunning was taken
	running bool          // every unfinished task of attempt runs

	now          time.Time
	nextID       ID
	periodicFrom time.Time // the last checkpoint trigger, or the start
	lastEnd      time.Time // the last completion or abort; zero: none yet
	failures     int       // consecutive counted failures

	pending  []*pending // by id
	requests []EvTrigger
	// draining is a stop-with-savepoint with drain whose sources were
	// asked to end their input; stopped says a stop-with-savepoint
	// completed: the job is ending and nothing is triggered any more.
	draining *EvTrigger
	stopped  bool
	ended    []ended // the last few ended ids, for late acks
}

type input struct {
	from    int
	forward bool // subtask i reads the producer's subtask i only
}

type taskState struct {
	attempt    int // of the current execution
	finished   bool
	endOfInput bool
	released   bool // told it may finish
}

type pending struct {
	id        ID
	kind      Kind
	dir       string
	request   int
	final     bool
	triggered time.Time
	tasks     []TaskID // running at the trigger: they ack and are notified
	waiting   map[TaskID]bool
	acked     map[TaskID][]OperatorSnapshot
	ended     []TaskID // had reached end of input at the trigger
	writing   bool
	stop      bool // a stop-with-savepoint, without drain
	drain     bool // a stop-with-savepoint's final savepoint, with drain
}

type ended struct {
	id      ID
	aborted bool
}

// rememberEnded is how many ended ids late acks are matched against (as
// many as Flink remembers): an ack older than that is ignored, its files
// left to the storage's own cleanup.
const rememberEnded = 16

// New returns a coordinator for the job jg (whose id goes into the
// metadata), with no task running yet and the next checkpoint id 1.
func New(jobID string, jg *jobgraph.JobGraph, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg.withDefaults(), jobID: jobID, jg: jg, nextID: 1}
	c.inputs = make([][]input, len(jg.Vertices))
	c.tasks = make([][]taskState, len(jg.Vertices))
	for i, v := range jg.Vertices {
		if v.ID != i {
			return nil, fmt.Errorf("vertex %q has id %d at index %d", v.Name, v.ID, i)
		}
		c.tasks[i] = make([]taskState, v.Parallelism)
	}
	for _, e := range jg.Edges {
		if e.From < 0 || e.From >= len(jg.Vertices) || e.To < 0 || e.To >= len(jg.Vertices) {
			return nil, fmt.Errorf("edge %d→%d names a vertex the job does not have", e.From, e.To)
		}
		fwd := e.Partition == jobgraph.Forward && jg.Vertices[e.From].Parallelism == jg.Vertices[e.To].Parallelism
		c.inputs[e.To] = append(c.inputs[e.To], input{from: e.From, forward: fwd})
	}
	return c, nil
}

// PendingCheckpoint describes a checkpoint in progress (for status pages).
type PendingCheckpoint struct {
	ID        ID
	Kind      Kind
	Triggered time.Time
	Final     bool
	// Waiting are the tasks whose ack is missing; empty once Writing.
	Waiting []TaskID
	// Writing says every ack is in and the metadata is being written.
	Writing bool
}

// Pending returns the checkpoints in progress, by id.
func (c *Coordinator) Pending() []PendingCheckpoint {
	out := make([]PendingCheckpoint, len(c.pending))
	for i, p := range c.pending {
		out[i] = PendingCheckpoint{ID: p.id, Kind: p.kind, Triggered: p.triggered, Final: p.final, Waiting: p.waitingTasks(), Writing: p.writing}
	}
	return out
}

// NextID is the id the next checkpoint will get.
func (c *Coordinator) NextID() ID { return c.nextID }

// Failures is the number of consecutive failed checkpoints counted
// against Config.TolerableFailures.
func (c *Coordinator) Failures() int { return c.failures }

// Handle applies one event and returns the actions it calls for, in the
// order they are to be carried out.
func (c *Coordinator) Handle(ev Event) []Action {
	var acts []Action
	switch ev := ev.(type) {
	case EvTick:
		// A clock stepping back must not re-arm timers already passed.
		if ev.Now.After(c.now) {
			c.now = ev.Now
		}
		acts = c.expire()
	case EvTrigger:
		if ev.Kind != KindSavepoint {
			ev.Kind = KindCheckpoint
		}
		c.requests = append(c.requests, ev)
	case EvTasksRunning:
		acts = c.tasksRunning(ev)
	case EvTasksStopped:
		acts = c.stop("job stopped: " + ev.Reason)
	case EvAck:
		acts = c.ack(ev)
	case EvDecline:
		if p := c.find(ev.ID); p != nil && !p.writing && p.isTask(ev.Task) {
			acts = c.abort(p, fmt.Sprintf("declined by %v: %s", ev.Task, ev.Reason), true)
		}
	case EvEndOfInput:
		if t := c.task(ev.Task); t != nil && !t.finished {
			t.endOfInput = true
		}
	case EvTaskFinished:
		acts = c.taskFinished(ev.Task)
	case EvTaskFailed:
		if c.task(ev.Task) != nil && c.running {
			acts = c.stop(fmt.Sprintf("task %v failed", ev.Task))
		}
	case EvMetadataWritten:
		acts = c.metadataWritten(ev)
	case EvRestore:
		c.nextID = max(c.nextID, ev.LatestID+1)
	}
	return append(acts, c.maybeTrigger()...)
}

// task returns the state of a task of the current attempt, nil for an
// unknown task or another attempt.
func (c *Coordinator) task(id TaskID) *taskState {
	if !c.started || id.Vertex < 0 || id.Vertex >= len(c.tasks) || id.Subtask < 0 || id.Subtask >= len(c.tasks[id.Vertex]) {
		return nil
	}
	if t := &c.tasks[id.Vertex][id.Subtask]; t.attempt == id.Attempt {
		return t
	}
	return nil
}

func (c *Coordinator) find(id ID) *pending {
	for _, p := range c.pending {
		if p.id == id {
			return p
		}
	}
	return nil
}

// taskID is the id of the current execution of a subtask.
func (c *Coordinator) taskID(vertex, subtask int) TaskID {
	return TaskID{Vertex: vertex, Subtask: subtask, Attempt: c.tasks[vertex][subtask].attempt}
}

func (c *Coordinator) tasksRunning(ev EvTasksRunning) []Action {
	attempt := ev.Attempt
	if c.started && attempt <= c.attempt {
		return nil
	}
	var acts []Action
	if c.running {
		// A newer attempt runs: the old one stopped, whether or not the
		// shell said so.
		acts = c.stop(fmt.Sprintf("job restarted with attempt %d", attempt))
	}
	c.started, c.running, c.attempt = true, true, attempt
	if ev.Tasks == nil {
		for _, v := range c.tasks {
			for i := range v {
				v[i] = taskState{attempt: attempt}
			}
		}
	}
	for _, id := range ev.Tasks {
		if id.Vertex < 0 || id.Vertex >= len(c.tasks) || id.Subtask < 0 || id.Subtask >= len(c.tasks[id.Vertex]) {
			continue
		}
		if t := &c.tasks[id.Vertex][id.Subtask]; t.attempt != id.Attempt {
			*t = taskState{attempt: id.Attempt}
		}
	}
	// The first periodic checkpoint comes an interval after the start, as
	// the tasks need time to restore and process.
	c.periodicFrom = c.now
	return acts
}

// stop aborts the checkpoints still collecting acks. One whose acks are
// all in is a consistent snapshot whatever happens to the tasks now, so
// its metadata write goes on and decides.
func (c *Coordinator) stop(reason string) []Action {
	c.running = false
	var acts []Action
	if d := c.draining; d != nil && !slices.ContainsFunc(c.pending, func(p *pending) bool { return p.drain }) {
		// The sources were asked to end their input, but the savepoint
		// was not triggered yet: the restarted job reads on.
		c.draining = nil
		acts = append(acts, ActAbort{Reason: reason, Request: d.Request})
	}
	for _, p := range slices.Clone(c.pending) {
		if !p.writing {
			acts = append(acts, c.abort(p, reason, false)...)
		}
	}
	return acts
}

func (c *Coordinator) expire() []Action {
	var acts []Action
	for _, p := range slices.Clone(c.pending) {
		// An abort that fails the job ends the others itself.
		if c.find(p.id) == p && !p.writing && !c.now.Before(p.triggered.Add(c.cfg.Timeout)) {
			acts = append(acts, c.abort(p, fmt.Sprintf("expired after %v", c.cfg.Timeout), true)...)
		}
	}
	return acts
}

func (c *Coordinator) ack(ev EvAck) []Action {
	p := c.find(ev.ID)
	if p == nil {
		for _, e := range c.ended {
			if e.id == ev.ID && e.aborted {
				// Its files were written after the abort discarded the
				// checkpoint's: nothing else will delete them.
				return []Action{ActDiscard{ID: ev.ID, Task: ev.Task, States: ev.States}}
			}
		}
		// Completed (a duplicate: its files may be the ones the metadata
		// names), or unknown (older than we remember, or from before a
		// restore): leave the files alone.
		return nil
	}
	if !p.waiting[ev.Task] {
		// Another attempt, a duplicate, or a task no longer waited for.
		return nil
	}
	ops := c.jg.Vertices[ev.Task.Vertex].Operators
	for _, s := range ev.States {
		if !slices.ContainsFunc(ops, func(o jobgraph.OperatorInfo) bool { return o.UID == s.UID }) {
			// The task runs other code than the job graph says: the
			// metadata has no place for this state, and dropping it
			// would lose it silently.
			return c.abort(p, fmt.Sprintf("%v acked state of operator %q, which its vertex does not have", ev.Task, s.UID), true)
		}
	}
	delete(p.waiting, ev.Task)
	p.acked[ev.Task] = ev.States
	return c.maybeAllAcked(p)
}

func (c *Coordinator) taskFinished(id TaskID) []Action {
	t := c.task(id)
	if t == nil || t.finished {
		return nil
	}
	*t = taskState{attempt: t.attempt, finished: true}
	var acts []Action
	for _, p := range slices.Clone(c.pending) {
		if p.waiting[id] {
			// A task that finishes before its barrier came has processed
			// all its input, and its consumers got its end of partition
			// in place of the barrier: the checkpoint holds all it
			// produced, and records it as finished.
			delete(p.waiting, id)
			acts = append(acts, c.maybeAllAcked(p)...)
		}
	}
	return acts
}

func (c *Coordinator) maybeAllAcked(p *pending) []Action {
	if len(p.waiting) > 0 || p.writing {
		return nil
	}
	if len(p.acked) == 0 {
		// Every task finished before taking it: it holds nothing a
		// restore could use, and the job is ending, not failing.
		return c.abort(p, "every task finished", false)
	}
	p.writing = true
	md := Metadata{JobID: c.jobID, ID: p.id, Kind: p.kind, Triggered: p.triggered, Completed: c.now}
	for _, v := range c.jg.Vertices {
		maxP := v.MaxParallelism
		if maxP == 0 {
			maxP = c.jg.MaxParallelism
		}
		for _, op := range v.Operators {
			opState := OperatorState{UID: op.UID, Name: op.Name, Parallelism: v.Parallelism, MaxParallelism: maxP}
			for i := range v.Parallelism {
				st := SubtaskState{Subtask: i, Finished: true}
				// A task's attempt changes only on a restart, which aborts
				// every pending checkpoint not yet writing.
				if states, ok := p.acked[c.taskID(v.ID, i)]; ok {
					st = SubtaskState{Subtask: i}
					for _, s := range states {
						if s.UID == op.UID {
							st = s.State
							// The task's own subtask index, not what it
							// wrote: the ack came from that subtask.
							st.Subtask = i
						}
					}
				}
				opState.Subtasks = append(opState.Subtasks, st)
			}
			md.Operators = append(md.Operators, opState)
		}
	}
	return []Action{ActWriteMetadata{Metadata: md, Dir: p.dir, Request: p.request}}
}

func (c *Coordinator) metadataWritten(ev EvMetadataWritten) []Action {
	p := c.find(ev.ID)
	if p == nil || !p.writing {
		return nil
	}
	if ev.Err != nil {
		return c.abort(p, fmt.Sprintf("metadata not written: %v", ev.Err), true)
	}
	c.remove(p, false)
	if p.kind == KindSavepoint && !p.stop && !p.drain {
		// An intermediate savepoint commits nothing: the tasks are not
		// told, and none waits for it to finish (it is never final).
		return nil
	}
	if p.stop || p.drain {
		// The job is stopping: its sinks commit this savepoint, and
		// nothing is triggered any more.
		c.stopped = true
		c.draining = nil
	} else {
		c.failures = 0
	}
	done := ActNotifyComplete{ID: p.id, Savepoint: p.kind == KindSavepoint}
	for _, id := range p.tasks {
		if t := c.task(id); t != nil && !t.finished {
			done.Tasks = append(done.Tasks, id)
		}
	}
	for _, id := range p.ended {
		if t := c.task(id); t != nil && !t.finished {
			t.released = true
			done.Finish = append(done.Finish, id)
		}
	}
	acts := []Action{done}
	if p.kind == KindCheckpoint {
		// A newer complete checkpoint makes older pending ones useless
		// (as in Flink, they are subsumed; that is no failure). Savepoints
		// are the user's and go on, and so do checkpoints whose metadata
		// is being written: the shell's write would race the discard.
		for _, o := range slices.Clone(c.pending) {
			if o.id < p.id && o.kind == KindCheckpoint && !o.writing {
				acts = append(acts, c.abort(o, fmt.Sprintf("subsumed by checkpoint %d", p.id), false)...)
			}
		}
	}
	return acts
}

// abort ends p; count says the failure counts against
// Config.TolerableFailures (checkpoints only).
func (c *Coordinator) abort(p *pending, reason string, count bool) []Action {
	c.remove(p, true)
	if p.drain {
		c.draining = nil
	}
	abort := ActAbort{ID: p.id, Reason: reason, Request: p.request}
	for _, id := range p.tasks {
		if t := c.task(id); t != nil && !t.finished && c.running {
			abort.Tasks = append(abort.Tasks, id)
		}
	}
	acts := []Action{abort}
	if !count || p.kind != KindCheckpoint {
		return acts
	}
	c.failures++
	if c.failures <= c.cfg.TolerableFailures {
		return acts
	}
	c.failures = 0
	acts = append(acts, ActFailJob{Reason: fmt.Sprintf("too many failed checkpoints (%d in a row, %d tolerable); the last, checkpoint %d: %s", c.cfg.TolerableFailures+1, c.cfg.TolerableFailures, p.id, reason)})
	// The job is failing: trigger nothing more and end what is pending
	// until it runs again.
	return append(acts, c.stop("job failing: too many failed checkpoints")...)
}

func (c *Coordinator) remove(p *pending, aborted bool) {
	c.pending = slices.DeleteFunc(c.pending, func(o *pending) bool { return o == p })
	c.lastEnd = c.now
	c.ended = append(c.ended, ended{id: p.id, aborted: aborted})
	if len(c.ended) > rememberEnded {
		c.ended = c.ended[1:]
	}
}

// maybeTrigger triggers what is due: queued savepoints (held back only by
// tasks not running), queued checkpoint requests, the final checkpoint,
// and the periodic one.
func (c *Coordinator) maybeTrigger() []Action {
	if !c.running || c.stopped {
		return nil
	}
	plan := c.plan()
	if len(plan) == 0 {
		// Every task finished: there is nothing to take a savepoint of,
		// so its requests are answered now rather than at the job's end.
		var acts []Action
		var keep []EvTrigger
		for _, r := range c.requests {
			if r.Kind == KindSavepoint {
				acts = append(acts, ActAbort{Reason: "every task of the job has finished: there is no state left to take a savepoint of", Request: r.Request})
			} else {
				keep = append(keep, r)
			}
		}
		c.requests = keep
		return acts
	}
	var acts []Action
	var keep []EvTrigger
	for _, r := range c.requests {
		switch {
		case c.stopping():
			// Held: a newer trigger would make the stopped sources read
			// on. They wait for the stop's outcome (and are refused at
			// the job's end if it succeeds).
			keep = append(keep, r)
		case r.Kind == KindSavepoint && r.Stop && r.Drain:
			d := r
			c.draining = &d
			acts = append(acts, ActEndInput{Tasks: c.runningSources()})
		case r.Kind == KindSavepoint || c.allowed(true):
			acts = append(acts, c.trigger(plan, r))
		default:
			keep = append(keep, r)
		}
	}
	c.requests = keep
	if d := c.draining; d != nil {
		// The draining savepoint is the final snapshot: taken once every
		// task reached its end of input, instead of a final checkpoint;
		// no periodic checkpoint meanwhile.
		if c.needFinal() {
			acts = append(acts, c.trigger(plan, *d))
		}
		return acts
	}
	if c.stopping() {
		return acts
	}
	// The final checkpoint does not wait for MinPause either: nothing is
	// processed any more, and the tasks wait for it to finish.
	if c.needFinal() && c.allowed(false) {
		acts = append(acts, c.trigger(plan, EvTrigger{Kind: KindCheckpoint}))
	}
	if c.cfg.Interval > 0 && !c.now.Before(c.periodicFrom.Add(c.cfg.Interval)) && c.allowed(true) {
		acts = append(acts, c.trigger(plan, EvTrigger{Kind: KindCheckpoint}))
	}
	return acts
}

func (c *Coordinator) allowed(minPause bool) bool {
	if len(c.pending) >= c.cfg.MaxConcurrent {
		return false
	}
	return !minPause || c.lastEnd.IsZero() || !c.now.Before(c.lastEnd.Add(c.cfg.MinPause))
}

// needFinal says every running task has reached the end of its input, some
// still waits to be told it may finish, and no checkpoint triggered since
// is pending.
func (c *Coordinator) needFinal() bool {
	waiting := false
	for _, v := range c.tasks {
		for _, t := range v {
			if t.finished {
				continue
			}
			if !t.endOfInput {
				return false
			}
			waiting = waiting || !t.released
		}
	}
	return waiting && !slices.ContainsFunc(c.pending, func(p *pending) bool { return p.final })
}

func (c *Coordinator) trigger(plan []TaskID, r EvTrigger) Action {
	p := &pending{
		id: c.nextID, kind: r.Kind, dir: r.Dir, request: r.Request, triggered: c.now,
		waiting: map[TaskID]bool{}, acked: map[TaskID][]OperatorSnapshot{}, final: r.Kind == KindCheckpoint || r.Drain,
		stop: r.Kind == KindSavepoint && r.Stop && !r.Drain, drain: r.Kind == KindSavepoint && r.Stop && r.Drain,
	}
	c.nextID++
	for vi, v := range c.tasks {
		for si, t := range v {
			if t.finished {
				continue
			}
			id := c.taskID(vi, si)
			p.tasks = append(p.tasks, id)
			p.waiting[id] = true
			switch {
			case r.Kind == KindSavepoint && !r.Drain:
				// Not notified, so it releases no task waiting to
				// finish: the final checkpoint does that.
			case t.endOfInput:
				p.ended = append(p.ended, id)
			default:
				p.final = false
			}
		}
	}
	c.pending = append(c.pending, p)
	if r.Kind == KindCheckpoint {
		c.periodicFrom = c.now
	}
	mode := c.cfg.Mode
	if r.Kind == KindSavepoint {
		// A savepoint is the user's consistent copy of the job: never
		// with records counted twice.
		mode = ExactlyOnce
	}
	return ActTrigger{ID: p.id, Kind: p.kind, Timestamp: c.now, Tasks: plan, Mode: mode, Dir: r.Dir, Request: r.Request, Final: p.final, Stop: r.Stop, Drain: r.Drain}
}

// plan returns the tasks a checkpoint is triggered at (FLIP-147): the
// running tasks none of whose producers runs. While a source runs these
// are the running sources (and the heads of pipelines whose sources have
// finished); once every source finished, the first running tasks
// downstream. Finished tasks are skipped: their consumers got their end of
// partition, which stands in for the barrier.
// stopping says a stop-with-savepoint is in progress: a savepoint
// without drain is pending, or the sources were asked to drain.
func (c *Coordinator) stopping() bool {
	return c.draining != nil || slices.ContainsFunc(c.pending, func(p *pending) bool { return p.stop })
}

// runningSources are the running tasks of the job's source vertices.
func (c *Coordinator) runningSources() []TaskID {
	var out []TaskID
	for vi, v := range c.tasks {
		if !c.jg.Vertices[vi].IsSource {
			continue
		}
		for si, t := range v {
			if !t.finished {
				out = append(out, c.taskID(vi, si))
			}
		}
	}
	return out
}

func (c *Coordinator) plan() []TaskID {
	var out []TaskID
	for vi, v := range c.tasks {
		for si, t := range v {
			if !t.finished && !c.producerRuns(vi, si) {
				out = append(out, c.taskID(vi, si))
			}
		}
	}
	return out
}

func (c *Coordinator) producerRuns(vertex, subtask int) bool {
	for _, in := range c.inputs[vertex] {
		if in.forward {
			if !c.tasks[in.from][subtask].finished {
				return true
			}
			continue
		}
		for _, t := range c.tasks[in.from] {
			if !t.finished {
				return true
			}
		}
	}
	return false
}

func (p *pending) isTask(id TaskID) bool { return slices.Contains(p.tasks, id) }

func (p *pending) waitingTasks() []TaskID {
	var out []TaskID
	for id := range p.waiting {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b TaskID) int {
		if a.Vertex != b.Vertex {
			return a.Vertex - b.Vertex
		}
		return a.Subtask - b.Subtask
	})
	return out
}
