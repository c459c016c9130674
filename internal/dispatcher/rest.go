package dispatcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/rest"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// RESTConfig is what the Dispatcher's REST adapter needs beyond the
// Dispatcher itself.
type RESTConfig struct {
	// Binaries keeps uploaded job binaries (nil: the binary endpoints
	// answer that the cluster keeps none).
	Binaries BinaryStore
	// TaskManagers lists the cluster's TaskManagers (nil: none known).
	TaskManagers func(ctx context.Context) ([]rest.TaskManager, error)
	// SavepointDir is the default savepoint target (empty: a savepoint
	// request must name one).
	SavepointDir string
	// Run submits a job built from a binary: its JobGraph, the stored
	// binary every process runs the job's code from, and the options.
	// Nil: the cluster cannot run binaries (the embedded cluster runs
	// jobs whose code is in its own process), and such submissions are
	// refused.
	Run func(ctx context.Context, jobID string, jg *jobgraph.JobGraph, binary StoredBinary, opts rest.RunOptions) error
	// PlanTimeout bounds running a binary to learn its JobGraph
	// (default 30 s).
	PlanTimeout time.Duration
}

// REST is the Dispatcher as a rest.Cluster: what the REST API reads and
// does, answered from the status the JobMasters report (rpc.JobStatus and
// its Details) and the binary store.
type REST struct {
	d   *Dispatcher
	cfg RESTConfig
}

var _ rest.Cluster = (*REST)(nil)

// REST returns the Dispatcher's REST adapter.
func (d *Dispatcher) REST(cfg RESTConfig) *REST {
	if cfg.PlanTimeout <= 0 {
		cfg.PlanTimeout = 30 * time.Second
	}
	return &REST{d: d, cfg: cfg}
}

// jobView is a consistent copy of what the Dispatcher knows of a job.
type jobView struct {
	sub          Submission
	seq          int
	start, ended time.Time
	lastModified time.Time
	stateTimes   map[scheduler.JobState]time.Time
	status       rpc.JobStatus
	result       *JobResult
}

func (r *REST) views() []jobView {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	out := make([]jobView, 0, len(r.d.jobs))
	for _, j := range r.d.jobs {
		out = append(out, viewOf(j))
	}
	slices.SortFunc(out, func(a, b jobView) int { return a.seq - b.seq })
	return out
}

// viewOf copies j (under Dispatcher.mu). Statuses are replaced whole,
// never mutated, so sharing their slices is safe.
func viewOf(j *job) jobView {
	v := jobView{sub: j.sub, seq: j.seq, start: j.start, ended: j.ended, lastModified: j.lastModified,
		stateTimes: make(map[scheduler.JobState]time.Time, len(j.stateTimes)), status: j.status, result: j.result}
	for k, t := range j.stateTimes {
		v.stateTimes[k] = t
	}
	return v
}

func (r *REST) view(ctx context.Context, id string) (jobView, error) {
	if err := ctx.Err(); err != nil {
		return jobView{}, err
	}
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	j, ok := r.d.jobs[id]
	if !ok {
		return jobView{}, fmt.Errorf("%w: %w: %s", rest.ErrNotFound, ErrUnknownJob, id)
	}
	return viewOf(j), nil
}

func (v jobView) summary() rest.JobSummary {
	s := rest.JobSummary{ID: v.sub.JobID, Name: v.sub.JobName, State: rest.JobState(v.status.State.String()),
		Start: v.start, End: v.ended, LastModified: v.lastModified, Tasks: map[rest.ExecState]int{}}
	for _, e := range v.status.Executions {
		s.Tasks[rest.ExecState(e.State.String())]++
	}
	return s
}

func (r *REST) Jobs(ctx context.Context) ([]rest.JobSummary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vs := r.views()
	out := make([]rest.JobSummary, len(vs))
	for i, v := range vs {
		out[i] = v.summary()
	}
	return out, nil
}

func (r *REST) Job(ctx context.Context, id string) (rest.Job, error) {
	v, err := r.view(ctx, id)
	if err != nil {
		return rest.Job{}, err
	}
	jg := v.sub.JobGraph
	j := rest.Job{JobSummary: v.summary(), Stoppable: !v.status.State.Terminal(), Timestamps: map[rest.JobState]time.Time{},
		Plan: rest.PlanFromJobGraph(id, jg)}
	for s, t := range v.stateTimes {
		j.Timestamps[rest.JobState(s.String())] = t
	}
	byVertex := map[int][]rpc.ExecutionStatus{}
	for _, e := range v.status.Executions {
		byVertex[e.ID.Vertex] = append(byVertex[e.ID.Vertex], e)
	}
	for _, jv := range jg.Vertices {
		j.MaxParallelism = max(j.MaxParallelism, jv.MaxParallelism)
		vx := rest.Vertex{ID: rest.VertexID(jv.ID), Name: vertexName(jv), Parallelism: jv.Parallelism, MaxParallelism: jv.MaxParallelism}
		execs := byVertex[jv.ID]
		slices.SortFunc(execs, func(a, b rpc.ExecutionStatus) int { return a.ID.Subtask - b.ID.Subtask })
		for _, e := range execs {
			vx.Subtasks = append(vx.Subtasks, subtaskOf(e))
		}
		j.Vertices = append(j.Vertices, vx)
	}
	for _, op := range v.status.Operators {
		j.Operators = append(j.Operators, rest.OperatorCount{Name: op.Name, RecordsIn: op.RecordsIn, RecordsOut: op.RecordsOut})
	}
	j.Restarts = v.status.Restarts
	return j, nil
}

// vertexName is the chain's operators' names, as Flink names a vertex.
func vertexName(jv *jobgraph.JobVertex) string {
	if jv.Name != "" {
		return jv.Name
	}
	names := make([]string, len(jv.Operators))
	for i, op := range jv.Operators {
		names[i] = op.Name
	}
	return strings.Join(names, " -> ")
}

// subtaskOf is an execution as REST shows it: records in are the chain
// head's input, records out the chain tail's output (what the task
// exchanges with other tasks, as Flink counts a vertex); the watermark is
// the head's input watermark.
func subtaskOf(e rpc.ExecutionStatus) rest.Subtask {
	s := rest.Subtask{Index: e.ID.Subtask, Attempt: e.ID.Attempt, State: rest.ExecState(e.State.String()),
		Start: e.Start, End: e.End, Watermark: rest.NoWatermark}
	if e.Slot.TaskManager != "" && e.State != scheduler.Created && e.State != scheduler.Scheduled {
		s.Host, s.TaskManagerID = "localhost", TaskManagerID(e.Slot.TaskManager)
	}
	if m := e.Metrics; m != nil {
		s.BusyMsPerSecond, s.IdleMsPerSecond, s.BackPressuredMsPerSecond = m.BusyMsPerSecond, m.IdleMsPerSecond, m.BackPressuredMsPerSecond
		if n := len(m.Operators); n > 0 {
			s.RecordsIn, s.RecordsOut = m.Operators[0].RecordsIn, m.Operators[n-1].RecordsOut
			s.Watermark = m.Operators[0].Watermark // runtime.MinWatermark (NoWatermark): none yet
		}
	}
	return s
}

// TaskManagerID is the Flink-shaped id (32 hex digits) of a TaskManager:
// the first half of the sha256 of its own id, so it is stable and unique
// in practice whatever the TaskManager calls itself.
func TaskManagerID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:16])
}

func (r *REST) Exceptions(ctx context.Context, id string) ([]rest.Exception, error) {
	v, err := r.view(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []rest.Exception{}
	for _, e := range v.status.Details.Exceptions {
		ex := rest.Exception{Name: "error", Message: e.Failure.Message, Time: e.Time, Location: e.TaskManager}
		if e.Failure.Stack != "" {
			ex.Message += "\n" + e.Failure.Stack
		}
		if e.Failure.Task != "" {
			ex.Name = "TaskError"
			ex.TaskName = fmt.Sprintf("%s (%d/%d)#%d", e.Failure.Task, e.Failure.Subtask+1, e.Failure.Parallelism, e.Failure.Attempt)
			if e.TaskManager != "" {
				ex.Location = TaskManagerID(e.TaskManager)
			}
		}
		out = append(out, ex)
	}
	return out, nil
}

func (r *REST) JobConfig(ctx context.Context, id string) (rest.JobConfig, error) {
	v, err := r.view(ctx, id)
	if err != nil {
		return rest.JobConfig{}, err
	}
	par := 0
	for _, jv := range v.sub.JobGraph.Vertices {
		par = max(par, jv.Parallelism)
	}
	// The restart strategy is the job's own (jobcode.Config), which the
	// JobMaster does not report yet.
	return rest.JobConfig{ExecutionMode: "PIPELINED", RestartStrategy: "as configured by the job", Parallelism: par,
		UserConfig: map[string]string{}}, nil
}

func (r *REST) Checkpoints(ctx context.Context, id string) (rest.CheckpointStats, error) {
	v, err := r.view(ctx, id)
	if err != nil {
		return rest.CheckpointStats{}, err
	}
	cs := v.status.Details.Checkpoints
	storage := ""
	if cc := v.status.Details.CheckpointConfig; cc != nil {
		storage = cc.Storage
	}
	out := rest.CheckpointStats{Restored: cs.Restored, Total: cs.Total, InProgress: cs.InProgress, Completed: cs.Completed, Failed: cs.Failed,
		History: []rest.Checkpoint{}}
	for _, c := range cs.History {
		cp := checkpointOf(c, storage, v.sub.JobID)
		out.History = append(out.History, cp)
		p := &out.History[len(out.History)-1]
		switch {
		case c.Status == "COMPLETED" && c.Savepoint && out.LatestSavepoint == nil:
			out.LatestSavepoint = p
		case c.Status == "COMPLETED" && !c.Savepoint && out.LatestCompleted == nil:
			out.LatestCompleted = p
		case c.Status == "FAILED" && out.LatestFailed == nil:
			out.LatestFailed = p
		}
	}
	if cs.RestoredID != 0 {
		out.LatestRestored = &rest.RestoredCheckpoint{ID: cs.RestoredID, Time: cs.RestoredTime, Savepoint: cs.RestoredSavepoint, Path: cs.RestoredPath}
	}
	return out, nil
}

// checkpointOf is a checkpoint record as REST shows it. A checkpoint's
// external path is its directory in the job's checkpoint storage
// (checkpoint.CompletedStore's layout: <storage>/<job>/chk-<id>).
func checkpointOf(c rpc.CheckpointRecord, storage, jobID string) rest.Checkpoint {
	cp := rest.Checkpoint{ID: c.ID, Status: rest.CheckpointStatus(c.Status), Savepoint: c.Savepoint, Sync: c.Sync,
		Triggered: c.Triggered, LatestAck: c.LatestAck, Size: c.Size, StateSize: c.Size, Duration: c.Duration,
		SyncDuration: c.SyncPause, NumSubtasks: c.NumSubtasks, NumAcknowledged: c.NumAcknowledged,
		ExternalPath: c.Path, FailureMessage: c.FailureMessage}
	if c.Status == "IN_PROGRESS" {
		cp.Duration = time.Since(c.Triggered)
	}
	if c.Status == "FAILED" {
		cp.FailureTime = c.Triggered.Add(c.Duration)
	}
	if c.Status == "COMPLETED" && !c.Savepoint && storage != "" {
		cp.ExternalPath = fmt.Sprintf("%s/%s/chk-%d", strings.TrimSuffix(storage, "/"), jobID, c.ID)
	}
	return cp
}

func (r *REST) CheckpointConfig(ctx context.Context, id string) (rest.CheckpointConfig, error) {
	v, err := r.view(ctx, id)
	if err != nil {
		return rest.CheckpointConfig{}, err
	}
	cc := v.status.Details.CheckpointConfig
	if cc == nil {
		return rest.CheckpointConfig{}, fmt.Errorf("%w: job %s has no checkpointing", rest.ErrNotFound, id)
	}
	return rest.CheckpointConfig{ExactlyOnce: cc.ExactlyOnce, Interval: cc.Interval, Timeout: cc.Timeout, MinPause: cc.MinPause,
		MaxConcurrent: cc.MaxConcurrent, Externalized: true, StateBackend: "HashMapStateBackend", CheckpointStorage: cc.Storage,
		Unaligned: cc.Unaligned, TolerableFailed: cc.TolerableFailures, AlignedTimeout: cc.AlignedTimeout,
		CheckpointsAfterTasksFinish: true, SavepointDirectoryConfigured: r.cfg.SavepointDir != ""}, nil
}

func (r *REST) handle(ctx context.Context, id string) (*JobHandle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := r.d.Job(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", rest.ErrNotFound, err)
	}
	return h, nil
}

func (r *REST) CancelJob(ctx context.Context, id string) error {
	h, err := r.handle(ctx, id)
	if err != nil {
		return err
	}
	select {
	case <-h.Done():
		return fmt.Errorf("%w: job %s has ended", rest.ErrConflict, id)
	default:
	}
	h.Cancel()
	return nil
}

func (r *REST) Savepoint(ctx context.Context, id string, req rest.SavepointRequest) (string, error) {
	h, err := r.handle(ctx, id)
	if err != nil {
		return "", err
	}
	if req.Format != "" && req.Format != "CANONICAL" {
		return "", fmt.Errorf("%w: savepoint format %s is not supported (only CANONICAL)", rest.ErrInvalid, req.Format)
	}
	target := req.TargetDirectory
	if target == "" {
		target = r.cfg.SavepointDir
	}
	if target == "" {
		return "", fmt.Errorf("%w: no target directory given and the cluster has no default savepoint directory", rest.ErrInvalid)
	}
	select {
	case <-h.Done():
		return "", fmt.Errorf("%w: job %s has ended", rest.ErrConflict, id)
	default:
	}
	loc, err := h.TriggerSavepoint(ctx, target, req.Stop, req.Drain)
	if err != nil {
		return "", err
	}
	if req.Cancel {
		h.Cancel()
	}
	return loc, nil
}

func (r *REST) Checkpoint(ctx context.Context, id string) (int64, error) {
	h, err := r.handle(ctx, id)
	if err != nil {
		return 0, err
	}
	select {
	case <-h.Done():
		return 0, fmt.Errorf("%w: job %s has ended", rest.ErrConflict, id)
	default:
	}
	return h.TriggerCheckpoint(ctx)
}

func (r *REST) DisposeSavepoint(ctx context.Context, path string) error {
	if err := checkpoint.DisposeSavepoint(ctx, path); err != nil {
		return fmt.Errorf("%w: %w", rest.ErrInvalid, err)
	}
	return nil
}

func (r *REST) TaskManagers(ctx context.Context) ([]rest.TaskManager, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.cfg.TaskManagers == nil {
		return []rest.TaskManager{}, nil
	}
	return r.cfg.TaskManagers(ctx)
}

// errNoStore: the cluster was started without a binary store.
var errNoStore = errors.New("this cluster keeps no job binaries")

func (r *REST) binaryOf(b StoredBinary) rest.Binary {
	return rest.Binary{ID: b.ID, Name: b.Name, Path: b.Path, Uploaded: b.Uploaded, Entry: []rest.Entry{{Name: "main", Description: "the job binary's main"}}}
}

func (r *REST) UploadBinary(ctx context.Context, name string, rd io.Reader) (rest.Binary, error) {
	if r.cfg.Binaries == nil {
		return rest.Binary{}, errNoStore
	}
	b, err := r.cfg.Binaries.Put(ctx, name, rd)
	if errors.Is(err, ErrBinaryTooLarge) {
		return rest.Binary{}, fmt.Errorf("%w: %w", rest.ErrInvalid, err)
	}
	if err != nil {
		return rest.Binary{}, err
	}
	return r.binaryOf(b), nil
}

func (r *REST) Binaries(ctx context.Context) ([]rest.Binary, error) {
	if r.cfg.Binaries == nil {
		return []rest.Binary{}, nil
	}
	bs, err := r.cfg.Binaries.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rest.Binary, len(bs))
	for i, b := range bs {
		out[i] = r.binaryOf(b)
	}
	return out, nil
}

func (r *REST) DeleteBinary(ctx context.Context, id string) error {
	if r.cfg.Binaries == nil {
		return fmt.Errorf("%w: %w", rest.ErrNotFound, errNoStore)
	}
	err := r.cfg.Binaries.Delete(ctx, id)
	if errors.Is(err, ErrUnknownBinary) {
		return fmt.Errorf("%w: %w", rest.ErrNotFound, err)
	}
	return err
}

func (r *REST) BinaryPlan(ctx context.Context, id string, opts rest.RunOptions) (rest.Plan, error) {
	jg, _, err := r.jobGraphOf(ctx, id, opts)
	if err != nil {
		return rest.Plan{}, err
	}
	jobID := opts.JobID
	if jobID == "" {
		jobID = strings.Repeat("0", 32)
	}
	return rest.PlanFromJobGraph(jobID, jg), nil
}

func (r *REST) RunBinary(ctx context.Context, id string, opts rest.RunOptions) (string, error) {
	jg, b, err := r.jobGraphOf(ctx, id, opts)
	if err != nil {
		return "", err
	}
	return r.run(ctx, jg, b, opts)
}

func (r *REST) SubmitJob(ctx context.Context, sub rest.Submission) (string, error) {
	if r.cfg.Binaries == nil {
		return "", errNoStore
	}
	rc, b, err := r.cfg.Binaries.Open(ctx, sub.BinaryID)
	if errors.Is(err, ErrUnknownBinary) {
		return "", fmt.Errorf("%w: %w", rest.ErrNotFound, err)
	}
	if err != nil {
		return "", err
	}
	_ = rc.Close() // only its existence and path are needed here
	if sub.JobGraph == nil || len(sub.JobGraph.Vertices) == 0 {
		return "", fmt.Errorf("%w: the submission has no job graph", rest.ErrInvalid)
	}
	return r.run(ctx, sub.JobGraph, b, sub.Options)
}

func (r *REST) run(ctx context.Context, jg *jobgraph.JobGraph, b StoredBinary, opts rest.RunOptions) (string, error) {
	if r.cfg.Run == nil {
		return "", errors.New("this cluster cannot run job binaries (an embedded cluster runs only the jobs of its own process)")
	}
	if opts.EntryClass != "" && opts.EntryClass != "main" {
		return "", fmt.Errorf("%w: entry class %q: a job binary has one entry point, main", rest.ErrInvalid, opts.EntryClass)
	}
	if opts.SavepointPath != "" {
		// A savepoint that is not there is the user's typo: refuse the
		// run now (400), as the job would only fail once its JobMaster
		// started, and a detached run would never hear why. Other
		// problems of the savepoint (a retained checkpoint's path, state
		// that does not fit) are the JobMaster's to judge as it restores.
		if _, _, err := checkpoint.LoadSavepoint(ctx, opts.SavepointPath); errors.Is(err, blob.ErrNotFound) {
			return "", fmt.Errorf("%w: %w", rest.ErrInvalid, err)
		}
	}
	jobID := opts.JobID
	if jobID == "" {
		var buf [16]byte
		_, _ = rand.Read(buf[:])
		jobID = hex.EncodeToString(buf[:])
	}
	if err := r.cfg.Run(ctx, jobID, jg, b, opts); err != nil {
		return "", err
	}
	return jobID, nil
}

// PlanEnv is the environment variable that makes a job binary print its
// JobGraph as JSON on stdout and exit 0 instead of running.
const PlanEnv = "STROM_PRINT_PLAN"

// jobGraphOf runs stored binary id with opts.Args and PlanEnv=1, under
// PlanTimeout, and reads the JobGraph it prints. Nothing of the binary
// runs in this process. A binary that fails, hangs or prints no JobGraph
// is ErrInvalid, with what it wrote to stderr.
func (r *REST) jobGraphOf(ctx context.Context, id string, opts rest.RunOptions) (*jobgraph.JobGraph, StoredBinary, error) {
	if r.cfg.Binaries == nil {
		return nil, StoredBinary{}, fmt.Errorf("%w: %w", rest.ErrNotFound, errNoStore)
	}
	if opts.Parallelism > 0 {
		// A JobGraph's vertices carry their parallelism already; which of
		// them took the default is not recorded, so it cannot be changed.
		return nil, StoredBinary{}, fmt.Errorf("%w: parallelism %d: a job binary sets its parallelism itself (pass it as a program argument)", rest.ErrInvalid, opts.Parallelism)
	}
	rc, b, err := r.cfg.Binaries.Open(ctx, id)
	if errors.Is(err, ErrUnknownBinary) {
		return nil, StoredBinary{}, fmt.Errorf("%w: %w", rest.ErrNotFound, err)
	}
	if err != nil {
		return nil, StoredBinary{}, err
	}
	defer rc.Close()
	// A copy to run: a store need not keep binaries as executable files
	// (blob storage does not).
	tmp, err := os.CreateTemp("", "strom-binary-*")
	if err != nil {
		return nil, b, fmt.Errorf("running job binary %s: %w", id, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o700)
	}
	if err != nil {
		return nil, b, fmt.Errorf("running job binary %s: %w", id, err)
	}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.PlanTimeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, tmp.Name(), opts.Args...)
	cmd.Env = append(os.Environ(), PlanEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedWriter{w: &stderr, n: 4096}
	cmd.WaitDelay = time.Second // a child that leaves its pipes open cannot hold us
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, b, ctx.Err()
	}
	if rctx.Err() != nil {
		return nil, b, fmt.Errorf("%w: job binary %s did not print its job graph within %v", rest.ErrInvalid, id, r.cfg.PlanTimeout)
	}
	if err != nil {
		return nil, b, fmt.Errorf("%w: job binary %s failed to print its job graph (%v): %s", rest.ErrInvalid, id, err, strings.TrimSpace(stderr.String()))
	}
	var jg jobgraph.JobGraph
	if err := json.Unmarshal(stdout.Bytes(), &jg); err != nil || len(jg.Vertices) == 0 {
		return nil, b, fmt.Errorf("%w: job binary %s printed no job graph with %s=1 (is it a Strom job binary?)", rest.ErrInvalid, id, PlanEnv)
	}
	return &jg, b, nil
}

// limitedWriter keeps the first n bytes written and drops the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// SlotsInUse counts, per TaskManager id, the slots the executions of jobs
// still running hold, as their JobMasters last reported.
func (d *Dispatcher) SlotsInUse() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for _, j := range d.jobs {
		if j.result != nil {
			continue
		}
		seen := map[scheduler.SlotID]bool{}
		for _, e := range j.status.Executions {
			if e.Slot.TaskManager != "" && !e.State.Terminal() && !seen[e.Slot] {
				seen[e.Slot] = true
				out[e.Slot.TaskManager]++
			}
		}
	}
	return out
}
