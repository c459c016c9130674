package strom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/jobworker"
	"github.com/strom-dev/strom/internal/restclient"
)

// A job binary submits itself to a cluster (session mode; DESIGN.md, "The
// job binary is the unit of deployment") when Config.Cluster, or else the
// STROM_CLUSTER environment variable, names the cluster's REST address:
// ExecuteAsync builds the JobGraph as for an embedded run, then POSTs
// /jobs with the graph as JSON and the program's own executable, with the
// program's arguments (os.Args[1:]) so that every process of the job runs
// main with them and builds the same graph; FromSavepoint and
// AllowNonRestoredState go with it. The returned JobClient works over REST.
//
// Strom reads no command-line flag of its own: the program's flags are the
// program's (only application mode's role words, "jobmanager" and
// "taskmanager" as the first argument, are Strom's; application.go). A program that wants "myjob --cluster URL" defines that flag
// and copies it into Config.Cluster. Plan mode (PrintPlanEnv) and job-worker
// mode come before Config.Cluster (Config.runMode), so the cluster's
// processes, which run the program with the same arguments (--cluster
// included), rebuild the graph rather than submit it again.

// PrintPlanEnv is the environment variable that puts a job binary in plan
// mode: with it set to 1, Execute (and ExecuteAsync) prints the job's
// JobGraph as JSON to stdout and ends the process with status 0 without
// running anything. `strom info BINARY` and the cluster's
// /jars/:jarid/plan and /jars/:jarid/run read a binary's graph this way,
// so the JSON is the last thing such a program prints.
const PrintPlanEnv = "STROM_PRINT_PLAN"

// Plan mode's output and exit; tests replace them.
var (
	planOutput  io.Writer = os.Stdout
	exitProcess           = os.Exit
)

// errPlanPrinted is returned by ExecuteAsync in plan mode if exitProcess
// returns (only in tests).
var errPlanPrinted = errors.New("plan printed")

// printPlan writes jg as indented JSON and exits.
func printPlan(jobName string, jg *jobgraph.JobGraph) error {
	data, err := json.MarshalIndent(jg, "", "  ")
	if err != nil {
		return fmt.Errorf("strom: job %q: encoding the JobGraph: %w", jobName, err)
	}
	if _, err := planOutput.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("strom: job %q: printing the JobGraph: %w", jobName, err)
	}
	exitProcess(0)
	return errPlanPrinted
}

// remoteCallTimeout bounds the REST calls of JobClient methods that take
// no context (Cancel, Status, TaskStates, Metrics, Close).
const remoteCallTimeout = 30 * time.Second

// remoteJob is a JobClient's job on a cluster, reached over REST.
type remoteJob struct {
	c      *restclient.Client
	id     string
	name   string
	ctx    context.Context // ExecuteAsync's: its end cancels the job
	logger *slog.Logger

	// life ends with close: the background goroutines stop.
	life      context.Context
	endLife   context.CancelFunc
	wg        sync.WaitGroup
	watchOnce sync.Once
	done      chan struct{} // closed once the job is known to have ended
	doneOnce  sync.Once
	closeOnce sync.Once
}

// submit sends the job to cfg.Cluster and returns its client.
func submit(ctx context.Context, jobName string, cfg Config, jg *jobgraph.JobGraph) (*JobClient, error) {
	c, err := restclient.New(cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("strom: job %q: cluster (Config.Cluster or $%s): %w", jobName, ClusterEnv, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("strom: job %q: finding this program's executable to submit: %w", jobName, err)
	}
	id, err := c.SubmitJob(ctx, restclient.Submission{JobGraph: jg, Binary: exe, Options: restclient.RunOptions{
		Args: os.Args[1:], SavepointPath: cfg.FromSavepoint, AllowNonRestoredState: cfg.AllowNonRestoredState}})
	if err != nil {
		c.CloseIdleConnections()
		return nil, fmt.Errorf("strom: %w", err)
	}
	cfg.Logger.Info("strom: job submitted", "job", jobName, "job_id", id, "cluster", c.URL())
	r := &remoteJob{c: c, id: id, name: jobName, ctx: ctx, logger: cfg.Logger, done: make(chan struct{})}
	r.life, r.endLife = context.WithCancel(context.Background())
	// As embedded: the end of ExecuteAsync's context cancels the job.
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-ctx.Done():
			r.cancel()
		case <-r.life.Done():
		}
	}()
	return &JobClient{remote: r, name: jobName, savepointDir: cfg.SavepointDir}, nil
}

// call is a context for a REST call of a method that takes none.
func (r *remoteJob) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), remoteCallTimeout)
}

func (r *remoteJob) cancel() {
	ctx, cancel := r.call()
	defer cancel()
	if err := r.c.CancelJob(ctx, r.id); err != nil {
		r.logger.Warn("strom: cancelling job", "job", r.name, "job_id", r.id, "err", err)
	}
}

func (r *remoteJob) ended() { r.doneOnce.Do(func() { close(r.done) }) }

// doneChan watches the job's result in the background (until Close) so
// that the channel closes when the job ends.
func (r *remoteJob) doneChan() <-chan struct{} {
	r.watchOnce.Do(func() {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if _, err := r.c.WaitJob(r.life, r.id); err == nil {
				r.ended()
			}
		}()
	})
	return r.done
}

func (r *remoteJob) status() string {
	ctx, cancel := r.call()
	defer cancel()
	d, err := r.c.Job(ctx, r.id)
	if err != nil {
		r.logger.Warn("strom: job status", "job", r.name, "job_id", r.id, "err", err)
		return "UNKNOWN"
	}
	return d.State
}

func (r *remoteJob) details() *restclient.JobDetails {
	ctx, cancel := r.call()
	defer cancel()
	d, err := r.c.Job(ctx, r.id)
	if err != nil {
		r.logger.Warn("strom: job details", "job", r.name, "job_id", r.id, "err", err)
		return nil
	}
	return d
}

func (r *remoteJob) taskStates() map[string]int {
	m := map[string]int{}
	if d := r.details(); d != nil {
		for st, n := range d.StatusCounts {
			if n > 0 {
				m[st] = n
			}
		}
	}
	return m
}

// metrics are per job vertex (a chain of operators) over REST: the counts
// the REST API has.
func (r *remoteJob) metrics() []OperatorResult {
	d := r.details()
	if d == nil {
		return nil
	}
	out := make([]OperatorResult, 0, len(d.Vertices))
	for _, v := range d.Vertices {
		out = append(out, OperatorResult{Name: v.Name, Parallelism: v.Parallelism, RecordsIn: v.Metrics.ReadRecords, RecordsOut: v.Metrics.WriteRecords})
	}
	return out
}

// wait polls the job's result and maps it as embedded Wait does.
func (r *remoteJob) wait(ctx context.Context) (*JobResult, error) {
	res, err := r.c.WaitJob(ctx, r.id)
	if err != nil {
		return nil, fmt.Errorf("strom: waiting for job %q: %w", r.name, err)
	}
	r.ended()
	out := &JobResult{JobID: r.id, JobName: r.name, Duration: res.Runtime(), Operators: operatorsOf(res.Accumulators)}
	if n, err := strconv.Atoi(res.Accumulators["numRestarts"]); err == nil {
		out.Restarts = n
	}
	if out.Operators == nil { // a cluster that reports no per-operator counts
		out.Operators = r.metrics()
	}
	cctx, cancel := r.call()
	if st, err := r.c.Checkpoints(cctx, r.id); err == nil {
		out.CheckpointsCompleted = st.Counts.Completed
	}
	cancel()
	switch res.ApplicationStatus {
	case "SUCCEEDED":
		return out, nil
	case "CANCELED":
		if r.ctx.Err() != nil {
			return out, fmt.Errorf("strom: job %q: %w: %w", r.name, ErrJobCanceled, context.Cause(r.ctx))
		}
		return out, fmt.Errorf("strom: job %q: %w", r.name, ErrJobCanceled)
	default:
		msg := res.Failure()
		if msg == "" {
			msg = "status " + res.ApplicationStatus
		}
		return out, fmt.Errorf("strom: %w: job %q (%s): %s", ErrJobFailed, r.name, r.id, msg)
	}
}

func (r *remoteJob) savepoint(ctx context.Context, targetDir string, stop, drain bool) (string, error) {
	var (
		p   string
		err error
	)
	if stop {
		p, err = r.c.StopWithSavepoint(ctx, r.id, targetDir, drain)
	} else {
		p, err = r.c.TriggerSavepoint(ctx, r.id, targetDir)
	}
	if err != nil {
		return "", fmt.Errorf("strom: %w", err)
	}
	return p, nil
}

// close cancels the job if it has not ended (the embedded contract of
// Close) and stops the client's goroutines and connections.
func (r *remoteJob) close() {
	r.closeOnce.Do(func() {
		select {
		case <-r.done:
		default:
			ctx, cancel := r.call()
			res, err := r.c.JobResult(ctx, r.id)
			cancel()
			if err == nil && res == nil {
				r.cancel()
			}
		}
		r.endLife()
		r.wg.Wait()
		r.c.CloseIdleConnections()
	})
}

// serveWorker runs this process as the job worker a TaskManager started
// (jobworker.Env): it serves the job's tasks until the TaskManager stops
// it, then ends the process — the program's code after Execute is for
// the client that submitted the job, not for its workers.
func serveWorker(ctx context.Context, job *jobcode.Job) error {
	if err := jobworker.Serve(ctx, job); err != nil {
		// The worker could not start serving (or stopped on an error):
		// the program's main decides, as for any failed Execute; its
		// TaskManager sees the process end.
		return fmt.Errorf("strom: job %q: %w", job.Name, err)
	}
	exitProcess(0)
	return errWorkerStopped
}

// errWorkerStopped is returned by Execute in a job worker if exitProcess
// returns (only in tests).
var errWorkerStopped = errors.New("job worker stopped")

// operatorsOf reads the per-operator record counts a Strom cluster puts in
// a job's accumulators (numRecordsIn.NAME, numRecordsOut.NAME), in name
// order; nil if there are none.
func operatorsOf(acc map[string]string) []OperatorResult {
	byName := map[string]*OperatorResult{}
	var names []string
	for k, v := range acc {
		name, in := strings.CutPrefix(k, "numRecordsIn.")
		if !in {
			var out bool
			if name, out = strings.CutPrefix(k, "numRecordsOut."); !out {
				continue
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		op := byName[name]
		if op == nil {
			op = &OperatorResult{Name: name}
			byName[name] = op
			names = append(names, name)
		}
		if in {
			op.RecordsIn = n
		} else {
			op.RecordsOut = n
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	out := make([]OperatorResult, 0, len(names))
	for _, n := range names {
		out = append(out, *byName[n])
	}
	return out
}
