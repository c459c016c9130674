package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/strom-dev/strom/internal/datamux"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobworker"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/taskmanager"
)

// TaskManagerConfig configures a TaskManager process.
type TaskManagerConfig struct {
	// JobManager is the JobManager's RPC address (host:port). Required.
	JobManager string
	// ID names the TaskManager (default: tm-<random>). A provider that
	// starts TaskManagers gives each its worker id (STROM_WORKER_ID).
	ID    string
	Slots int
	// RPCAddress and DataAddress are where it listens for the roles and
	// for other TaskManagers' data connections (default: loopback, a
	// free port each); AdvertisedHost is the host it is reached at when
	// they bind a wildcard.
	RPCAddress, DataAddress, AdvertisedHost string
	// Dir keeps fetched binaries and the job workers' logs (default: a
	// temporary directory, removed on Close).
	Dir string
	// DirectDataConnections makes each job worker dial peers' data ports
	// itself: one TCP connection per pair of workers, per job and
	// direction, each handed to its worker whole (no copy: less CPU).
	// By default the TaskManager keeps ONE connection per peer
	// TaskManager and multiplexes every job's streams over it
	// (internal/datamux), relaying them to its workers.
	DirectDataConnections bool
	Logger                *slog.Logger
}

// TaskManager is a running TaskManager process's role and listeners.
type TaskManager struct {
	cfg      TaskManagerConfig
	log      *slog.Logger
	net      *rpc.Network
	data     net.Listener
	mux      *datamux.Mux
	workers  net.Listener // the workers' stream requests (nil in direct mode)
	launcher *jobworker.Launcher
	tm       *taskmanager.TaskManager
	tmpDir   string
	wg       sync.WaitGroup
}

// StartTaskManager starts a TaskManager, which registers its slots with
// the JobManager's ResourceManager; Run serves it.
func StartTaskManager(cfg TaskManagerConfig) (_ *TaskManager, err error) {
	if cfg.JobManager == "" {
		return nil, errors.New("taskmanager: no JobManager address (--jobmanager host:port)")
	}
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("taskmanager: %d slots: at least one", cfg.Slots)
	}
	if cfg.ID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ID = "tm-" + hex.EncodeToString(b[:])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &TaskManager{cfg: cfg, log: cfg.Logger.With("task_manager", cfg.ID)}
	defer func() {
		if err != nil {
			t.closeAll()
		}
	}()
	if cfg.Dir == "" {
		if t.tmpDir, err = os.MkdirTemp("", "strom-taskmanager-*"); err != nil {
			return nil, fmt.Errorf("taskmanager: %w", err)
		}
		cfg.Dir = t.tmpDir
	}
	bind := cfg.DataAddress
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	if t.data, err = net.Listen("tcp", bind); err != nil {
		return nil, fmt.Errorf("taskmanager: data plane: %w", err)
	}
	dataAddr := t.data.Addr().String()
	if cfg.AdvertisedHost != "" {
		_, port, _ := net.SplitHostPort(dataAddr)
		dataAddr = net.JoinHostPort(cfg.AdvertisedHost, port)
	}
	rpcBind := cfg.RPCAddress
	if rpcBind == "" {
		rpcBind = "127.0.0.1:0"
	}
	adv, err := advertise(rpcBind, cfg.AdvertisedHost)
	if err != nil {
		return nil, fmt.Errorf("taskmanager: %w", err)
	}
	if t.net, err = rpc.NewNetwork(rpc.NetworkOptions{Bind: rpcBind, Advertise: adv, Logger: t.log}); err != nil {
		return nil, fmt.Errorf("taskmanager: %w", err)
	}
	lcfg := jobworker.LauncherConfig{
		TaskManager: cfg.ID, DataAddress: dataAddr, Dir: cfg.Dir, Logger: t.log,
		Fetch: fetcher(cfg.JobManager),
	}
	if !cfg.DirectDataConnections {
		lcfg.DataSocket = filepath.Join(cfg.Dir, "data.sock")
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("taskmanager: %w", err)
		}
		_ = os.Remove(lcfg.DataSocket) // left by a TaskManager killed in this directory
		if t.workers, err = net.Listen("unix", lcfg.DataSocket); err != nil {
			return nil, fmt.Errorf("taskmanager: the job workers' data socket: %w", err)
		}
	}
	if t.launcher, err = jobworker.NewLauncher(lcfg); err != nil {
		return nil, err
	}
	// The data port serves both modes' connections, so TaskManagers of
	// either mode work together: sessions from peers, and direct
	// connections from peers' workers.
	if t.mux, err = datamux.New(datamux.Config{Address: dataAddr, Hand: t.launcher.HandConn, Logger: t.log}); err != nil {
		return nil, fmt.Errorf("taskmanager: %w", err)
	}
	if t.tm, err = taskmanager.New(taskmanager.Config{
		ID: cfg.ID, Address: t.net.Addr() + "/taskmanager", Slots: cfg.Slots,
		ResourceManager: cfg.JobManager + "/resourcemanager", Transport: t.net,
		Code: jobcode.NewRegistry(), Network: network.NewRegistry(), DataAddress: dataAddr,
		Workers: t.launcher, Logger: t.log,
	}); err != nil {
		return nil, err
	}
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.mux.Serve(t.data) }()
	if t.workers != nil {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); t.mux.ServeWorkers(t.workers) }()
	}
	t.log.Info("taskmanager started", "jobmanager", cfg.JobManager, "slots", cfg.Slots, "rpc", t.net.Addr(), "data", dataAddr,
		"direct_data_connections", cfg.DirectDataConnections, "dir", cfg.Dir)
	return t, nil
}

// DataSessions is the number of multiplexed connections this TaskManager
// holds to peer TaskManagers (datamux.Mux.Sessions): in steady state one
// per peer it exchanges data with, none in direct mode.
func (t *TaskManager) DataSessions() int { return t.mux.Sessions() }

// ID is the TaskManager's id.
func (t *TaskManager) ID() string { return t.cfg.ID }

// Run serves until ctx ends, then stops the job workers and listeners.
func (t *TaskManager) Run(ctx context.Context) {
	t.tm.Run(ctx)
	t.closeAll()
}

func (t *TaskManager) closeAll() {
	if t.launcher != nil {
		t.launcher.Close()
	}
	if t.data != nil {
		_ = t.data.Close()
	}
	if t.workers != nil {
		_ = t.workers.Close()
	}
	if t.mux != nil {
		_ = t.mux.Close()
	}
	t.wg.Wait()
	if t.net != nil {
		_ = t.net.Close()
	}
	if t.tmpDir != "" {
		_ = os.RemoveAll(t.tmpDir)
	}
}

// fetcher fetches job binaries from the JobManager's RPC listener.
func fetcher(jobManager string) func(ctx context.Context, id string, w io.Writer) error {
	client := rpc.H2CClient()
	return func(ctx context.Context, id string, w io.Writer) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+jobManager+BinaryPath+id, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("from the JobManager at %s: %w", jobManager, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("from the JobManager at %s: %s: %s", jobManager, resp.Status, msg)
		}
		_, err = io.Copy(w, resp.Body)
		return err
	}
}
