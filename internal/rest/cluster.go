package rest

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// Cluster is what the REST handlers read and act through: the Dispatcher
// side of a Strom cluster. The handlers never hold state about jobs of their
// own (apart from asynchronous operations, see Server), so every answer is
// what the Cluster says at the time of the request.
//
// Contract for implementations:
//
//   - Every method honours ctx: a client that goes away cancels the request's
//     context and the method returns promptly with ctx's error.
//   - An unknown id (job, vertex, checkpoint, TaskManager, binary) is an error
//     that wraps ErrNotFound; a request the cluster refuses because of the
//     job's state (cancelling a finished job) wraps ErrConflict; a request
//     that is malformed in a way only the cluster can tell (a binary that is
//     not a job binary, a savepoint path that is not one) wraps ErrInvalid.
//     Any other error is the cluster's failure and becomes a 500.
//   - Ids are Flink-shaped: job ids, vertex ids and TaskManager ids are 32
//     lower-case hex digits (the REST paths refuse anything else with 400
//     before the Cluster is asked, except TaskManager and binary ids, which
//     are passed through); checkpoint ids are positive integers. Binary ids
//     are the store's own: they must not contain '/', '\\' or NUL nor be
//     "." or ".." (the handlers refuse such ids with 404, so a store that
//     keeps binaries as files never sees one).
//   - States are Flink's names: JobState one of CREATED, RUNNING, FAILING,
//     CANCELLING, FINISHED, FAILED, CANCELED, RESTARTING, SUSPENDED,
//     INITIALIZING, RECONCILING (scheduler.JobState's String gives them);
//     ExecState one of CREATED, SCHEDULED, DEPLOYING, INITIALIZING, RUNNING,
//     FINISHED, CANCELING, CANCELED, FAILED, RECONCILING.
//   - Returned values are owned by the caller (the handlers do not mutate
//     them, but an implementation must not hand out slices it mutates later
//     without a lock).
type Cluster interface {
	// Jobs lists every job the cluster knows, running or ended, in the
	// order they were submitted.
	Jobs(ctx context.Context) ([]JobSummary, error)
	// Job returns one job with its vertices and their subtasks.
	Job(ctx context.Context, jobID string) (Job, error)
	// Exceptions returns the job's failures, newest first.
	Exceptions(ctx context.Context, jobID string) ([]Exception, error)
	// JobConfig returns the job's execution configuration.
	JobConfig(ctx context.Context, jobID string) (JobConfig, error)
	// Checkpoints returns the job's checkpoint statistics.
	Checkpoints(ctx context.Context, jobID string) (CheckpointStats, error)
	// CheckpointConfig returns the job's checkpointing configuration; a job
	// without checkpointing is ErrNotFound (as in Flink).
	CheckpointConfig(ctx context.Context, jobID string) (CheckpointConfig, error)
	// CancelJob asks the job to cancel and returns once the request is
	// accepted (not when the job has ended). A job that has already ended
	// is ErrConflict.
	CancelJob(ctx context.Context, jobID string) error
	// Savepoint takes a savepoint of a running job and, by req, stops or
	// cancels it afterwards. It blocks until the savepoint is complete or
	// failed and returns its location (a URL). The handlers run it in the
	// background with the Server's context, not the request's: the HTTP
	// request that triggered it returns at once with a trigger id.
	Savepoint(ctx context.Context, jobID string, req SavepointRequest) (location string, err error)
	// Checkpoint takes a checkpoint of a running job now (Flink 1.17's
	// POST /jobs/:jobid/checkpoints), blocking until it is complete or
	// failed, and returns its id; run in the background like Savepoint.
	Checkpoint(ctx context.Context, jobID string) (id int64, err error)
	// DisposeSavepoint deletes the savepoint at path, blocking until done
	// (run in the background like Savepoint).
	DisposeSavepoint(ctx context.Context, path string) error

	// TaskManagers lists the registered TaskManagers.
	TaskManagers(ctx context.Context) ([]TaskManager, error)

	// UploadBinary stores a job binary read from r under a new id. r ends
	// with an error when the upload is cut short or exceeds the server's
	// size limit; the implementation must then return an error wrapping
	// it and keep nothing of the upload.
	UploadBinary(ctx context.Context, name string, r io.Reader) (Binary, error)
	// Binaries lists the stored job binaries, oldest first.
	Binaries(ctx context.Context) ([]Binary, error)
	// DeleteBinary removes a stored job binary.
	DeleteBinary(ctx context.Context, id string) error
	// BinaryPlan builds the plan of the job a binary would submit with
	// opts, without running it.
	BinaryPlan(ctx context.Context, id string, opts RunOptions) (Plan, error)
	// RunBinary submits the job of a binary and returns its job id.
	RunBinary(ctx context.Context, id string, opts RunOptions) (jobID string, err error)
	// SubmitJob submits a job its client has built: the JobGraph and the
	// stored binary (UploadBinary, just before) whose main rebuilds it
	// with opts.Args in every process that runs its tasks (POST /jobs, how
	// a job binary started with --cluster submits itself). The handlers
	// delete the binary again if SubmitJob fails.
	SubmitJob(ctx context.Context, sub Submission) (jobID string, err error)
}

// Submission is a job sent with POST /jobs.
type Submission struct {
	// BinaryID is the job's binary in the store.
	BinaryID string
	JobGraph *jobgraph.JobGraph
	// Options: Args, JobID, SavepointPath, AllowNonRestoredState and
	// RestoreMode (Strom's extensions of JobSubmitRequestBody; Flink
	// carries them inside its serialised JobGraph).
	Options RunOptions
}

// Errors a Cluster wraps to choose the HTTP status of its failure.
var (
	ErrNotFound = errors.New("not found")     // 404
	ErrConflict = errors.New("conflict")      // 409
	ErrInvalid  = errors.New("invalid input") // 400
)

// JobState is a job's state by Flink's name (JobStatus in the spec).
type JobState string

// ExecState is a subtask's state by Flink's name (ExecutionState).
type ExecState string

// execStates are Flink's ExecutionState values in their ordinal order, which
// JobDetails.tasksPerState indexes.
var execStates = []ExecState{"CREATED", "SCHEDULED", "DEPLOYING", "RUNNING", "FINISHED", "CANCELING", "CANCELED", "FAILED", "RECONCILING", "INITIALIZING"}

// JobSummary is one job in the job lists.
type JobSummary struct {
	ID    string
	Name  string
	State JobState
	// Start is when the job was submitted; End when it ended (zero while
	// it runs); LastModified when its state last changed.
	Start, End, LastModified time.Time
	// Tasks counts the job's subtasks by state.
	Tasks map[ExecState]int
}

// Job is one job in detail.
type Job struct {
	JobSummary
	MaxParallelism int
	// Stoppable: the job can be stopped with a savepoint.
	Stoppable bool
	// Timestamps says when the job entered each state it has been in.
	Timestamps map[JobState]time.Time
	Vertices   []Vertex
	Plan       Plan
	// Operators are the job's records in and out per operator (summed
	// over subtasks), which a vertex's metrics cannot show for the
	// operators inside a chain. The execution result carries them as
	// accumulators (numRecordsIn.NAME, numRecordsOut.NAME): how a job
	// binary that submitted itself learns what its sinks took.
	Operators []OperatorCount
	// Restarts is how many times the job restarted (Flink's numRestarts
	// metric); the execution result carries it as the accumulator
	// numRestarts.
	Restarts int
}

// OperatorCount is one operator's record counts.
type OperatorCount struct {
	Name                  string
	RecordsIn, RecordsOut int64
}

// Vertex is a job vertex (a chain of operators run as one task per subtask).
type Vertex struct {
	// ID is 32 hex digits (VertexID makes one from a JobGraph vertex id).
	ID             string
	Name           string
	Parallelism    int
	MaxParallelism int
	Subtasks       []Subtask
}

// NoWatermark is the watermark of a subtask that has received none (Flink's
// Long.MIN_VALUE).
const NoWatermark int64 = -1 << 63

// Subtask is one execution of a vertex.
type Subtask struct {
	Index, Attempt int
	State          ExecState
	// Host and TaskManagerID say where it runs (empty: not deployed).
	Host, TaskManagerID string
	Start, End          time.Time
	RecordsIn           int64
	RecordsOut          int64
	BytesIn             int64
	BytesOut            int64
	// Busy, Idle and BackPressured are the milliseconds per second the
	// task spent processing, waiting for input and waiting for output
	// buffers over the last measurement interval (they add up to about
	// 1000 for a running task).
	BusyMsPerSecond, IdleMsPerSecond, BackPressuredMsPerSecond float64
	// Watermark is the subtask's current input watermark (event time, ms);
	// NoWatermark when none arrived yet.
	Watermark int64
}

// Exception is a failure of a job, or of one of its tasks.
type Exception struct {
	// Name is the error's kind (Flink: the exception class), Message its
	// text with any stack trace.
	Name, Message string
	Time          time.Time
	// TaskName and Location say which subtask failed and where it ran
	// (empty for a failure of the job as a whole).
	TaskName, Location string
	// Concurrent are failures that happened with this one (same restart).
	Concurrent []Exception
}

// JobConfig is a job's execution configuration.
type JobConfig struct {
	ExecutionMode   string // "PIPELINED"
	RestartStrategy string // human-readable, as Flink prints it
	Parallelism     int
	ObjectReuse     bool
	UserConfig      map[string]string
}

// CheckpointConfig is a job's checkpointing configuration.
type CheckpointConfig struct {
	ExactlyOnce                  bool
	Interval, Timeout, MinPause  time.Duration
	MaxConcurrent                int
	Externalized                 bool
	DeleteOnCancellation         bool
	StateBackend                 string
	CheckpointStorage            string
	Unaligned                    bool
	TolerableFailed              int
	AlignedTimeout               time.Duration
	CheckpointsAfterTasksFinish  bool
	ChangelogMaterialization     time.Duration
	ChangelogStorage             string
	SavepointDirectoryConfigured bool
}

// CheckpointStatus is IN_PROGRESS, COMPLETED or FAILED.
type CheckpointStatus string

// Checkpoint states.
const (
	CheckpointInProgress CheckpointStatus = "IN_PROGRESS"
	CheckpointCompleted  CheckpointStatus = "COMPLETED"
	CheckpointFailed     CheckpointStatus = "FAILED"
)

// CheckpointStats are a job's checkpoint statistics.
type CheckpointStats struct {
	// Counts since the job started.
	Restored, Total, InProgress, Completed, Failed int
	// History holds the most recent checkpoints, newest first.
	History []Checkpoint
	// Latest of each kind (nil: none).
	LatestCompleted, LatestSavepoint, LatestFailed *Checkpoint
	LatestRestored                                 *RestoredCheckpoint
}

// Checkpoint is one checkpoint or savepoint.
type Checkpoint struct {
	ID     int64
	Status CheckpointStatus
	// Savepoint: a user-triggered savepoint (Sync: stop-with-savepoint).
	Savepoint, Sync bool
	Triggered       time.Time
	LatestAck       time.Time
	// Size is the bytes written for this checkpoint, StateSize the bytes
	// of state it covers (equal without incremental checkpoints).
	Size, StateSize int64
	// Duration is trigger to completion (or to now, in progress).
	Duration time.Duration
	// SyncDuration and AsyncDuration are the longest synchronous and
	// asynchronous parts a task took; Alignment the longest alignment.
	SyncDuration, AsyncDuration, Alignment time.Duration
	ProcessedData, PersistedData           int64
	NumSubtasks, NumAcknowledged           int
	// ExternalPath is where a completed checkpoint's metadata is.
	ExternalPath string
	Discarded    bool
	// FailureTime and FailureMessage are set for a failed checkpoint.
	FailureTime    time.Time
	FailureMessage string
	// Tasks are the per-vertex numbers, by vertex id.
	Tasks map[string]TaskCheckpoint
}

// TaskCheckpoint is one vertex's part of a checkpoint.
type TaskCheckpoint struct {
	Status                       CheckpointStatus
	LatestAck                    time.Time
	Size, StateSize              int64
	Duration                     time.Duration
	NumSubtasks, NumAcknowledged int
}

// RestoredCheckpoint is the checkpoint a job last restored from.
type RestoredCheckpoint struct {
	ID        int64
	Time      time.Time
	Savepoint bool
	Path      string
}

// SavepointRequest is what POST /jobs/:jobid/savepoints and
// POST /jobs/:jobid/stop ask for.
type SavepointRequest struct {
	// TargetDirectory is where the savepoint goes; empty: the cluster's
	// default savepoint directory (its absence is ErrInvalid).
	TargetDirectory string
	// Cancel cancels the job once the savepoint is taken (the deprecated
	// "cancel-job" of the savepoints endpoint).
	Cancel bool
	// Stop makes it a stop-with-savepoint; Drain advances event time to
	// the end first, firing all timers.
	Stop, Drain bool
	// Format is CANONICAL (default) or NATIVE.
	Format string
}

// TaskManager is one registered TaskManager.
type TaskManager struct {
	// ID is 32 hex digits; Path is its address.
	ID, Path        string
	DataPort        int
	LastHeartbeat   time.Time
	Slots           int
	FreeSlots       int
	CPUCores        int
	PhysicalMemory  int64
	FreeMemory      int64
	HeapUsed        int64 // Go heap in use (runtime.MemStats.HeapAlloc)
	HeapCommitted   int64 // Go heap obtained from the OS (HeapSys)
	HeapMax         int64 // the memory limit (GOMEMLIMIT), -1: none
	AllocatedSlots  []string
	NetworkSegments int64
}

// Binary is a stored job binary (a "jar" in Flink's paths).
type Binary struct {
	// ID names it in /jars/:jarid; Path is where it is stored and ends
	// with ID (Flink clients take the upload's last path element as id).
	ID, Name, Path string
	Uploaded       time.Time
	// Entry lists the binary's entry points (name, description); a Go
	// job binary has one, its main.
	Entry []Entry
}

// Entry is an entry point of a binary.
type Entry struct{ Name, Description string }

// RunOptions are the options of /jars/:jarid/run and /jars/:jarid/plan.
type RunOptions struct {
	// Args are the program's arguments.
	Args []string
	// Parallelism is the job's default parallelism; 0: the binary's own.
	Parallelism int
	// JobID, when set, is the id the job gets (32 hex digits).
	JobID string
	// SavepointPath restores the job from a savepoint;
	// AllowNonRestoredState lets state of removed operators be skipped.
	SavepointPath         string
	AllowNonRestoredState bool
	// RestoreMode is CLAIM, NO_CLAIM or LEGACY (empty: the default).
	RestoreMode string
	// EntryClass is Flink's entry class; a Go binary has one entry, so it
	// is passed on for the cluster to refuse or ignore.
	EntryClass string
}
