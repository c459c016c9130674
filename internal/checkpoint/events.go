package checkpoint

import (
	"fmt"
	"time"
)

// TaskID names one attempt of one subtask, as the scheduler's ExecutionID
// does; the attempt is the job's restart epoch (every restart restarts all
// tasks with the next attempt), so a message of an older attempt is told
// apart from the current task's.
type TaskID struct {
	Vertex, Subtask, Attempt int
}

func (t TaskID) String() string { return fmt.Sprintf("v%d/%d#%d", t.Vertex, t.Subtask, t.Attempt) }

// Mode is how tasks treat barriers.
type Mode uint8

const (
	// ExactlyOnce aligns barriers: a task with several input channels
	// holds back the channels whose barrier has arrived until every
	// channel's has, so the snapshot holds exactly the records before the
	// barrier. The zero Config means this mode.
	ExactlyOnce Mode = iota
	// AtLeastOnce lets records of channels whose barrier has arrived pass:
	// cheaper, but after a restore those records are seen twice.
	AtLeastOnce
	// Unaligned lets barriers overtake in-flight records, which tasks
	// store as channel state (FLIP-76): exactly-once without waiting for
	// alignment under backpressure.
	Unaligned
)

func (m Mode) String() string {
	switch m {
	case ExactlyOnce:
		return "EXACTLY_ONCE"
	case Unaligned:
		return "UNALIGNED"
	case AtLeastOnce:
		return "AT_LEAST_ONCE"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// OperatorSnapshot is one chained operator's share of a task's ack: the
// state of this subtask of the operator with that UID.
type OperatorSnapshot struct {
	UID   string
	State SubtaskState
}

// Event is an input to the Coordinator. The set is closed: only the Ev*
// types of this package implement it.
type Event interface{ isEvent() }

// Events.
type (
	// EvTick tells the coordinator the time; it reads no clock itself.
	// Periodic checkpoints and timeouts happen on ticks, so the shell
	// sends them often (a fraction of the interval and of the timeout).
	EvTick struct{ Now time.Time }
	// EvTrigger asks for a checkpoint or a savepoint (REST, CLI). It is
	// queued until allowed: a savepoint as soon as all tasks run, a
	// checkpoint also within MaxConcurrent and MinPause (never waiting for
	// the interval). Request is the shell's number for the request (not
	// 0), echoed in ActTrigger so it can tell the user the id. Requests
	// wait across restarts; those still queued when the job ends are the
	// shell's to refuse.
	EvTrigger struct {
		Request int
		// Kind is KindCheckpoint or KindSavepoint; any other value means
		// KindCheckpoint.
		Kind Kind
		// Dir is where a savepoint goes (the URL of its own directory,
		// chosen by the shell); empty for the configured checkpoint
		// storage.
		Dir string
		// Stop makes a savepoint a stop-with-savepoint. Without Drain it
		// is triggered at once (other triggers wait while it is pending);
		// the sources stop reading after it, and once it is complete the
		// tasks are notified (their sinks commit it) and the coordinator
		// triggers nothing more: the job ends. With Drain the coordinator
		// first asks the sources to end their input (ActEndInput) and
		// takes the savepoint as the final snapshot once every task
		// reached its end, releasing them as a final checkpoint does. If
		// it fails the job goes on (without drain the sources read again;
		// with drain their input has ended, so the job takes a final
		// checkpoint and finishes).
		Stop, Drain bool
	}
	// EvTasksRunning says every task of the job runs with this attempt:
	// the job has started or restarted. Attempts only grow: a report of an
	// older one, or of the current one again, is ignored, and a newer one
	// ends the current one as EvTasksStopped does.
	//
	// After a region failover (the scheduler restarted only some tasks)
	// the tasks' attempts differ: Tasks then lists every task with its
	// current attempt, and Attempt is the job's restart count, which still
	// only grows. Tasks whose attempt is unchanged keep what the
	// coordinator knows of them (finished, end of input); the others
	// start afresh. Tasks nil means every task runs at Attempt.
	EvTasksRunning struct {
		Attempt int
		Tasks   []TaskID
	}
	// EvTasksStopped says the job's tasks stopped (failed, cancelled,
	// suspended): pending checkpoints are aborted and none is triggered
	// until the next EvTasksRunning.
	EvTasksStopped struct{ Reason string }
	// EvAck is a task's acknowledgement of a checkpoint: the state of each
	// of its chained operators that has state.
	EvAck struct {
		ID     ID
		Task   TaskID
		States []OperatorSnapshot
	}
	// EvDecline says a task could not take the checkpoint.
	EvDecline struct {
		ID     ID
		Task   TaskID
		Reason string
	}
	// EvEndOfInput says a task has processed all of its input (a bounded
	// source is exhausted, or every input channel ended) and flushed what
	// it holds. It now waits, still running, for the completion of a
	// checkpoint triggered after this point, so that its last output is
	// committed (two-phase commit sinks), before it finishes (FLIP-147).
	EvEndOfInput struct{ Task TaskID }
	// EvTaskFinished says a task reached FINISHED: checkpoints no longer
	// wait for its ack, and its subtask is recorded as finished.
	EvTaskFinished struct{ Task TaskID }
	// EvTaskFailed says a task failed: the job restarts (EvTasksRunning
	// with the next attempt), so pending checkpoints are aborted.
	EvTaskFailed struct{ Task TaskID }
	// EvMetadataWritten answers ActWriteMetadata: the checkpoint is
	// complete if Err is nil and aborted otherwise.
	EvMetadataWritten struct {
		ID  ID
		Err error
	}
	// EvRestore says the job was restored from (or resumes after) the
	// checkpoint LatestID, or that LatestID is the highest id the job has
	// used: later checkpoints get higher ids.
	EvRestore struct{ LatestID ID }
)

func (EvTick) isEvent()            {}
func (EvTrigger) isEvent()         {}
func (EvTasksRunning) isEvent()    {}
func (EvTasksStopped) isEvent()    {}
func (EvAck) isEvent()             {}
func (EvDecline) isEvent()         {}
func (EvEndOfInput) isEvent()      {}
func (EvTaskFinished) isEvent()    {}
func (EvTaskFailed) isEvent()      {}
func (EvMetadataWritten) isEvent() {}
func (EvRestore) isEvent()         {}

// Action is an output of the Coordinator for its shell to carry out, in
// order. The set is closed: only the Act* types of this package implement
// it.
type Action interface{ isAction() }

// Actions.
type (
	// ActTrigger starts checkpoint ID at Tasks: the running tasks all of
	// whose inputs come from finished tasks (the running sources while
	// any runs). They snapshot their state and send barrier ID
	// downstream; every running task acks.
	ActTrigger struct {
		ID        ID
		Kind      Kind
		Timestamp time.Time
		Tasks     []TaskID
		Mode      Mode
		// Dir is the savepoint's directory (empty: checkpoint storage).
		Dir string
		// Request is EvTrigger's Request, 0 for a checkpoint the
		// coordinator started itself.
		Request int
		// Final says every running task had reached the end of its input
		// when it was triggered: completing it lets the job finish.
		// Never set for a savepoint, except a stop-with-savepoint's with
		// drain, which is the job's final snapshot.
		Final bool
		// Stop and Drain are EvTrigger's, passed through.
		Stop, Drain bool
	}
	// ActWriteMetadata says every task has acked: the shell writes
	// Metadata (to Dir for a savepoint) and answers EvMetadataWritten.
	// The checkpoint is not complete before that answer. A savepoint is
	// done when the write succeeds: intermediate savepoints are not
	// notified to the tasks (as in Flink since 1.15, they commit no side
	// effects; a two-phase-commit sink commits what they covered with the
	// next checkpoint), so no ActNotifyComplete follows for one.
	ActWriteMetadata struct {
		Metadata Metadata
		Dir      string
		// Request is EvTrigger's Request (0: a periodic checkpoint).
		Request int
	}
	// ActNotifyComplete tells the tasks that checkpoint ID is complete:
	// they commit what it covers (two-phase commit sinks). Finish are the
	// tasks that had reached the end of their input when it was
	// triggered: they may now finish. Notifications may come out of id
	// order (an older checkpoint's metadata written last): a task commits
	// what an id covers once, and ignores an id below one it has seen.
	//
	// Savepoint marks the notification of a stop-with-savepoint's
	// savepoint (the only savepoints notified): it is not in the
	// checkpoint store, so the shell writes no notified marker for it.
	ActNotifyComplete struct {
		ID        ID
		Tasks     []TaskID
		Finish    []TaskID
		Savepoint bool
	}
	// ActEndInput asks the running source tasks to end their input now,
	// as a bounded source does (the maximum watermark, end-of-input hooks):
	// a stop-with-savepoint with drain, whose savepoint is then taken as
	// the job's final snapshot once every task reached its end of input.
	ActEndInput struct{ Tasks []TaskID }
	// ActAbort tells the running tasks of checkpoint ID to drop it (and
	// pass on an abort marker instead of waiting for its barriers); the
	// shell also discards the checkpoint's private files. Tasks may be
	// empty.
	//
	// Request names the user's request (EvTrigger.Request, 0 for a
	// checkpoint the coordinator started): the shell answers it with
	// Reason. A savepoint's abort never counts against
	// Config.TolerableFailures and never fails the job.
	ActAbort struct {
		ID      ID
		Reason  string
		Tasks   []TaskID
		Request int
	}
	// ActDiscard says an ack came for a checkpoint already aborted: the
	// shell deletes the non-shared files of States, which nothing will
	// reference.
	ActDiscard struct {
		ID     ID
		Task   TaskID
		States []OperatorSnapshot
	}
	// ActFailJob says more consecutive checkpoints failed than
	// Config.TolerableFailures allows: the shell fails the job (which
	// restarts it under its restart strategy).
	ActFailJob struct{ Reason string }
)

func (ActTrigger) isAction()        {}
func (ActWriteMetadata) isAction()  {}
func (ActNotifyComplete) isAction() {}
func (ActAbort) isAction()          {}
func (ActDiscard) isAction()        {}
func (ActEndInput) isAction()       {}
func (ActFailJob) isAction()        {}
