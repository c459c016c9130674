package strom

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/strom-dev/strom/internal/approle"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/process"
)

// Application mode (Flink's): the job binary runs a cluster dedicated to
// its own job, with no `strom` executable and no session cluster.
//
//	myjob jobmanager [--rpc-address H:P] [--rest-address H:P] [--advertised-host H] [--dir DIR] [-- PROGRAM ARGS]
//	myjob taskmanager --jobmanager H:P [--slots N] [--id ID] [--rpc-address H:P] [--data-address H:P] [--advertised-host H] [--dir DIR] [-- PROGRAM ARGS]
//
// The contract: when the process starts with os.Args[1] "jobmanager" or
// "taskmanager", package strom takes that word and the role's flags out
// of os.Args before main runs (a package initializer), leaving
// os.Args = [program, PROGRAM ARGS...] — the arguments after "--" — so the
// program parses its own flags as always and builds its graph. Its
// Execute (or ExecuteAsync) then does not run the job embedded or submit
// it elsewhere; it plays the role:
//
//   - jobmanager starts a JobManager in this process (Dispatcher,
//     ResourceManager, REST API), prints "jobmanager ready: rpc=H:P
//     rest=URL", and submits the job to itself as a job binary would
//     (session mode, submit.go): this executable, the JobGraph with its
//     checkpoint and restart settings, and PROGRAM ARGS, with which every
//     job-worker process runs main (they carry no role word, so the workers
//     run main in job-worker mode). Execute returns the job's result when
//     it ends, as in session mode, after stopping the JobManager; the
//     program's code after Execute runs here, as in the client of a
//     session cluster (a program that exits 1 on Execute's error exits 0
//     on FINISHED and 1 otherwise). SIGINT or SIGTERM cancels the job:
//     Execute returns ErrJobCanceled.
//   - taskmanager starts a TaskManager that registers its slots with the
//     JobManager at --jobmanager, prints "taskmanager ready: id=ID", and
//     serves until SIGINT or SIGTERM; then the process exits with status 0
//     (with status 1 if it could not start). It runs the job's tasks in
//     job-worker processes of this same executable (the TaskManager uses
//     its own executable when its sha256 is the job's binary id). The
//     program's graph is built but not used: PROGRAM ARGS matter only in
//     so far as main needs them to reach Execute.
//
// The role's flags are Strom's, parsed with a flag set of their own: an
// unknown one is an error (Execute fails), and so is an argument before
// "--" that is not a flag. Plan mode (PrintPlanEnv) and job-worker mode
// come first, and a process started in either never takes a role.

// The role words of application mode.
const (
	roleJobManager  = approle.JobManager
	roleTaskManager = approle.TaskManager
)

// The role is taken before main runs (internal/approle keeps it, so that
// the strom CLI, whose own commands bear these names, can give it back).
func init() {
	approle.Take(os.Getenv(workerEnv) != "" || os.Getenv(PrintPlanEnv) == "1")
}

// parseRoleFlags parses a role's arguments with fs, where every
// argument must be a flag of fs.
func parseRoleFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard) // the error says it; usage is in the package doc
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("application mode: %s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("application mode: %s: unexpected argument %q (the program's arguments go after \"--\")", fs.Name(), fs.Arg(0))
	}
	return nil
}

// readyOutput is where the roles print their ready line; tests replace it.
var readyOutput io.Writer = os.Stdout

// runApplicationJobManager starts a JobManager in this process and submits
// the job to it. The JobClient it returns stops the JobManager when
// closed.
func runApplicationJobManager(ctx context.Context, jobName string, cfg Config, jg *jobgraph.JobGraph, roleArgs []string) (_ *JobClient, err error) {
	jcfg := process.JobManagerConfig{Logger: cfg.Logger}
	fs := flag.NewFlagSet(roleJobManager, flag.ContinueOnError)
	fs.StringVar(&jcfg.RPCAddress, "rpc-address", process.DefaultRPCAddress, "where TaskManagers reach the JobManager")
	fs.StringVar(&jcfg.RESTAddress, "rest-address", process.DefaultRESTAddress, "where the REST API listens")
	fs.StringVar(&jcfg.AdvertisedHost, "advertised-host", "", "the host TaskManagers reach the RPC address at")
	fs.StringVar(&jcfg.Dir, "dir", "", "directory for the job binary (default: a temporary one, removed at the end)")
	fs.StringVar(&jcfg.SavepointDir, "savepoint-dir", cfg.SavepointDir, "default target directory of savepoints")
	if err := parseRoleFlags(fs, roleArgs); err != nil {
		return nil, fmt.Errorf("strom: job %q: %w", jobName, err)
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(cleanup) {
				f()
			}
		}
	}()
	if jcfg.Dir == "" {
		dir, err := os.MkdirTemp("", "strom-application-*")
		if err != nil {
			return nil, fmt.Errorf("strom: job %q: application mode: %w", jobName, err)
		}
		jcfg.Dir = dir
		cleanup = append(cleanup, func() { _ = os.RemoveAll(dir) })
	}
	jm, err := process.StartJobManager(jcfg)
	if err != nil {
		return nil, fmt.Errorf("strom: job %q: application mode: %w", jobName, err)
	}
	cleanup = append(cleanup, jm.Close)
	// The signal ends the context the job runs under: the job is
	// cancelled (submit's watcher), Wait returns, and main ends as it
	// does after a cancelled job.
	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	cleanup = append(cleanup, stopSignals)
	fmt.Fprintf(readyOutput, "jobmanager ready: rpc=%s rest=%s\n", jm.RPCAddress(), jm.RESTURL())
	cfg.Cluster = jm.RESTURL()
	jc, err := submit(sigCtx, jobName, cfg, jg)
	if err != nil {
		return nil, err
	}
	jc.release = func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}
	return jc, nil
}

// runApplicationTaskManager runs a TaskManager until SIGINT or SIGTERM
// and ends the process: the program's code after Execute is for the
// job's client, which a TaskManager is not.
func runApplicationTaskManager(ctx context.Context, jobName string, cfg Config, roleArgs []string) error {
	err := serveApplicationTaskManager(ctx, cfg, roleArgs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strom: job %q: %v\n", jobName, err)
		exitProcess(1)
		return err
	}
	exitProcess(0)
	return errTaskManagerStopped
}

// errTaskManagerStopped is returned by Execute in application mode's
// TaskManager if exitProcess returns (only in tests).
var errTaskManagerStopped = errors.New("taskmanager stopped")

func serveApplicationTaskManager(ctx context.Context, cfg Config, roleArgs []string) error {
	tcfg := process.TaskManagerConfig{Logger: cfg.Logger}
	fs := flag.NewFlagSet(roleTaskManager, flag.ContinueOnError)
	fs.StringVar(&tcfg.JobManager, "jobmanager", "", "the JobManager's RPC address (host:port; required)")
	fs.IntVar(&tcfg.Slots, "slots", 1, "number of task slots")
	fs.StringVar(&tcfg.ID, "id", os.Getenv("STROM_WORKER_ID"), "the TaskManager's id")
	fs.StringVar(&tcfg.RPCAddress, "rpc-address", "", "where the JobManager reaches it")
	fs.StringVar(&tcfg.DataAddress, "data-address", "", "where other TaskManagers send it data")
	fs.StringVar(&tcfg.AdvertisedHost, "advertised-host", "", "the host others reach it at")
	fs.StringVar(&tcfg.Dir, "dir", "", "directory for job workers' files (default: a temporary one)")
	if err := parseRoleFlags(fs, roleArgs); err != nil {
		return err
	}
	tm, err := process.StartTaskManager(tcfg)
	if err != nil {
		return fmt.Errorf("application mode: %w", err)
	}
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(readyOutput, "taskmanager ready: id=%s\n", tm.ID())
	tm.Run(sigCtx)
	return nil
}

func appRoleIs(name string) bool { r, _ := approle.Role(); return r == name }

func appRoleArgs() []string { _, a := approle.Role(); return a }
