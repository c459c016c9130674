package rest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeCluster is an in-memory Cluster for the handler tests: jobs,
// checkpoints and TaskManagers are set by the test; savepoints, disposals
// and binaries behave like the real thing (a savepoint waits for release
// when gated, a disposal of an unknown path fails, binaries are stored).
type fakeCluster struct {
	mu          sync.Mutex
	jobs        []Job
	exceptions  map[string][]Exception
	configs     map[string]JobConfig
	ckConfigs   map[string]CheckpointConfig
	checkpoints map[string]CheckpointStats
	tms         []TaskManager
	savepoints  map[string]bool // disposable savepoint paths
	binaries    []Binary
	blobs       map[string][]byte
	nextID      int
	now         time.Time

	// gate, when set, holds every Savepoint until it is closed or the
	// context ends.
	gate chan struct{}
	// calls records the Savepoint requests, in order.
	calls []SavepointRequest
	// cancelled records the CancelJob calls.
	cancelled []string
	// submissions records the accepted SubmitJob calls.
	submissions []Submission
}

var (
	jobA = "0123456789abcdef0123456789abcdef"
	jobB = "fedcba9876543210fedcba9876543210"
)

func newFakeCluster(now time.Time) *fakeCluster {
	f := &fakeCluster{now: now, exceptions: map[string][]Exception{}, configs: map[string]JobConfig{},
		ckConfigs: map[string]CheckpointConfig{}, checkpoints: map[string]CheckpointStats{}, savepoints: map[string]bool{},
		blobs: map[string][]byte{}}
	start := now.Add(-time.Minute)
	src := Vertex{ID: VertexID(1), Name: "Source: numbers", Parallelism: 2, MaxParallelism: 128, Subtasks: []Subtask{
		{Index: 0, Attempt: 0, State: "RUNNING", Host: "127.0.0.1", TaskManagerID: tmID, Start: start, RecordsOut: 100, BytesOut: 800,
			BusyMsPerSecond: 200, IdleMsPerSecond: 100, BackPressuredMsPerSecond: 700, Watermark: 1000},
		{Index: 1, Attempt: 0, State: "RUNNING", Host: "127.0.0.1", TaskManagerID: tmID, Start: start, RecordsOut: 50, BytesOut: 400,
			BusyMsPerSecond: 900, IdleMsPerSecond: 50, BackPressuredMsPerSecond: 50, Watermark: NoWatermark},
	}}
	sink := Vertex{ID: VertexID(2), Name: "Sink: print", Parallelism: 1, MaxParallelism: 128, Subtasks: []Subtask{
		{Index: 0, Attempt: 1, State: "RUNNING", Host: "127.0.0.1", TaskManagerID: tmID, Start: start, RecordsIn: 150, BytesIn: 1200,
			BusyMsPerSecond: 300, IdleMsPerSecond: 700, Watermark: 900},
	}}
	plan := Plan{JobID: jobA, Name: "numbers", Type: "STREAMING", Nodes: []PlanNode{
		{ID: src.ID, Parallelism: 2, Description: "Source: numbers", OptimizerProperties: map[string]any{}},
		{ID: sink.ID, Parallelism: 1, Description: "Sink: print", OptimizerProperties: map[string]any{},
			Inputs: []PlanInput{{Num: 0, ID: src.ID, ShipStrategy: "REBALANCE", Exchange: "pipelined_bounded"}}},
	}}
	f.jobs = []Job{
		{JobSummary: JobSummary{ID: jobA, Name: "numbers", State: "RUNNING", Start: start, LastModified: start,
			Tasks: map[ExecState]int{"RUNNING": 3}}, MaxParallelism: 128, Stoppable: true,
			Timestamps: map[JobState]time.Time{"CREATED": start, "RUNNING": start}, Vertices: []Vertex{src, sink}, Plan: plan},
		{JobSummary: JobSummary{ID: jobB, Name: "done", State: "FINISHED", Start: start, End: start.Add(10 * time.Second),
			LastModified: start.Add(10 * time.Second), Tasks: map[ExecState]int{"FINISHED": 1}}, MaxParallelism: 128,
			Timestamps: map[JobState]time.Time{"CREATED": start, "FINISHED": start.Add(10 * time.Second)}},
	}
	f.exceptions[jobA] = []Exception{
		{Name: "panic", Message: "boom\ngoroutine 1 [running]:", Time: start.Add(30 * time.Second), TaskName: "Sink: print (1/1)", Location: "127.0.0.1:6121",
			Concurrent: []Exception{{Name: "canceled", Message: "cancelled by restart", Time: start.Add(30 * time.Second), TaskName: "Source: numbers (1/2)"}}},
		{Name: "error", Message: "lost TaskManager", Time: start.Add(10 * time.Second)},
	}
	f.configs[jobA] = JobConfig{ExecutionMode: "PIPELINED", RestartStrategy: "fixed-delay (3 attempts, 1s)", Parallelism: 2, UserConfig: map[string]string{"k": "v"}}
	f.configs[jobB] = JobConfig{ExecutionMode: "PIPELINED", RestartStrategy: "none", Parallelism: 1}
	f.ckConfigs[jobA] = CheckpointConfig{ExactlyOnce: true, Interval: 10 * time.Second, Timeout: 10 * time.Minute, MaxConcurrent: 1,
		Externalized: true, StateBackend: "heap", CheckpointStorage: "file:///tmp/ck", CheckpointsAfterTasksFinish: true}
	completed := Checkpoint{ID: 7, Status: CheckpointCompleted, Triggered: start.Add(20 * time.Second), LatestAck: start.Add(21 * time.Second),
		Size: 4096, StateSize: 4096, Duration: time.Second, SyncDuration: 3 * time.Millisecond, AsyncDuration: 900 * time.Millisecond,
		NumSubtasks: 3, NumAcknowledged: 3, ExternalPath: "file:///tmp/ck/chk-7",
		Tasks: map[string]TaskCheckpoint{src.ID: {Status: CheckpointCompleted, LatestAck: start.Add(21 * time.Second), Size: 4096, StateSize: 4096,
			Duration: time.Second, NumSubtasks: 2, NumAcknowledged: 2}}}
	failed := Checkpoint{ID: 8, Status: CheckpointFailed, Triggered: start.Add(30 * time.Second), NumSubtasks: 3, NumAcknowledged: 1,
		FailureTime: start.Add(31 * time.Second), FailureMessage: "task failed"}
	sp := Checkpoint{ID: 9, Status: CheckpointCompleted, Savepoint: true, Triggered: start.Add(40 * time.Second), LatestAck: start.Add(41 * time.Second),
		Size: 8192, StateSize: 8192, Duration: 2 * time.Second, NumSubtasks: 3, NumAcknowledged: 3, ExternalPath: "file:///tmp/sp/savepoint-1"}
	running := Checkpoint{ID: 10, Status: CheckpointInProgress, Triggered: start.Add(50 * time.Second), NumSubtasks: 3, NumAcknowledged: 2}
	f.checkpoints[jobA] = CheckpointStats{Restored: 1, Total: 4, InProgress: 1, Completed: 2, Failed: 1,
		History: []Checkpoint{running, sp, failed, completed}, LatestCompleted: &sp, LatestSavepoint: &sp, LatestFailed: &failed,
		LatestRestored: &RestoredCheckpoint{ID: 5, Time: start, Path: "file:///tmp/ck/chk-5"}}
	f.checkpoints[jobB] = CheckpointStats{}
	f.tms = []TaskManager{{ID: tmID, Path: "127.0.0.1:6121", DataPort: 6122, LastHeartbeat: now.Add(-time.Second), Slots: 4, FreeSlots: 1,
		CPUCores: 2, PhysicalMemory: 8 << 30, FreeMemory: 4 << 30, HeapUsed: 10 << 20, HeapCommitted: 20 << 20, HeapMax: -1,
		AllocatedSlots: []string{jobA, jobA, jobA}}}
	f.savepoints["file:///tmp/sp/savepoint-1"] = true
	return f
}

const tmID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func (f *fakeCluster) Jobs(ctx context.Context) ([]JobSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []JobSummary
	for _, j := range f.jobs {
		out = append(out, j.JobSummary)
	}
	return out, nil
}

func (f *fakeCluster) jobLocked(id string) (*Job, error) {
	for i := range f.jobs {
		if f.jobs[i].ID == id {
			return &f.jobs[i], nil
		}
	}
	return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
}

func (f *fakeCluster) Job(ctx context.Context, id string) (Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.jobLocked(id)
	if err != nil {
		return Job{}, err
	}
	return *j, nil
}

func (f *fakeCluster) Exceptions(ctx context.Context, id string) ([]Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.jobLocked(id); err != nil {
		return nil, err
	}
	return f.exceptions[id], nil
}

func (f *fakeCluster) JobConfig(ctx context.Context, id string) (JobConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.jobLocked(id); err != nil {
		return JobConfig{}, err
	}
	return f.configs[id], nil
}

func (f *fakeCluster) Checkpoints(ctx context.Context, id string) (CheckpointStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.jobLocked(id); err != nil {
		return CheckpointStats{}, err
	}
	return f.checkpoints[id], nil
}

func (f *fakeCluster) CheckpointConfig(ctx context.Context, id string) (CheckpointConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.jobLocked(id); err != nil {
		return CheckpointConfig{}, err
	}
	c, ok := f.ckConfigs[id]
	if !ok {
		return CheckpointConfig{}, fmt.Errorf("%w: checkpointing is not enabled for job %s", ErrNotFound, id)
	}
	return c, nil
}

func (f *fakeCluster) CancelJob(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.jobLocked(id)
	if err != nil {
		return err
	}
	switch j.State {
	case "FINISHED", "FAILED", "CANCELED":
		return fmt.Errorf("%w: job %s has already ended (%s)", ErrConflict, id, j.State)
	}
	j.State = "CANCELLING"
	f.cancelled = append(f.cancelled, id)
	return nil
}

// Checkpoint completes checkpoint 42 of a running job.
func (f *fakeCluster) Checkpoint(ctx context.Context, id string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.jobLocked(id)
	if err != nil {
		return 0, err
	}
	if j.State != "RUNNING" {
		return 0, fmt.Errorf("%w: job %s is %s", ErrConflict, id, j.State)
	}
	return 42, nil
}

func (f *fakeCluster) Savepoint(ctx context.Context, id string, req SavepointRequest) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	gate := f.gate
	j, err := f.jobLocked(id)
	if err == nil && j.State != "RUNNING" {
		err = fmt.Errorf("%w: job %s is %s", ErrConflict, id, j.State)
	}
	f.nextID++
	n := f.nextID
	f.mu.Unlock()
	if err != nil {
		return "", err
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", fmt.Errorf("savepoint of job %s: %w", id, ctx.Err())
		}
	}
	if req.TargetDirectory == "" {
		return "", fmt.Errorf("%w: no target directory given and no default savepoint directory configured", ErrInvalid)
	}
	loc := fmt.Sprintf("%s/savepoint-%d", strings.TrimRight(req.TargetDirectory, "/"), n)
	f.mu.Lock()
	f.savepoints[loc] = true
	if req.Stop || req.Cancel {
		j.State = "FINISHED"
	}
	f.mu.Unlock()
	return loc, nil
}

func (f *fakeCluster) DisposeSavepoint(ctx context.Context, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.savepoints[path] {
		return fmt.Errorf("%w: no savepoint at %s", ErrNotFound, path)
	}
	delete(f.savepoints, path)
	return nil
}

func (f *fakeCluster) TaskManagers(ctx context.Context) ([]TaskManager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tms), nil
}

func (f *fakeCluster) UploadBinary(ctx context.Context, name string, r io.Reader) (Binary, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Binary{}, fmt.Errorf("reading binary %s: %w", name, err)
	}
	if !strings.HasPrefix(string(data), "\x7fELF") {
		return Binary{}, fmt.Errorf("%w: %s is not an executable", ErrInvalid, name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("%08x_%s", f.nextID, name)
	b := Binary{ID: id, Name: name, Path: "/blobs/" + id, Uploaded: f.now.Add(time.Duration(f.nextID) * time.Millisecond),
		Entry: []Entry{{Name: "main", Description: "the job's main"}}}
	f.binaries = append(f.binaries, b)
	f.blobs[id] = data
	return b, nil
}

func (f *fakeCluster) Binaries(ctx context.Context) ([]Binary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.binaries), nil
}

func (f *fakeCluster) binaryLocked(id string) (int, error) {
	for i, b := range f.binaries {
		if b.ID == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: job binary %s", ErrNotFound, id)
}

func (f *fakeCluster) DeleteBinary(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.binaryLocked(id)
	if err != nil {
		return err
	}
	f.binaries = slices.Delete(f.binaries, i, i+1)
	delete(f.blobs, id)
	return nil
}

// planOf is the plan a stored binary "builds": one source and one sink,
// at the requested parallelism; its name lists the arguments.
func planOf(id string, opts RunOptions) Plan {
	p := max(1, opts.Parallelism)
	return Plan{JobID: opts.JobID, Name: id + " " + strings.Join(opts.Args, " "), Type: "STREAMING", Nodes: []PlanNode{
		{ID: VertexID(1), Parallelism: p, Description: "Source", OptimizerProperties: map[string]any{}},
		{ID: VertexID(2), Parallelism: p, Description: "Sink", OptimizerProperties: map[string]any{},
			Inputs: []PlanInput{{ID: VertexID(1), ShipStrategy: "FORWARD", Exchange: "pipelined_bounded"}}},
	}}
}

func (f *fakeCluster) BinaryPlan(ctx context.Context, id string, opts RunOptions) (Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.binaryLocked(id); err != nil {
		return Plan{}, err
	}
	return planOf(id, opts), nil
}

func (f *fakeCluster) RunBinary(ctx context.Context, id string, opts RunOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.binaryLocked(id); err != nil {
		return "", err
	}
	jobID := opts.JobID
	if jobID == "" {
		f.nextID++
		jobID = fmt.Sprintf("%032x", 0xabc000+f.nextID)
	}
	if _, err := f.jobLocked(jobID); err == nil {
		return "", fmt.Errorf("%w: job %s already exists", ErrConflict, jobID)
	}
	p := planOf(id, opts)
	p.JobID = jobID
	f.jobs = append(f.jobs, Job{JobSummary: JobSummary{ID: jobID, Name: p.Name, State: "CREATED", Start: f.now, LastModified: f.now,
		Tasks: map[ExecState]int{"CREATED": 2 * max(1, opts.Parallelism)}}, MaxParallelism: 128, Plan: p})
	return jobID, nil
}

func (f *fakeCluster) SubmitJob(ctx context.Context, sub Submission) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.binaryLocked(sub.BinaryID); err != nil {
		return "", err
	}
	if len(sub.JobGraph.Vertices) == 0 {
		return "", fmt.Errorf("%w: the JobGraph of %q has no vertices", ErrInvalid, sub.JobGraph.JobName)
	}
	jobID := sub.Options.JobID
	if jobID == "" {
		f.nextID++
		jobID = fmt.Sprintf("%032x", 0xdef000+f.nextID)
	}
	if _, err := f.jobLocked(jobID); err == nil {
		return "", fmt.Errorf("%w: job %s already exists", ErrConflict, jobID)
	}
	f.submissions = append(f.submissions, sub)
	f.jobs = append(f.jobs, Job{JobSummary: JobSummary{ID: jobID, Name: sub.JobGraph.JobName, State: "CREATED", Start: f.now, LastModified: f.now},
		MaxParallelism: sub.JobGraph.MaxParallelism, Plan: PlanFromJobGraph(jobID, sub.JobGraph)})
	return jobID, nil
}
