package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/process"
	"github.com/strom-dev/strom/internal/resourcemanager/provider"
)

// `strom cluster start` runs a whole session cluster on this machine from
// one command, in the foreground: the JobManager in this process and the
// TaskManagers as child processes of it, supervised by
// provider.LocalProcesses (a TaskManager that dies is started again).
// DIR/cluster.json names the running cluster so that `strom cluster stop`
// (from another shell) finds it, and so that a second start on the same
// DIR refuses instead of fighting the first over ports and files.

// clusterFile is the name of the file in the cluster directory that
// describes the running cluster.
const clusterFile = "cluster.json"

// clusterInfo is the content of cluster.json.
type clusterInfo struct {
	PID  int    `json:"pid"`
	REST string `json:"rest"`
	RPC  string `json:"rpc"`
}

// stopTimeout bounds how long `strom cluster stop` waits for the cluster
// process to exit: longer than a TaskManager's SIGTERM grace
// (provider.DefaultStopGrace), so a slow TaskManager does not make stop
// report a failure that is not one.
const stopTimeout = 30 * time.Second

func defaultClusterDir() string { return filepath.Join(os.TempDir(), "strom-cluster") }

func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Start or stop a local session cluster (a JobManager and TaskManagers)",
	}
	cmd.AddCommand(clusterStartCmd(), clusterStopCmd())
	return cmd
}

type clusterStartOptions struct {
	taskManagers, slots int
	rest, rpc, dir      string
}

func clusterStartCmd() *cobra.Command {
	var o clusterStartOptions
	cmd := &cobra.Command{
		Use:   "start --taskmanagers N",
		Short: "Run a JobManager here and N TaskManager child processes, until SIGINT or SIGTERM",
		Long: `Run a session cluster in the foreground: the JobManager (REST API and RPC) in
this process and N TaskManagers as child processes, each with its log in
DIR/logs/<id>.log. A TaskManager that exits is started again after a short
delay. Prints "cluster ready: rest=URL rpc=HOST:PORT" once the JobManager
listens and the TaskManagers are started, and stops everything on SIGINT or
SIGTERM ('strom cluster stop'). DIR/cluster.json names the running cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runCluster(ctx, cmd, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.taskManagers, "taskmanagers", 1, "number of TaskManager processes")
	f.IntVar(&o.slots, "slots", 1, "task slots of each TaskManager")
	f.StringVar(&o.rest, "rest-address", process.DefaultRESTAddress, "where the REST API listens (host:port; port 0 picks one)")
	f.StringVar(&o.rpc, "rpc-address", process.DefaultRPCAddress, "where TaskManagers reach the JobManager (host:port; port 0 picks one)")
	f.StringVar(&o.dir, "dir", defaultClusterDir(), "the cluster's directory: cluster.json, logs, job binaries")
	f.String("log-level", "info", "debug, info, warn or error")
	return cmd
}

// runCluster runs the cluster until ctx ends. Shutdown is in the reverse
// order of start: TaskManagers first (they would otherwise log the
// JobManager's disappearance and try to reconnect), then the JobManager,
// then cluster.json, whose presence says that something still runs.
func runCluster(ctx context.Context, cmd *cobra.Command, o clusterStartOptions) error {
	if o.taskManagers < 1 || o.slots < 1 {
		return fmt.Errorf("cluster start: --taskmanagers and --slots must be at least 1 (got %d and %d)", o.taskManagers, o.slots)
	}
	log := roleLogger(cmd)
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	infoPath := filepath.Join(o.dir, clusterFile)
	// Refuse before opening any port: the running cluster may be on the
	// same ones, and its error would be less clear than this.
	if info, err := readClusterInfo(infoPath); err == nil && processAlive(info.PID) {
		return fmt.Errorf("cluster start: a cluster already runs with directory %s (pid %d, rest %s); stop it with 'strom cluster stop --dir %s'", o.dir, info.PID, info.REST, o.dir)
	} else if err == nil {
		_ = os.Remove(infoPath) // left by a cluster that was killed
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cluster start: finding this executable for the TaskManagers: %w", err)
	}
	// The ResourceManager owns the provider's events: it starts more
	// TaskManagers when jobs are short of slots and stops those it
	// started once idle; the N started here are the cluster's own and
	// stay.
	var tms *provider.LocalProcesses
	jm, err := process.StartJobManager(process.JobManagerConfig{
		RPCAddress: o.rpc, RESTAddress: o.rest, Dir: o.dir, Logger: log,
		SlotsPerWorker: o.slots,
		NewProvider: func(rpc string) (provider.Provider, error) {
			p, err := provider.NewLocalProcesses(provider.LocalConfig{
				Command: []string{exe, "taskmanager", "--jobmanager", rpc, "--slots", "{slots}", "--id", "{id}"},
				LogDir:  filepath.Join(o.dir, "logs"),
				// A cluster on a developer's machine: a TaskManager that
				// crashed should be back before anyone wonders why a job
				// waits.
				RestartDelay: 500 * time.Millisecond,
				Logger:       log,
			})
			tms = p
			return p, err
		},
	})
	if tms != nil {
		// After the JobManager (defers run last first): its
		// ResourceManager uses the provider until it stops.
		defer func() { _ = tms.Close() }()
	}
	if err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	defer jm.Close()
	info := clusterInfo{PID: os.Getpid(), REST: jm.RESTURL(), RPC: jm.RPCAddress()}
	if err := writeClusterInfo(infoPath, info); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cluster start: another cluster started with directory %s meanwhile", o.dir)
	} else if err != nil {
		return fmt.Errorf("cluster start: %w", err)
	}
	defer os.Remove(infoPath) // after the processes are gone (defers run last first)

	if _, err := tms.Request(ctx, o.taskManagers, o.slots); err != nil {
		return fmt.Errorf("cluster start: starting TaskManagers: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "cluster ready: rest=%s rpc=%s taskmanagers=%d dir=%s\n", info.REST, info.RPC, o.taskManagers, o.dir)
	<-ctx.Done()
	log.Info("cluster stopping")
	return nil
}

func clusterStopCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster 'strom cluster start' runs with the same --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stopCluster(cmd.Context(), cmd, dir, stopTimeout)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultClusterDir(), "the cluster's directory")
	return cmd
}

// stopCluster sends SIGTERM to the cluster process named in dir and waits
// until it is gone. A cluster.json whose process is gone is stale (the
// cluster was killed): it is removed, and that is an error, since nothing
// was stopped.
func stopCluster(ctx context.Context, cmd *cobra.Command, dir string, timeout time.Duration) error {
	path := filepath.Join(dir, clusterFile)
	info, err := readClusterInfo(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cluster stop: no cluster runs with directory %s (no %s)", dir, clusterFile)
	}
	if err != nil {
		return fmt.Errorf("cluster stop: %w", err)
	}
	if !processAlive(info.PID) {
		_ = os.Remove(path)
		return fmt.Errorf("cluster stop: no cluster runs with directory %s: process %d is gone (removed its stale %s)", dir, info.PID, clusterFile)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Stopping cluster (pid %d, rest %s).\n", info.PID, info.REST)
	if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("cluster stop: signalling process %d: %w", info.PID, err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for processAlive(info.PID) {
		select {
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("cluster stop: process %d still runs %v after SIGTERM", info.PID, timeout)
		case <-ctx.Done():
			return fmt.Errorf("cluster stop: %w", ctx.Err())
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), "Cluster stopped.")
	return nil
}

// processAlive says whether pid names a running process. A zombie (exited,
// not yet reaped by its parent) counts as gone: it holds no port and runs
// nothing, and the parent of a stopped cluster may be a shell that reaps
// it only later.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) // no /proc: trust kill
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces and parentheses: take the last ')'.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 >= len(stat) || stat[i+2] != 'Z'
		}
	}
	return true
}

func readClusterInfo(path string) (clusterInfo, error) {
	var info clusterInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("reading %s: %w", path, err)
	}
	return info, nil
}

// writeClusterInfo creates the file atomically and exclusively (a hard
// link of a complete temporary file): `strom cluster stop` never reads
// half of it, and of two starts racing on one directory only one gets it
// (the other's error wraps fs.ErrExist).
func writeClusterInfo(path string, info clusterInfo) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
