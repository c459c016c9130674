package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strom-dev/strom/internal/process"
)

// The cluster's processes. Each prints one line to stdout once it
// listens — "jobmanager ready: rpc=HOST:PORT rest=URL" or "taskmanager
// ready: id=ID rpc=HOST:PORT" — which scripts and `strom cluster start`
// wait for, logs to stderr, and runs until SIGINT or SIGTERM.

func jobmanagerCmd() *cobra.Command {
	var cfg process.JobManagerConfig
	cmd := &cobra.Command{
		Use:   "jobmanager",
		Short: "Run a JobManager: Dispatcher, ResourceManager, JobMasters and the REST API",
		Long: `Run a JobManager process: the Dispatcher with the REST API (port 8081 by
default), the ResourceManager that TaskManagers register with and a JobMaster
per job (RPC, port 6123 by default). Both listen on loopback unless an
address says otherwise. Submit jobs with 'strom run BINARY'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(os.TempDir(), "strom-jobmanager")
			}
			cfg.Logger = roleLogger(cmd)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			jm, err := process.StartJobManager(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "jobmanager ready: rpc=%s rest=%s\n", jm.RPCAddress(), jm.RESTURL())
			<-ctx.Done()
			jm.Close()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RPCAddress, "rpc-address", process.DefaultRPCAddress, "where TaskManagers reach the JobManager (host:port; port 0 picks one)")
	f.StringVar(&cfg.RESTAddress, "rest-address", process.DefaultRESTAddress, "where the REST API listens (host:port; port 0 picks one)")
	f.StringVar(&cfg.AdvertisedHost, "advertised-host", "", "the host TaskManagers reach the RPC address at, when it binds a wildcard")
	f.StringVar(&cfg.Dir, "dir", "", "directory for uploaded job binaries (default $TMPDIR/strom-jobmanager)")
	f.StringVar(&cfg.SavepointDir, "savepoint-dir", "", "default target directory of savepoints")
	f.Int64Var(&cfg.MaxBinaryBytes, "max-binary-bytes", 0, "largest job binary accepted (0: 512 MiB)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", time.Second, "how often TaskManagers are asked for a heartbeat")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 5*time.Second, "how long a silent TaskManager is given before its tasks are failed")
	f.DurationVar(&cfg.SlotRequestTimeout, "slot-request-timeout", 5*time.Minute, "how long a job waits for slots the cluster is short of")
	f.String("log-level", "info", "debug, info, warn or error")
	return cmd
}

func taskmanagerCmd() *cobra.Command {
	var cfg process.TaskManagerConfig
	cmd := &cobra.Command{
		Use:   "taskmanager --jobmanager HOST:PORT",
		Short: "Run a TaskManager that offers its slots to a JobManager",
		Long: `Run a TaskManager process: it registers its slots with the JobManager's
ResourceManager and runs each job's tasks in a child process of that job's
binary, fetched from the JobManager, so that a crashing job takes down
nothing else. Its RPC and data ports listen on loopback unless addresses
say otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.ID == "" {
				cfg.ID = os.Getenv("STROM_WORKER_ID") // set by a resource provider
			}
			cfg.Logger = roleLogger(cmd)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			tm, err := process.StartTaskManager(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "taskmanager ready: id=%s\n", tm.ID())
			tm.Run(ctx)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.JobManager, "jobmanager", os.Getenv("STROM_JOBMANAGER_RPC"), "the JobManager's RPC address (host:port)")
	f.IntVar(&cfg.Slots, "slots", 1, "number of task slots")
	f.StringVar(&cfg.ID, "id", "", "the TaskManager's id (default: $STROM_WORKER_ID, else tm-<random>)")
	f.StringVar(&cfg.RPCAddress, "rpc-address", "", "where the JobManager reaches it (default 127.0.0.1:0)")
	f.StringVar(&cfg.DataAddress, "data-address", "", "where other TaskManagers send it data (default 127.0.0.1:0)")
	f.StringVar(&cfg.AdvertisedHost, "advertised-host", "", "the host others reach it at, when its addresses bind a wildcard")
	f.StringVar(&cfg.Dir, "dir", "", "directory for fetched job binaries and job workers' logs (default: a temporary one)")
	f.BoolVar(&cfg.DirectDataConnections, "direct-data-connections", false,
		"job workers connect to peers themselves (one connection per pair of workers, per job; less CPU) instead of one multiplexed connection per pair of TaskManagers")
	f.String("log-level", "info", "debug, info, warn or error")
	return cmd
}

// roleLogger logs to stderr, as text, at --log-level.
func roleLogger(cmd *cobra.Command) *slog.Logger {
	level := slog.LevelInfo
	if s, _ := cmd.Flags().GetString("log-level"); s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	l := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(l)
	return l
}
