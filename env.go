// Package strom is a distributed, stateful stream processor with a typed
// DataStream API, built on Apache Flink's architecture.
//
// A program creates an Environment, builds a graph of streams from sources
// through transformations to sinks, and calls Execute:
//
//	env := strom.NewEnvironment(strom.Config{Parallelism: 2})
//	words := strom.FromSlice(env, []string{"a", "b", "a"})
//	counts := strom.Reduce(
//		strom.KeyBy(strom.Map(words, func(w string) Count { return Count{w, 1} }),
//			func(c Count) string { return c.Word }),
//		func(a, b Count) Count { return Count{a.Word, a.N + b.N} })
//	out := strom.Collect(counts)
//	_, err := env.Execute(ctx, "word count")
//
// Transformations that change the record type are functions (Go methods
// cannot take type parameters); those that configure an operator are methods.
// Each operator runs as parallel subtasks inside the embedded cluster's
// TaskManagers; operators connected one-to-one are chained into one task and
// call each other directly.
//
// # Functions and their names
//
// Plain functions (Map, Filter, FlatMap, KeyBy's key selector, Reduce, the
// window reducers and aggregators, join functions) cannot fail: a panic in
// one fails the job. TryMap, TryFilter and TryFlatMap take functions that
// return an error. Everything that does I/O or keeps state returns an error:
// process functions, window process functions, interval joins, sink writers
// and source readers. An error (or panic) fails the job with a *TaskError
// naming the job, operator, subtask and attempt, which wraps the cause
// (errors.Is finds the function's own error).
//
// Process functions come in one family, named after Flink's: Process runs a
// ProcessFunction on a stream (ProcessContext), KeyedProcess a
// KeyedProcessFunction on a keyed stream (KeyedContext: keyed state through
// package state, timers), KeyedCoProcess a KeyedCoProcessFunction on two
// connected keyed streams. ProcessFunc and KeyedProcessFunc run a plain
// function instead; ProcessElementFunc and KeyedProcessElementFunc adapt a
// function to the interface. The newFn argument is called once per
// subtask, so a function may keep per-subtask fields. Optional interfaces
// add life-cycle hooks: ProcessOpener/KeyedOpener, TimerHandler,
// WatermarkHandler, Finisher, Closer. They are found by type assertion, so
// a method with a mistyped signature is silently not called: assert them at
// compile time,
//
//	var _ strom.TimerHandler[string, Alert] = (*detector)(nil)
//
// # Cancellation
//
// The context given to Execute or ExecuteAsync bounds the job. Each
// subtask's context (ProcessContext.Context, KeyedContext.Context,
// SourceContext.Context, SinkContext.Context) is cancelled when the job is
// cancelled or fails: pass it to blocking calls in user code.
//
// # Where a job runs
//
// The job binary is the unit of deployment. By default Execute runs the
// job in an embedded cluster in this process. With Config.Cluster (or
// $STROM_CLUSTER) naming a session cluster's REST address, it submits
// this executable and the job's graph there (submit.go). In application
// mode the binary runs a cluster dedicated to its own job: when it starts
// as "myjob jobmanager [flags] [-- program args]" or "myjob taskmanager
// --jobmanager HOST:PORT [flags] [-- program args]", package strom takes
// the role word and its flags out of os.Args before main runs, so main
// parses only the program's arguments and builds its graph as usual;
// Execute then plays the role — the JobManager submits the job to itself
// and returns its result when it ends, the TaskManager serves slots until
// SIGTERM and ends the process (application.go has the details). The
// processes of the job's TaskManagers run main with the program's
// arguments in job-worker mode.
package strom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/strom-dev/strom/internal/chaos"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobworker"
	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/minicluster"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// Config is the configuration of an Environment. Zero values take defaults.
type Config struct {
	// Parallelism is the default parallelism of operators (default 1).
	Parallelism int
	// MaxParallelism is the number of key groups (default 128). It bounds
	// the parallelism keyed operators can ever be rescaled to.
	MaxParallelism int
	// TaskManagers and SlotsPerTaskManager size the embedded cluster. By
	// default one TaskManager with as many slots as the job needs.
	TaskManagers        int
	SlotsPerTaskManager int
	// LoopbackNetwork runs the embedded cluster as if the JobManager and
	// each TaskManager were processes of their own: every message between
	// the roles crosses the network transport (protobuf over HTTP/2) and
	// every channel between tasks of different TaskManagers crosses the
	// TCP data plane (records encoded with their codecs), all on loopback.
	// For measuring what the distributed runtime costs, and testing it, in
	// one process; errors of user code then keep their text only, as
	// between real processes.
	LoopbackNetwork bool
	// BatchSize is the number of records per network buffer (default 512).
	BatchSize int
	// BuffersPerChannel is the number of buffers (credits) per logical
	// channel (default 4): with BatchSize it bounds memory in flight.
	BuffersPerChannel int
	// AutoWatermarkInterval is how often periodic watermark generators emit
	// (default 200ms, as in Flink).
	AutoWatermarkInterval time.Duration
	// DisableChaining runs every operator in its own task.
	DisableChaining bool
	// Logger receives the runtime's structured logs (default slog.Default()).
	Logger *slog.Logger
	// Cluster is the REST address of a Strom cluster (its JobManager,
	// http://host:8081) to submit the job to (default: the STROM_CLUSTER
	// environment variable; empty: run it in an embedded cluster in this
	// process). The program submits itself: its executable, its arguments
	// and its JobGraph (submit.go). Strom parses no flag of the program's:
	// a program that wants "--cluster URL" copies its flag here.
	Cluster string

	// CheckpointInterval turns on periodic checkpoints (0: off). A job
	// with checkpoints restarts after a failure (see RestartStrategy) from
	// the latest completed checkpoint: keyed and operator state and the
	// sources' read positions as of that checkpoint.
	CheckpointInterval time.Duration
	// CheckpointDir is the URL of checkpoint storage: file:///dir, or
	// mem://name for storage that lives as long as the process (tests).
	// Default DefaultCheckpointDir(). Each job writes below <job id>/.
	CheckpointDir string
	// CheckpointMode: CheckpointExactlyOnce (default),
	// CheckpointAtLeastOnce or CheckpointUnaligned.
	CheckpointMode CheckpointMode
	// AlignedCheckpointTimeout (Flink's
	// execution.checkpointing.aligned-checkpoint-timeout), with
	// CheckpointExactlyOnce: a task whose barrier alignment takes longer
	// takes that checkpoint unaligned instead (see CheckpointUnaligned).
	// 0: checkpoints always align.
	AlignedCheckpointTimeout time.Duration
	// CheckpointTimeout aborts a checkpoint not complete after this long
	// (default DefaultCheckpointTimeout, 10 min).
	CheckpointTimeout time.Duration
	// MinPauseBetweenCheckpoints is the least time from the end of one
	// checkpoint to the start of the next (default 0).
	MinPauseBetweenCheckpoints time.Duration
	// MaxConcurrentCheckpoints bounds the checkpoints in progress at once
	// (default 1).
	MaxConcurrentCheckpoints int
	// TolerableCheckpointFailures is how many checkpoints in a row may
	// fail (declined, expired) before the job is failed (default 0, as in
	// Flink); failures caused by the job failing do not count.
	TolerableCheckpointFailures int
	// RetainedCheckpoints is how many completed checkpoints are kept
	// (default 1). Recovery falls back to an older one only when the
	// newest cannot be read and was never announced complete to the
	// tasks.
	RetainedCheckpoints int
	// FullCheckpoints makes every checkpoint write the whole keyed state.
	// By default checkpoints are incremental: each writes the keys that
	// changed since the last one, and a full copy only when those changes
	// add up to more than the last full copy (savepoints are always
	// whole and self-contained).
	FullCheckpoints bool
	// RestartStrategy says whether and when the job restarts after a
	// failure; the zero value is the default (none without checkpoints,
	// ExponentialDelayRestart with them).
	RestartStrategy RestartStrategy

	// SavepointDir is where JobClient.TriggerSavepoint puts a savepoint
	// when given no directory: a blob URL (file:///dir, s3://bucket/prefix,
	// mem://name) or an OS path. Each savepoint is a new directory below
	// it. No default: with neither set, a savepoint request fails.
	SavepointDir string
	// FromSavepoint starts the job from a savepoint: its directory (the
	// path TriggerSavepoint returned, or the directory as an OS path) or
	// its _metadata file. State is matched to operators by UID (see
	// UID); the parallelism may differ from the savepoint's, the
	// MaxParallelism of a keyed operator may not. The job fails to start,
	// with an error saying why, if the savepoint is missing, corrupt, or
	// holds state the job cannot take. See savepoint.go.
	FromSavepoint string
	// AllowNonRestoredState lets a job start from a savepoint holding
	// state of operators the job no longer has (by UID): that state is
	// dropped (and logged) instead of refusing the start.
	AllowNonRestoredState bool
	// TaskCancellationTimeout is how long a cancelled task (the job is
	// cancelled, or restarting after a failure) may take to end. User code
	// that ignores cancellation — a blocking call without a context, a
	// busy loop — is then abandoned: reported cancelled so the job can
	// restart, and fenced, so it can commit nothing (no checkpoint
	// notification reaches it any more); its goroutine leaks until the
	// user code returns, and an error is logged. Default 30 s (Flink's
	// task.cancellation.timeout is 180 s, after which it kills the
	// TaskManager process).
	TaskCancellationTimeout time.Duration
}

// validate rejects settings that EnsureDefaults would otherwise silently
// replace: zero means "the default", a negative value is a mistake.
func (c Config) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Parallelism", c.Parallelism},
		{"MaxParallelism", c.MaxParallelism},
		{"TaskManagers", c.TaskManagers},
		{"SlotsPerTaskManager", c.SlotsPerTaskManager},
		{"BatchSize", c.BatchSize},
		{"BuffersPerChannel", c.BuffersPerChannel},
	} {
		if f.v < 0 {
			return fmt.Errorf("config: %s %d must not be negative (0 means the default)", f.name, f.v)
		}
	}
	if c.TaskCancellationTimeout < 0 {
		return fmt.Errorf("config: TaskCancellationTimeout %v must not be negative (0 means the default)", c.TaskCancellationTimeout)
	}
	if c.AutoWatermarkInterval < 0 {
		return fmt.Errorf("config: AutoWatermarkInterval %v must not be negative (0 means the default)", c.AutoWatermarkInterval)
	}
	if c.AutoWatermarkInterval%time.Millisecond != 0 {
		return fmt.Errorf("config: AutoWatermarkInterval %v is not a whole number of milliseconds", c.AutoWatermarkInterval)
	}
	return c.validateCheckpointing()
}

// EnsureDefaults returns c with every unset (zero) field given its default:
// the one place the defaults of a job's settings live (as Pebble's
// Options.EnsureDefaults). Environment.Config returns the result.
func (c Config) EnsureDefaults() Config {
	if c.Parallelism <= 0 {
		c.Parallelism = 1
	}
	if c.MaxParallelism <= 0 {
		c.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if c.BatchSize <= 0 {
		c.BatchSize = network.DefaultBatchSize
	}
	if c.BuffersPerChannel <= 0 {
		c.BuffersPerChannel = network.DefaultBuffersPerChannel
	}
	if c.Cluster == "" {
		c.Cluster = os.Getenv(ClusterEnv)
	}
	if c.AutoWatermarkInterval <= 0 {
		c.AutoWatermarkInterval = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.ensureCheckpointDefaults()
	return c
}

// ClusterEnv is the environment variable that names the cluster a job is
// submitted to when Config.Cluster is empty.
const ClusterEnv = "STROM_CLUSTER"

// workerEnv is set by a TaskManager in the job-worker processes it starts
// (the distributed runtime; DESIGN.md, "The job binary").
const workerEnv = jobworker.Env

// ErrNotYetSupported is wrapped by the error of a request for something
// Strom does not do yet (such as submitting to a cluster), so it fails
// clearly instead of silently doing something else.
var ErrNotYetSupported = errors.New("not yet supported")

// runMode is how Execute runs a job: the seam where the distributed runtime
// plugs in. The job binary is the unit of deployment (DESIGN.md): the same
// program runs embedded, submits itself to a cluster, or serves as a
// TaskManager's worker for its job.
type runMode int

const (
	runEmbedded    runMode = iota // an embedded cluster in this process
	runSubmit                     // submit the binary and its JobGraph to Config.Cluster
	runWorker                     // run tasks for a TaskManager that started this process
	runPlan                       // print the JobGraph and exit (PrintPlanEnv)
	runJobManager                 // application mode: a JobManager for this job (application.go)
	runTaskManager                // application mode: a TaskManager (application.go)
)

func (c Config) runMode() runMode {
	switch {
	case os.Getenv(PrintPlanEnv) == "1":
		return runPlan
	case os.Getenv(workerEnv) != "":
		return runWorker
	case appRoleIs(roleJobManager):
		return runJobManager
	case appRoleIs(roleTaskManager):
		return runTaskManager
	case c.Cluster != "":
		return runSubmit
	}
	return runEmbedded
}

// Environment builds and runs a job.
type Environment struct {
	cfg   Config
	graph *streamgraph.StreamGraph
	err   error
	// seam is set by tests of the state seam (state_seam_test.go).
	seam stateSeam
}

// NewEnvironment returns an environment with the given configuration.
func NewEnvironment(cfg ...Config) *Environment {
	var c Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	return &Environment{cfg: c, graph: &streamgraph.StreamGraph{}}
}

// SetParallelism sets the default parallelism of operators (0: the
// default, 1; a negative value makes Execute fail).
func (e *Environment) SetParallelism(p int) *Environment {
	e.cfg.Parallelism = p
	return e
}

// SetMaxParallelism sets the number of key groups.
func (e *Environment) SetMaxParallelism(m int) *Environment {
	e.cfg.MaxParallelism = m
	return e
}

// Parallelism is the default parallelism.
func (e *Environment) Parallelism() int { return e.cfg.EnsureDefaults().Parallelism }

// Config returns the environment's configuration (with defaults applied).
func (e *Environment) Config() Config { return e.cfg.EnsureDefaults() }

// Configure changes the configuration.
func (e *Environment) Configure(fn func(*Config)) *Environment {
	fn(&e.cfg)
	return e
}

// fail records a graph-construction error; Execute reports the first.
func (e *Environment) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// OperatorResult is an operator's record counts summed over its subtasks.
type OperatorResult struct {
	Name        string
	UID         string
	Parallelism int
	RecordsIn   int64
	RecordsOut  int64
	// BackpressureWaits counts how often the operator's output waited for a
	// free buffer: non-zero means a downstream operator was the bottleneck.
	BackpressureWaits int64
}

// JobResult is what Execute returns.
type JobResult struct {
	JobID     string
	JobName   string
	Duration  time.Duration
	Operators []OperatorResult
	// Restarts counts the job's restarts after failures.
	Restarts int
	// CheckpointsCompleted counts the checkpoints that completed;
	// RestoredCheckpoint is the id of the checkpoint the job last
	// restarted from (0: none).
	CheckpointsCompleted int
	RestoredCheckpoint   int64
	// RestoredFrom is what the job last restored from: the savepoint
	// (its directory's URL) it resumed from, or "checkpoint <id>" after a
	// restart from one of its own checkpoints; "" when it never restored.
	RestoredFrom string
	// LastCheckpointDuration is how long the last completed checkpoint
	// took, from its trigger until its metadata was written (it is
	// complete then); 0 if none completed.
	LastCheckpointDuration time.Duration
	// LastCheckpointSize is how many bytes of state the last completed
	// checkpoint wrote; LastCheckpointSyncPause is the longest a task
	// stopped processing for it (the synchronous part of its snapshot:
	// pre-barrier hooks and state encoded into memory; the upload runs
	// while processing goes on).
	LastCheckpointSize      int64
	LastCheckpointSyncPause time.Duration
}

// Operator returns the counts of the first operator named name.
func (r *JobResult) Operator(name string) (OperatorResult, bool) {
	for _, o := range r.Operators {
		if o.Name == name {
			return o, true
		}
	}
	return OperatorResult{}, false
}

// ErrJobFailed is wrapped by the error Execute returns when the job failed.
var ErrJobFailed = errors.New("job failed")

// ErrJobCanceled is wrapped by the error Execute returns when the job was
// cancelled (for example because ctx ended).
var ErrJobCanceled = errors.New("job canceled")

// Execute runs the job built on this environment in an embedded cluster and
// blocks until it finishes (bounded inputs), fails, or ctx ends — which
// cancels the job. The environment's graph is consumed: a new pipeline can
// be built for the next Execute.
//
// A failed job's error wraps ErrJobFailed and a *TaskError naming the
// failing operator and subtask, which wraps the cause (the error a user
// function returned, or the panic); a cancelled job's wraps ErrJobCanceled
// and, when ctx ended, ctx's error.
func (e *Environment) Execute(ctx context.Context, jobName string) (*JobResult, error) {
	jc, err := e.ExecuteAsync(ctx, jobName)
	if err != nil {
		return nil, err
	}
	defer jc.Close()
	return jc.Wait(context.Background())
}

// JobClient controls a job started with ExecuteAsync.
type JobClient struct {
	// remote is set when the job was submitted to a cluster (submit.go):
	// then every method works over REST and the fields below are unset.
	remote *remoteJob
	// release, if set, runs after a remote job's client closed: in
	// application mode it stops the JobManager this process runs.
	release func()
	mc      *minicluster.MiniCluster
	h       *minicluster.JobHandle
	name    string
	ctx     context.Context
	stop    func() bool
	closed  bool
	// savepointDir is Config.SavepointDir, TriggerSavepoint's default.
	savepointDir string
}

// ExecuteAsync starts the job in a new embedded cluster and returns at once.
// The job runs until it ends by itself, Cancel is called, or ctx ends
// (which cancels it). Close the client to stop the cluster.
func (e *Environment) ExecuteAsync(ctx context.Context, jobName string) (*JobClient, error) {
	if e.err != nil {
		return nil, fmt.Errorf("strom: building job %q: %w", jobName, e.err)
	}
	if err := e.cfg.validate(); err != nil {
		return nil, fmt.Errorf("strom: job %q: %w", jobName, err)
	}
	cfg := e.cfg.EnsureDefaults()
	if err := keygroup.Validate(cfg.Parallelism, cfg.MaxParallelism); err != nil {
		return nil, fmt.Errorf("strom: job %q: %w", jobName, err)
	}
	mode := cfg.runMode()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("strom: job %q: %w: %w", jobName, ErrJobCanceled, context.Cause(ctx))
	}
	g := e.graph
	e.graph = &streamgraph.StreamGraph{}
	jg, err := streamgraph.BuildJobGraph(g, streamgraph.Options{
		JobName:            jobName,
		DefaultParallelism: cfg.Parallelism,
		MaxParallelism:     cfg.MaxParallelism,
		DisableChaining:    cfg.DisableChaining,
	})
	if err != nil {
		return nil, fmt.Errorf("strom: job %q: %w", jobName, err)
	}
	jcfg := minicluster.JobConfig{
		BuffersPerChannel: cfg.BuffersPerChannel,
		BatchSize:         cfg.BatchSize,
		Logger:            cfg.Logger,
		Restore:           e.seam.restore,
		Checkpoint:        cfg.checkpointing(),
		Resume:            cfg.resume(),
		Restart:           cfg.RestartStrategy.strategy(cfg.CheckpointInterval > 0),
		OnTask:            taskHooks(e.seam.onTask, chaos.TaskHook(ctx)),
		// Zero is the default, resolved by jobcode.
		CancellationTimeout: cfg.TaskCancellationTimeout,
	}
	if mode == runPlan || mode == runSubmit || mode == runJobManager {
		// A JobManager in another process runs the job without its
		// code: the checkpoint and restart settings go with the graph.
		if jg.Settings, err = jobcode.Settings(jcfg); err != nil {
			return nil, fmt.Errorf("strom: job %q: %w", jobName, err)
		}
	}
	switch mode {
	case runPlan:
		return nil, printPlan(jobName, jg)
	case runSubmit:
		return submit(ctx, jobName, cfg, jg)
	case runWorker:
		return nil, serveWorker(ctx, &jobcode.Job{Name: jobName, Graph: g, JobGraph: jg, Config: jcfg})
	case runJobManager:
		return runApplicationJobManager(ctx, jobName, cfg, jg, appRoleArgs())
	case runTaskManager:
		return nil, runApplicationTaskManager(ctx, jobName, cfg, appRoleArgs())
	}
	tms, slots := cfg.TaskManagers, cfg.SlotsPerTaskManager
	if tms <= 0 {
		tms = 1
	}
	if slots <= 0 {
		slots = (jg.SlotsNeeded() + tms - 1) / tms
	}
	mcfg := minicluster.Config{TaskManagers: tms, SlotsPerManager: slots, DropMessage: e.seam.dropMessage, DataPlane: cfg.LoopbackNetwork, NetworkRPC: cfg.LoopbackNetwork}
	if e.seam.cluster != nil {
		e.seam.cluster(&mcfg)
	}
	mc, err := minicluster.Start(mcfg)
	if err != nil {
		return nil, fmt.Errorf("strom: starting embedded cluster: %w", err)
	}
	h, err := mc.Submit(&minicluster.Job{
		Name:     jobName,
		Graph:    g,
		JobGraph: jg,
		Config:   jcfg,
	})
	if err != nil {
		mc.Close()
		return nil, fmt.Errorf("strom: submitting job %q: %w", jobName, err)
	}
	stop := context.AfterFunc(ctx, h.Cancel)
	return &JobClient{mc: mc, h: h, name: jobName, ctx: ctx, stop: stop, savepointDir: cfg.SavepointDir}, nil
}

// taskHooks calls every non-nil hook with each task built: the state
// seam's (tests of package strom) and a chaos injector's, which arrives in
// Execute's context so that fault injection needs no public API
// (internal/chaos, used by strom nexmark --fail-every).
func taskHooks(hooks ...func(*runtime.Task)) func(*runtime.Task) {
	hooks = slices.DeleteFunc(hooks, func(h func(*runtime.Task)) bool { return h == nil })
	if len(hooks) == 0 {
		return nil
	}
	return func(t *runtime.Task) {
		for _, h := range hooks {
			h(t)
		}
	}
}

// JobID is the job's id.
func (c *JobClient) JobID() string {
	if c.remote != nil {
		return c.remote.id
	}
	return c.h.ID()
}

// Cancel asks the job to stop; Wait returns once it has.
func (c *JobClient) Cancel() {
	if c.remote != nil {
		c.remote.cancel()
		return
	}
	c.h.Cancel()
}

// Done is closed when the job has ended.
func (c *JobClient) Done() <-chan struct{} {
	if c.remote != nil {
		return c.remote.doneChan()
	}
	return c.h.Done()
}

// Status is the job's state, in Flink's names (RUNNING, FINISHED, ...).
func (c *JobClient) Status() string {
	if c.remote != nil {
		return c.remote.status()
	}
	st, _ := c.h.Status()
	return st.String()
}

// TaskStates counts the job's subtasks per execution state (CREATED,
// SCHEDULED, DEPLOYING, INITIALIZING, RUNNING, FINISHED, ...).
func (c *JobClient) TaskStates() map[string]int {
	if c.remote != nil {
		return c.remote.taskStates()
	}
	_, execs := c.h.Status()
	m := map[string]int{}
	for _, e := range execs {
		m[e.State.String()]++
	}
	return m
}

// Metrics returns the current per-operator record counts.
// For a job on a cluster the counts are per job vertex (a chain of
// operators), as the REST API has them.
func (c *JobClient) Metrics() []OperatorResult {
	if c.remote != nil {
		return c.remote.metrics()
	}
	return toResults(c.h.Totals())
}

// Wait blocks until the job ends and reports how (see Execute for the
// errors), or until ctx ends: then it returns ctx's error and the job goes
// on (stop it with Cancel, or with the context given to ExecuteAsync).
func (c *JobClient) Wait(ctx context.Context) (*JobResult, error) {
	if c.remote != nil {
		return c.remote.wait(ctx)
	}
	r, err := c.h.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("strom: waiting for job %q: %w", c.name, err)
	}
	res := toResult(r)
	switch r.State {
	case scheduler.JobFinished:
		return res, nil
	case scheduler.JobCanceled:
		if c.ctx.Err() != nil {
			return res, fmt.Errorf("strom: job %q: %w: %w", c.name, ErrJobCanceled, context.Cause(c.ctx))
		}
		return res, fmt.Errorf("strom: job %q: %w", c.name, ErrJobCanceled)
	default:
		return res, fmt.Errorf("strom: %w: %w", ErrJobFailed, publicError(r.Err))
	}
}

// Close cancels the job if it still runs and stops the embedded cluster,
// waiting for every goroutine of it.
//
// For a job submitted to a cluster, Close cancels the job if it still runs
// and releases the client; the cluster runs on.
func (c *JobClient) Close() {
	if c.remote != nil {
		c.remote.close()
		if c.release != nil {
			c.release()
			c.release = nil
		}
		return
	}
	if c.closed {
		return
	}
	c.closed = true
	c.stop()
	select {
	case <-c.h.Done():
	default:
		c.h.Cancel()
		_, _ = c.h.Wait(context.Background())
	}
	c.mc.Close()
}

// TaskError is the cause of a failed job: the operator and subtask whose
// code failed, and why. Get it from Execute's error with errors.As; Err is
// the error a user function returned (so errors.Is finds it), or a panic's
// message when the code panicked.
type TaskError struct {
	Job      string // job name
	JobID    string
	Operator string // the operator (function) that failed
	Task     string // the task (chain of operators) it ran in
	// Subtask is 0-based, of Parallelism; Attempt counts restarts from 0.
	Subtask, Parallelism, Attempt int
	Err                           error
	// Stack is the failing goroutine's stack when the cause was a panic.
	Stack string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("job %q: operator %q (subtask %d/%d): %v", e.Job, e.Operator, e.Subtask+1, e.Parallelism, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// publicError replaces the runtime's task error by the public TaskError,
// keeping its cause.
func publicError(err error) error {
	var te *runtime.TaskError
	if !errors.As(err, &te) {
		return err
	}
	return &TaskError{
		Job: te.Job, JobID: te.Task.JobID, Operator: te.Operator, Task: te.Task.VertexName,
		Subtask: te.Task.Subtask, Parallelism: te.Task.Parallelism, Attempt: te.Task.Attempt,
		Err: te.Err, Stack: te.Stack,
	}
}

func toResults(ts []minicluster.OperatorTotals) []OperatorResult {
	out := make([]OperatorResult, len(ts))
	for i, t := range ts {
		out[i] = OperatorResult{Name: t.Name, UID: t.UID, Parallelism: t.Parallelism, RecordsIn: t.RecordsIn, RecordsOut: t.RecordsOut, BackpressureWaits: t.BackpressureWaits}
	}
	return out
}

func toResult(r minicluster.JobResult) *JobResult {
	return &JobResult{JobID: r.JobID, JobName: r.JobName, Duration: r.Duration, Operators: toResults(r.Operators),
		Restarts: r.Restarts, CheckpointsCompleted: r.CheckpointsCompleted, RestoredCheckpoint: r.RestoredCheckpoint, RestoredFrom: r.RestoredFrom,
		LastCheckpointDuration: r.LastCheckpointDuration, LastCheckpointSize: r.LastCheckpointSize, LastCheckpointSyncPause: r.LastCheckpointSyncPause}
}
