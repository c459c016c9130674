// Package jobcode holds the code of the jobs this process can run, by job
// id: the StreamGraph whose nodes build the operators, the JobGraph and the
// job's runtime settings. A TaskManager told to deploy (job id, execution,
// slot) looks the job up here; the submitting side registers it. In the
// distributed runtime this is the job binary a TaskManager starts; in one
// process it is this registry, so no message between roles carries code.
package jobcode

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// Job is a job as this process has it: the serialisable JobGraph and the
// StreamGraph whose nodes hold the operator code.
type Job struct {
	ID       string
	Name     string
	Graph    *streamgraph.StreamGraph
	JobGraph *jobgraph.JobGraph
	Config   Config
}

// Config are the runtime settings of a job.
type Config struct {
	// BuffersPerChannel is the number of batch buffers (credits) of each
	// logical channel.
	BuffersPerChannel int
	// BatchSize is the number of records per batch.
	BatchSize int
	Clock     runtime.Clock
	Logger    *slog.Logger
	// Restore is the state the job starts from (nil: empty); see
	// runtime.JobRestore.
	Restore runtime.JobRestore
	// Restart is the job's restart strategy; the zero value is none (see
	// scheduler.DefaultRestartStrategy for the defaults with and without
	// checkpointing).
	Restart scheduler.RestartStrategy
	// Checkpoint enables periodic checkpoints (nil: none). The JobMaster
	// runs the coordinator with it; TaskManagers upload task state to its
	// storage and read restores from there.
	Checkpoint *Checkpointing
	// Resume, if set, is the savepoint the job starts from (Flink's
	// SavepointRestoreSettings); the JobMaster loads and checks it.
	Resume *Resume
	// OnTask, if set, is called with every task built, before it runs:
	// the seam tests use to snapshot running tasks without checkpoints.
	OnTask func(*runtime.Task)
	// CancellationTimeout is how long a cancelled task may take to end
	// before its TaskManager abandons it (0: DefaultCancellationTimeout).
	CancellationTimeout time.Duration
}

// DefaultCancellationTimeout is the default Config.CancellationTimeout.
// Flink's task.cancellation.timeout is 180 s and then kills the whole
// TaskManager process; an abandoned task here costs only its goroutine,
// so the job may recover sooner.
const DefaultCancellationTimeout = 30 * time.Second

// Checkpointing are a job's checkpoint settings.
type Checkpointing struct {
	checkpoint.Config
	// Storage is the URL of checkpoint storage (see blob.Open): file://dir,
	// mem://name (one process), or a bucket.
	Storage string
	// AlignedTimeout, in the exactly-once (aligned) mode, switches a
	// checkpoint to unaligned in a task whose barrier alignment takes
	// longer (0: never); see network.BarrierOptions.AlignedTimeout.
	AlignedTimeout time.Duration
	// Retained is how many completed checkpoints are kept (default 1).
	// Recovery falls back to an older one only if the newer one's
	// metadata cannot be read and it was never notified as complete.
	Retained int
	// Incremental makes checkpoints write keyed state as incremental
	// chains (runtime/keyed_chain.go).
	Incremental bool
}

// Resume names the savepoint a job starts from.
type Resume struct {
	// Path is the savepoint's directory (a blob URL or an OS path) or its
	// _metadata file.
	Path string
	// AllowNonRestoredState drops the savepoint's state of operators the
	// job no longer has (matched by UID) instead of refusing to start.
	AllowNonRestoredState bool
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.BuffersPerChannel <= 0 {
		c.BuffersPerChannel = network.DefaultBuffersPerChannel
	}
	if c.BatchSize <= 0 {
		c.BatchSize = network.DefaultBatchSize
	}
	if c.Clock == nil {
		c.Clock = runtime.WallClock
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CancellationTimeout <= 0 {
		c.CancellationTimeout = DefaultCancellationTimeout
	}
	return c
}

// Registry maps job ids to the jobs' code. It is safe for concurrent use.
type Registry struct {
	mu   sync.Mutex
	jobs map[string]*Job
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{jobs: map[string]*Job{}} }

// Register adds a job; its id must be new.
func (r *Registry) Register(job *Job) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.jobs[job.ID]; ok {
		return fmt.Errorf("job %s already submitted", job.ID)
	}
	r.jobs[job.ID] = job
	return nil
}

// Lookup returns the job's code.
func (r *Registry) Lookup(id string) (*Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	job, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("no code for job %s in this process", id)
	}
	return job, nil
}

// Remove forgets a job that has ended.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, id)
}
