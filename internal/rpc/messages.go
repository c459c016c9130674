// Package rpc holds what Strom's runtime roles — Dispatcher, JobMaster,
// ResourceManager, TaskManager — may say to each other: one gateway
// interface per role and the messages its methods carry, plus the
// in-process transport the embedded cluster uses (Local) and the one
// between processes (Network, with the protobuf form of the messages in
// wire.go).
//
// Every message is plain data: ids, states, counts and strings, no pointer
// to another role, no closure, no reply channel, so each one survives a
// JSON round trip (messages_test.go checks all of them) and a network
// transport can replace the in-process one without touching the roles. An
// answer is a message of its own sent back to the asker's gateway, matched
// by a request id where one role may ask more than once.
//
// The one exception is Failure.Cause, kept only in this process (see
// Failure).
package rpc

import (
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Message is one of the message types of this package (the set is closed).
type Message interface{ isMessage() }

// Messages to the ResourceManager.
type (
	// RegisterTaskManager offers a TaskManager's slots. Address is where
	// its gateway is reached; slot grants carry it to the JobMaster.
	RegisterTaskManager struct {
		TaskManager string
		Address     string
		Slots       int
		// DataAddress is where the TaskManager's data plane listens
		// (network/tcp); empty when it shares the process's in-process
		// channels with every other TaskManager (the embedded cluster).
		DataAddress string
	}
	// RequestSlots asks for N slots for a job. The answer, SlotsGranted or
	// SlotsRefused with the same JobID and RequestID, goes to the
	// JobMaster at JobMaster (an address).
	RequestSlots struct {
		JobID     string
		RequestID uint64
		N         int
		JobMaster string
	}
	// CancelSlotRequest withdraws a request still waiting; it is then
	// answered with SlotsRefused. A request already granted is released
	// by the JobMaster when the grant arrives.
	CancelSlotRequest struct {
		JobID     string
		RequestID uint64
	}
	// ReleaseSlots gives a job's slots back.
	ReleaseSlots struct {
		JobID string
		Slots []scheduler.SlotID
	}
	// TaskManagerHeartbeat answers a HeartbeatRequest, to the
	// ResourceManager or a JobMaster (whoever asked, at the request's
	// ReplyTo): a sign of life with its payload. Seq is the request's.
	// For a JobMaster (JobID set) Executions are the executions of that
	// job the TaskManager runs, by attempt, so the JobMaster can cancel
	// stale ones of a TaskManager it declared dead; for the
	// ResourceManager (JobID empty) they are every execution there, and
	// Slots is its slot count (its slot report).
	TaskManagerHeartbeat struct {
		TaskManager string
		JobID       string
		Seq         uint64
		Slots       int
		Executions  []scheduler.ExecutionID
	}
)

// Messages to a JobMaster.
type (
	// SlotsGranted answers RequestSlots: the slots, each with the address
	// of its TaskManager, which is how the JobMaster learns the
	// TaskManagers it deploys to.
	SlotsGranted struct {
		JobID     string
		RequestID uint64
		Slots     []SlotOffer
	}
	// SlotsRefused answers RequestSlots: the slots cannot be had, or the
	// request was withdrawn.
	SlotsRefused struct {
		JobID     string
		RequestID uint64
		Reason    string
	}
	// TaskStateUpdate reports an execution's new state. Metrics is the
	// snapshot of its operators' counters when the state was reached (none
	// before the task is built); the one sent with a terminal state holds
	// the final counts. Failure is set for FAILED.
	TaskStateUpdate struct {
		JobID     string
		Execution scheduler.ExecutionID
		State     scheduler.ExecState
		Failure   *Failure
		Metrics   []OperatorMetrics
	}
	// MetricsReport is a TaskManager's periodic snapshot of the counters of
	// a job's tasks that run on it, taken upstream vertex first.
	MetricsReport struct {
		JobID       string
		TaskManager string
		Tasks       []TaskMetrics
	}
	// CancelJob asks the JobMaster to cancel its job.
	CancelJob struct {
		JobID string
	}
	// TriggerSavepoint asks the JobMaster for a savepoint of its job into
	// a new directory under Target (a blob URL). It is answered with
	// SavepointResult, carrying RequestID, to the Dispatcher (the only
	// role that asks). Stop makes it a stop-with-savepoint, Drain drains
	// first. With Checkpoint it is a checkpoint asked for by hand instead,
	// into the job's checkpoint storage (Target, Stop and Drain unused),
	// answered with its id once complete.
	TriggerSavepoint struct {
		JobID      string
		RequestID  uint64
		Target     string
		Stop       bool
		Drain      bool
		Checkpoint bool
	}
	// AcknowledgeCheckpoint is a task's snapshot for a checkpoint, sent
	// once its state is in checkpoint storage: per chained operator with
	// state, the handles of its files (paths relative to the storage
	// root). SyncPause is how long the task stopped processing for the
	// synchronous part of the snapshot.
	AcknowledgeCheckpoint struct {
		JobID        string
		Execution    scheduler.ExecutionID
		CheckpointID int64
		States       []checkpoint.OperatorSnapshot
		SyncPause    time.Duration
	}
	// DeclineCheckpoint says a task could not take a checkpoint.
	DeclineCheckpoint struct {
		JobID        string
		Execution    scheduler.ExecutionID
		CheckpointID int64
		Reason       string
	}
	// TaskEndOfInput says a task of a checkpointed job has processed all
	// its input, finished its operators and ended its outputs; it waits,
	// still RUNNING, for a checkpoint taken after this point to complete
	// (FLIP-147's final checkpoint) before it finishes.
	TaskEndOfInput struct {
		JobID     string
		Execution scheduler.ExecutionID
	}
)

// Messages to a TaskManager.
type (
	// DeployTask tells a TaskManager to run an execution in one of its
	// slots. The TaskManager finds the job's code itself (see
	// internal/jobcode), and reports to the JobMaster at JobMaster.
	//
	// Restore, when set, is the checkpoint the task starts from (Flink's
	// TaskStateSnapshot in the deployment descriptor): the handles of
	// every subtask of the operators of the job, which the TaskManager
	// reads from checkpoint storage itself and redistributes to its
	// subtask, so the JobMaster never moves state bytes.
	//
	// Placement says where every subtask of the job runs, by the data
	// address of its TaskManager (Flink's partition locations in the
	// deployment descriptor): a channel to a subtask elsewhere crosses the
	// data plane. Nil when every TaskManager shares one process's
	// channels.
	//
	// Binary and Args, in a cluster that runs job binaries, name the
	// job's binary in the Dispatcher's blob store (its sha256) and the
	// program arguments every process of the job runs it with; the
	// TaskManager runs the task in a child process of that binary (its
	// job worker). Empty when the job's code is in the TaskManager's own
	// process (the embedded cluster).
	DeployTask struct {
		JobID     string
		Execution scheduler.ExecutionID
		Slot      scheduler.SlotID
		JobMaster string
		Restore   *RestoreHandles
		Placement []TaskPlacement
		Binary    string
		Args      []string
	}
	// ReleaseChannels tells a TaskManager that channels of a job it may
	// hold are no longer needed (Flink's releasePartitions): those of
	// attempt Attempt of the vertices Vertices, whose inputs are the
	// stream edges Edges (nil Vertices: every vertex, the whole attempt),
	// or, with JobEnded, everything of the job — a TaskManager running
	// the job in a worker process then stops that process. The roles of
	// one process release in-process channels directly; this carries the
	// same release to TaskManagers in other processes.
	ReleaseChannels struct {
		JobID    string
		Attempt  int
		Vertices []int
		Edges    []int
		JobEnded bool
	}
	// HeartbeatRequest asks a TaskManager for a sign of life, answered
	// with TaskManagerHeartbeat to ReplyTo (the asker's address). JobID
	// is the asking JobMaster's job (empty: the ResourceManager asks).
	// Reregister (from the ResourceManager only) says the TaskManager was
	// declared dead and its slots dropped: it must cancel every task it
	// runs (their attempts are stale; the JobMasters failed them) and
	// register again before it is given slots (fencing).
	HeartbeatRequest struct {
		ReplyTo    string
		JobID      string
		Seq        uint64
		Reregister bool
	}
	// CancelTask cancels an execution.
	CancelTask struct {
		JobID     string
		Execution scheduler.ExecutionID
	}
	// TriggerCheckpoint makes a source task take a checkpoint.
	TriggerCheckpoint struct {
		JobID        string
		Execution    scheduler.ExecutionID
		CheckpointID int64
		// Timestamp is when the coordinator triggered it (Unix ms).
		Timestamp int64
		Mode      checkpoint.Mode
		Kind      checkpoint.Kind
		// Target is the URL of a savepoint's own directory, where the
		// task's state files go (paths relative to it); empty for a
		// checkpoint, whose files go to the job's checkpoint storage.
		Target string
		// Stop and Drain make the savepoint a stop-with-savepoint
		// (runtime.CheckpointOptions): without drain a source stops reading
		// after it and ends once it is notified complete; with drain it is
		// the final snapshot, taken after the sources were drained.
		Stop, Drain bool
	}
	// DrainSource asks a source task to end its input now, as a bounded
	// source does (stop-with-savepoint with drain).
	DrainSource struct {
		JobID     string
		Execution scheduler.ExecutionID
	}
	// SavepointTarget tells a TaskManager where the state files of
	// savepoint CheckpointID of a job go. Only the sources get the
	// trigger (TriggerCheckpoint.Target); every other task snapshots on
	// the barrier, which carries no location, so the JobMaster announces
	// it to each TaskManager of the job before triggering.
	SavepointTarget struct {
		JobID        string
		CheckpointID int64
		Target       string
	}
	// AbortCheckpoint tells a task to drop a checkpoint (stop aligning
	// it) and its operators that it was aborted.
	AbortCheckpoint struct {
		JobID        string
		Execution    scheduler.ExecutionID
		CheckpointID int64
		Reason       string
	}
	// NotifyCheckpointComplete tells a task that a checkpoint is complete
	// (its metadata is in storage): its operators may commit.
	NotifyCheckpointComplete struct {
		JobID        string
		Execution    scheduler.ExecutionID
		CheckpointID int64
	}
)

// Messages to the Dispatcher.
type (
	// JobStatus is a JobMaster's view of its job, sent whenever it changes.
	JobStatus struct {
		JobID string
		State scheduler.JobState
		// Restarts counts the job's restarts so far (its executions'
		// attempt number).
		Restarts   int
		Executions []ExecutionStatus
		Operators  []OperatorTotals
		// Details is what the REST API shows beyond the status.
		Details JobDetails
	}
	// JobFinished reports how a job ended; it is the JobMaster's last
	// message.
	JobFinished struct {
		JobID      string
		JobName    string
		State      scheduler.JobState
		Failure    *Failure
		Duration   time.Duration
		Restarts   int
		Executions []ExecutionStatus
		Operators  []OperatorTotals
		// CheckpointsCompleted counts the job's completed checkpoints;
		// RestoredCheckpoint is the id of the checkpoint the job last
		// restored from (0: none).
		CheckpointsCompleted int
		RestoredCheckpoint   int64
		// RestoredFrom is the savepoint (its directory's URL) the job
		// resumed from, or "checkpoint <id>" for its last restore from
		// one of its own checkpoints; empty: it never restored.
		RestoredFrom string
		// LastCheckpointDuration is how long the last completed checkpoint
		// took, from its trigger until its metadata was written (it is
		// complete then); 0 if none completed.
		LastCheckpointDuration time.Duration
		// LastCheckpointSize is the bytes of state the last completed
		// checkpoint wrote, and LastCheckpointSyncPause the longest
		// synchronous pause a task took for it (AcknowledgeCheckpoint).
		LastCheckpointSize      int64
		LastCheckpointSyncPause time.Duration
		// Details: as in JobStatus, at the job's end.
		Details JobDetails
	}
	// SavepointResult answers TriggerSavepoint: Path is the savepoint's
	// directory URL (CheckpointID the checkpoint's id, for a checkpoint
	// asked for by hand), or Error says why there is none (the job runs
	// on).
	SavepointResult struct {
		JobID        string
		RequestID    uint64
		Path         string
		Error        string
		CheckpointID int64
	}
)

func (RegisterTaskManager) isMessage()      {}
func (RequestSlots) isMessage()             {}
func (CancelSlotRequest) isMessage()        {}
func (ReleaseSlots) isMessage()             {}
func (SlotsGranted) isMessage()             {}
func (SlotsRefused) isMessage()             {}
func (TaskStateUpdate) isMessage()          {}
func (MetricsReport) isMessage()            {}
func (CancelJob) isMessage()                {}
func (DeployTask) isMessage()               {}
func (CancelTask) isMessage()               {}
func (ReleaseChannels) isMessage()          {}
func (JobStatus) isMessage()                {}
func (AcknowledgeCheckpoint) isMessage()    {}
func (DeclineCheckpoint) isMessage()        {}
func (TaskEndOfInput) isMessage()           {}
func (TriggerCheckpoint) isMessage()        {}
func (AbortCheckpoint) isMessage()          {}
func (NotifyCheckpointComplete) isMessage() {}
func (JobFinished) isMessage()              {}
func (TriggerSavepoint) isMessage()         {}
func (SavepointTarget) isMessage()          {}
func (DrainSource) isMessage()              {}
func (SavepointResult) isMessage()          {}
func (HeartbeatRequest) isMessage()         {}
func (TaskManagerHeartbeat) isMessage()     {}

// SlotOffer is a granted slot and where its TaskManager is reached.
type SlotOffer struct {
	Slot    scheduler.SlotID
	Address string
	// DataAddress is the TaskManager's data-plane address (see
	// RegisterTaskManager).
	DataAddress string
}

// TaskPlacement is where one subtask of a job runs: the data-plane address
// of its TaskManager.
type TaskPlacement struct {
	Vertex, Subtask int
	DataAddress     string
}

// ExecutionStatus is one execution as the JobMaster sees it.
type ExecutionStatus struct {
	ID      scheduler.ExecutionID
	State   scheduler.ExecState
	Slot    scheduler.SlotID
	Failure *Failure
	// Start is when this attempt was deployed, End when it reached a
	// terminal state (zero: not yet).
	Start, End time.Time
	// Metrics is the attempt's latest metrics snapshot (nil: none yet).
	Metrics *TaskMetrics
}

// JobDetails is what a JobMaster reports of its job for the REST API
// (Flink's /jobs/:id/exceptions and /jobs/:id/checkpoints), plain data.
type JobDetails struct {
	// Exceptions are the job's failures, newest first (a bounded
	// history).
	Exceptions []JobException
	// Checkpoints are the job's checkpoint statistics.
	Checkpoints CheckpointStats
	// CheckpointConfig is the job's checkpointing (nil: none).
	CheckpointConfig *CheckpointSettings
}

// JobException is one failure of a job: of a task (Failure.Task set), or
// of the job as a whole.
type JobException struct {
	Time    time.Time
	Failure Failure
	// TaskManager is where the failed task ran (empty: not a task's).
	TaskManager string
}

// CheckpointStats count a job's checkpoints and savepoints since its
// JobMaster started, with the most recent ones.
type CheckpointStats struct {
	Total, InProgress, Completed, Failed int
	// History holds the most recent checkpoints, newest first.
	History []CheckpointRecord
	// Restored counts restores; Restored* describe the latest (ID 0:
	// none).
	Restored          int
	RestoredID        int64
	RestoredTime      time.Time
	RestoredSavepoint bool
	RestoredPath      string
}

// CheckpointRecord is one checkpoint or savepoint.
type CheckpointRecord struct {
	ID int64
	// Status is IN_PROGRESS, COMPLETED or FAILED.
	Status    string
	Savepoint bool
	// Sync: a stop-with-savepoint.
	Sync      bool
	Triggered time.Time
	LatestAck time.Time
	// Duration is trigger to completion or failure (0 while in progress).
	Duration time.Duration
	// Size is the bytes of state the acks reported; SyncPause the
	// longest synchronous pause a task took for it.
	Size                         int64
	SyncPause                    time.Duration
	NumSubtasks, NumAcknowledged int
	// Path is where a completed savepoint is (a checkpoint's is in the
	// job's checkpoint storage, Storage of CheckpointSettings).
	Path           string
	FailureMessage string
}

// CheckpointSettings are a job's checkpointing settings
// (jobcode.Checkpointing).
type CheckpointSettings struct {
	ExactlyOnce                 bool
	Interval, Timeout, MinPause time.Duration
	MaxConcurrent               int
	TolerableFailures           int
	Storage                     string
	AlignedTimeout              time.Duration
	Retained                    int
	// Unaligned: checkpoints are unaligned (exactly once).
	Unaligned bool
}

// TaskMetrics are the counters of one execution's operators, and where the
// task's time went over the last second or two (runtime.TaskTimes):
// milliseconds per second busy, idle (waiting for input) and back-pressured
// (waiting for an output buffer), as Flink's busyTimeMsPerSecond and
// friends; all 0 before the task ran.
type TaskMetrics struct {
	Execution                                                  scheduler.ExecutionID
	Operators                                                  []OperatorMetrics
	BusyMsPerSecond, IdleMsPerSecond, BackPressuredMsPerSecond float64
}

// OperatorMetrics is a snapshot of the counters of one operator subtask.
type OperatorMetrics struct {
	Vertex     int
	Subtask    int
	Node       int
	Name       string
	UID        string
	IsSource   bool
	RecordsIn  int64
	RecordsOut int64
	// BackpressureWaits counts how often the operator's output had to wait
	// for a free buffer.
	BackpressureWaits int64
	// Watermark is the operator's current input watermark (event time,
	// ms; runtime.MinWatermark: none yet).
	Watermark int64
}

// OperatorTotals are an operator's counts summed over its subtasks.
type OperatorTotals struct {
	Node              int
	Name              string
	UID               string
	Parallelism       int
	RecordsIn         int64
	RecordsOut        int64
	BackpressureWaits int64
}

// RestoreHandles is the checkpoint a redeployed task restores from: the
// operators' states as the checkpoint's metadata holds them.
type RestoreHandles struct {
	CheckpointID int64
	Operators    []checkpoint.OperatorState
	// Storage is the blob URL the handles' paths resolve against: a
	// savepoint's directory; empty for the job's checkpoint storage.
	Storage string
}
