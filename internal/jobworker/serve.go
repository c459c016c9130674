package jobworker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/strom-dev/strom/internal/datamux"
	"github.com/strom-dev/strom/internal/fdpass"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/taskmanager"
)

// InWorker says this process was started as a job worker (Env is set).
func InWorker() bool { return os.Getenv(Env) != "" }

// Serve runs this process as the job worker its parent TaskManager
// started (Env), for job, whose code the program just built: it serves
// the tasks the parent routes to it until the parent stops it or dies,
// or ctx ends. job.ID is replaced by the id the parent gave. It returns
// nil when told to stop.
func Serve(ctx context.Context, job *jobcode.Job) error {
	var sp spec
	if err := json.Unmarshal([]byte(os.Getenv(Env)), &sp); err != nil {
		return fmt.Errorf("job worker: $%s: %w", Env, err)
	}
	logger := job.Config.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("job_id", sp.JobID, "task_manager", sp.TaskManager)
	job.ID = sp.JobID
	job.Config.Logger = logger
	// fd 3: the socket to the parent (exec.Cmd.ExtraFiles[0]).
	ln, err := fdpass.Listen(os.NewFile(3, "strom-job-worker"), sp.DataAddress)
	if err != nil {
		return fmt.Errorf("job worker: %w", err)
	}
	// Streams to peers: through the parent's connection to each peer
	// TaskManager, or (direct mode) a connection of this worker's own.
	dial := fdpass.Dialer(sp.JobID, nil)
	if sp.DataSocket != "" {
		dial = datamux.WorkerDialer(sp.DataSocket, sp.JobID)
	}
	data, err := tcp.Listen(tcp.Config{Listener: ln, Dial: dial, Logger: logger})
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("job worker: data plane: %w", err)
	}
	defer data.Close()
	n, err := rpc.NewNetwork(rpc.NetworkOptions{Logger: logger})
	if err != nil {
		return fmt.Errorf("job worker: %w", err)
	}
	defer n.Close()
	code := jobcode.NewRegistry()
	if err := code.Register(job); err != nil {
		return fmt.Errorf("job worker: %w", err)
	}
	addr := n.Addr() + "/taskmanager"
	tm, err := taskmanager.New(taskmanager.Config{
		ID: sp.TaskManager, Address: addr, Transport: n, Code: code,
		Network: network.NewRegistry(), Data: data, Logger: logger, JobWorker: true,
	})
	if err != nil {
		return fmt.Errorf("job worker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ln.Gone():
			logger.Info("job worker: the TaskManager closed its socket; stopping")
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := ln.Hello(addr); err != nil {
		return fmt.Errorf("job worker: telling the TaskManager where it listens: %w", err)
	}
	logger.Info("job worker serving", "address", addr)
	tm.Run(ctx)
	return nil
}
