// Package process assembles the roles into the processes of a cluster:
// JobManager (Dispatcher, ResourceManager, a JobMaster per job, the REST
// API and the blob server for job binaries) and TaskManager (slots, and
// a worker process per job that runs the job's tasks). `strom
// jobmanager`, `strom taskmanager`, `strom cluster start` and a job
// binary's application mode run them; tests start them in child
// processes. The roles themselves know nothing of processes: this is
// the one place where listeners are opened and addresses are decided.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/dispatcher"
	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/jobmaster"
	"github.com/strom-dev/strom/internal/resourcemanager"
	"github.com/strom-dev/strom/internal/resourcemanager/provider"
	"github.com/strom-dev/strom/internal/rest"
	"github.com/strom-dev/strom/internal/rpc"
)

// Default addresses: Flink's ports, on loopback — a cluster that runs
// uploaded binaries is opened to other machines only on purpose.
const (
	DefaultRPCAddress  = "127.0.0.1:6123"
	DefaultRESTAddress = "127.0.0.1:8081"
)

// BinaryPath is where the JobManager's RPC listener serves job binaries
// to TaskManagers: BinaryPath + sha256.
const BinaryPath = "/strom/binaries/"

// JobManagerConfig configures a JobManager process.
type JobManagerConfig struct {
	// RPCAddress is where TaskManagers reach the ResourceManager and the
	// JobMasters, and fetch binaries (default DefaultRPCAddress; port 0
	// picks one). RESTAddress serves the REST API (default
	// DefaultRESTAddress).
	RPCAddress, RESTAddress string
	// AdvertisedHost, if set, is the host TaskManagers are told to reach
	// the RPC address at (needed with a wildcard bind).
	AdvertisedHost string
	// Dir keeps uploaded binaries (Dir/binaries). Required.
	Dir string
	// SavepointDir is the default savepoint target (empty: requests must
	// name one).
	SavepointDir   string
	MaxBinaryBytes int64
	// Heartbeats to TaskManagers (0: 1 s and 5 s) and how long a job
	// waits for slots (0: 5 min).
	HeartbeatInterval, HeartbeatTimeout, SlotRequestTimeout time.Duration
	// Provider, if set, starts TaskManagers of SlotsPerWorker slots when
	// jobs are short of slots and stops those idle for IdleTimeout
	// (resourcemanager.Config); nil: TaskManagers are started by hand
	// (standalone). NewProvider, if set instead, makes it once the RPC
	// address TaskManagers must be told is known. The JobManager does
	// not close it.
	Provider       provider.Provider
	NewProvider    func(rpcAddress string) (provider.Provider, error)
	SlotsPerWorker int
	IdleTimeout    time.Duration
	Logger         *slog.Logger
}

// JobManager is a running JobManager process's roles.
type JobManager struct {
	cfg    JobManagerConfig
	log    *slog.Logger
	net    *rpc.Network
	rm     *resourcemanager.ResourceManager
	disp   *dispatcher.Dispatcher
	rest   *rest.Server
	store  *dispatcher.DirStore
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*runSpec // submitted jobs, until they end
	jms  map[*jobmaster.JobMaster]bool
}

// runSpec is what a job was submitted with, for its JobMaster.
type runSpec struct {
	cfg    jobcode.Config
	binary string
	args   []string
}

// StartJobManager starts the roles and listeners; Close stops them.
func StartJobManager(cfg JobManagerConfig) (*JobManager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("jobmanager: no directory for job binaries")
	}
	if cfg.RPCAddress == "" {
		cfg.RPCAddress = DefaultRPCAddress
	}
	if cfg.RESTAddress == "" {
		cfg.RESTAddress = DefaultRESTAddress
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	j := &JobManager{cfg: cfg, log: cfg.Logger, jobs: map[string]*runSpec{}, jms: map[*jobmaster.JobMaster]bool{}}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	if err := j.start(); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

func (j *JobManager) start() error {
	store, err := dispatcher.NewDirStore(filepath.Join(j.cfg.Dir, "binaries"), j.cfg.MaxBinaryBytes)
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	j.store = store
	adv, err := advertise(j.cfg.RPCAddress, j.cfg.AdvertisedHost)
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	n, err := rpc.NewNetwork(rpc.NetworkOptions{
		Bind: j.cfg.RPCAddress, Advertise: adv, Logger: j.log,
		OnUnreachable: j.unreachable,
		Handlers:      map[string]http.Handler{"GET " + BinaryPath + "{id}": http.HandlerFunc(j.serveBinary)},
	})
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	j.net = n
	if j.cfg.NewProvider != nil {
		if j.cfg.Provider, err = j.cfg.NewProvider(n.Addr()); err != nil {
			return fmt.Errorf("jobmanager: resource provider: %w", err)
		}
	}
	rm, err := resourcemanager.NewWithConfig(n, n.Addr()+"/resourcemanager", j.log, resourcemanager.Config{
		SlotRequestTimeout: j.cfg.SlotRequestTimeout,
		Heartbeat:          heartbeat.Config{Interval: j.cfg.HeartbeatInterval, Timeout: j.cfg.HeartbeatTimeout},
		Provider:           j.cfg.Provider, SlotsPerWorker: j.cfg.SlotsPerWorker, IdleTimeout: j.cfg.IdleTimeout,
	})
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	j.mu.Lock()
	j.rm = rm
	j.mu.Unlock()
	j.goRun(rm.Run)
	j.disp, err = dispatcher.New(dispatcher.Config{
		Address: "dispatcher", Transport: n, StartJobMaster: j.startJobMaster,
		OnJobEnd: j.jobEnded,
	})
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	j.goRun(j.disp.Run)
	j.rest, err = rest.NewServer(rest.Config{Addr: j.cfg.RESTAddress, MaxUploadBytes: j.cfg.MaxBinaryBytes, Logger: j.log,
		Cluster: j.disp.REST(dispatcher.RESTConfig{Binaries: store, SavepointDir: j.cfg.SavepointDir, TaskManagers: j.taskManagers, Run: j.run})})
	if err != nil {
		return fmt.Errorf("jobmanager: %w", err)
	}
	j.log.Info("jobmanager started", "rpc", n.Addr(), "rest", j.rest.URL(), "dir", j.cfg.Dir)
	return nil
}

// advertise is the address peers are told for a bind address: the bind
// address itself unless a host is given, which needs a fixed port (with
// port 0 the one chosen is not known before listening).
func advertise(bind, host string) (string, error) {
	if host == "" {
		return "", nil
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("RPC address %q: %w", bind, err)
	}
	if port == "0" || port == "" {
		return "", fmt.Errorf("an advertised host (%s) needs a fixed RPC port, not %q", host, bind)
	}
	return net.JoinHostPort(host, port), nil
}

// RPCAddress is where TaskManagers reach this JobManager (host:port).
func (j *JobManager) RPCAddress() string { return j.net.Addr() }

// RESTURL is the REST API's base URL.
func (j *JobManager) RESTURL() string { return j.rest.URL() }

// RegisteredSlots counts the slots of live TaskManagers.
func (j *JobManager) RegisteredSlots() int { return j.rm.RegisteredSlots() }

// Close stops the REST server, then every role.
func (j *JobManager) Close() {
	if j.rest != nil {
		_ = j.rest.Close()
	}
	j.cancel()
	j.wg.Wait()
	if j.net != nil {
		_ = j.net.Close()
	}
}

func (j *JobManager) goRun(fn func(context.Context)) {
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		fn(j.ctx)
	}()
}

// run is REST's way to start a job from a binary.
func (j *JobManager) run(ctx context.Context, jobID string, jg *jobgraph.JobGraph, b dispatcher.StoredBinary, opts rest.RunOptions) error {
	cfg, err := jobcode.FromSettings(jg.Settings)
	if err != nil {
		return fmt.Errorf("%w: job %s: %w", rest.ErrInvalid, jg.JobName, err)
	}
	if opts.SavepointPath != "" {
		cfg.Resume = &jobcode.Resume{Path: opts.SavepointPath, AllowNonRestoredState: opts.AllowNonRestoredState}
	}
	j.mu.Lock()
	if _, dup := j.jobs[jobID]; dup {
		j.mu.Unlock()
		return fmt.Errorf("%w: job %s is running", rest.ErrInvalid, jobID)
	}
	j.jobs[jobID] = &runSpec{cfg: cfg, binary: b.ID, args: slices.Clone(opts.Args)}
	j.mu.Unlock()
	if _, err := j.disp.Submit(dispatcher.Submission{JobID: jobID, JobName: jg.JobName, JobGraph: jg}); err != nil {
		j.mu.Lock()
		delete(j.jobs, jobID)
		j.mu.Unlock()
		return err
	}
	j.log.Info("job submitted", "job_id", jobID, "job", jg.JobName, "binary", b.ID, "args", opts.Args)
	return nil
}

// startJobMaster is the Dispatcher's way to start a JobMaster here.
func (j *JobManager) startJobMaster(sub dispatcher.Submission, address, dispatcherAddr string) error {
	j.mu.Lock()
	spec := j.jobs[sub.JobID]
	j.mu.Unlock()
	if spec == nil {
		return fmt.Errorf("job %s: submitted without a binary", sub.JobID)
	}
	jm, err := jobmaster.New(jobmaster.Config{
		JobID: sub.JobID, JobName: sub.JobName, JobGraph: sub.JobGraph,
		// TaskManagers reach it by its full address, the Dispatcher
		// (here) by its bare name.
		Address: j.net.Addr() + "/" + address, ResourceManager: j.rm.Address(), Dispatcher: dispatcherAddr,
		Transport: j.net, Logger: j.log, Restart: spec.cfg.Restart, Checkpoint: spec.cfg.Checkpoint, Resume: spec.cfg.Resume,
		HeartbeatInterval: j.cfg.HeartbeatInterval, HeartbeatTimeout: j.cfg.HeartbeatTimeout,
		Binary: spec.binary, Args: spec.args,
		OnRestart: func(previous int, vertices []int) {
			m := rpc.ReleaseChannels{JobID: sub.JobID, Attempt: previous}
			if vertices != nil {
				m.Vertices, m.Edges = vertices, sub.JobGraph.InputEdges(vertices)
			}
			j.toTaskManagers(m)
		},
	})
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.jms[jm] = true
	j.mu.Unlock()
	j.goRun(func(ctx context.Context) {
		defer func() {
			j.mu.Lock()
			delete(j.jms, jm)
			j.mu.Unlock()
		}()
		jm.Run(ctx)
	})
	return nil
}

// jobEnded frees what a job held on every TaskManager: its channels and
// worker processes.
func (j *JobManager) jobEnded(id string) {
	j.mu.Lock()
	delete(j.jobs, id)
	j.mu.Unlock()
	j.toTaskManagers(rpc.ReleaseChannels{JobID: id, JobEnded: true})
}

func (j *JobManager) toTaskManagers(m rpc.ReleaseChannels) {
	for _, tm := range j.rm.TaskManagers() {
		if err := j.net.TaskManager(tm.Address).ReleaseChannels(m); err != nil {
			j.log.Debug("jobmanager: release not delivered", "task_manager", tm.ID, "error", err)
		}
	}
}

// unreachable routes the transport's reports of addresses it cannot reach
// to the ResourceManager and every JobMaster, which find the TaskManager
// at that address, if any, and declare it lost.
func (j *JobManager) unreachable(u rpc.Unreachable) {
	j.mu.Lock()
	rm := j.rm
	jms := make([]*jobmaster.JobMaster, 0, len(j.jms))
	for jm := range j.jms {
		jms = append(jms, jm)
	}
	j.mu.Unlock()
	reason := u.Err.Error()
	if rm != nil {
		rm.TaskManagerUnreachable(u.Address, reason)
	}
	for _, jm := range jms {
		jm.TaskManagerUnreachable(u.Address, reason)
	}
}

// serveBinary sends a stored job binary to a TaskManager.
func (j *JobManager) serveBinary(w http.ResponseWriter, r *http.Request) {
	rc, b, err := j.store.Open(r.Context(), r.PathValue("id"))
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, dispatcher.ErrUnknownBinary) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(b.Size))
	if _, err := io.Copy(w, rc); err != nil {
		j.log.Debug("jobmanager: sending a binary failed", "binary", b.ID, "error", err)
	}
}

// taskManagers describes the registered TaskManagers for REST. Their
// memory is not reported to the JobManager yet: -1 as Flink's unknown.
func (j *JobManager) taskManagers(ctx context.Context) ([]rest.TaskManager, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	used := j.disp.SlotsInUse()
	now := time.Now()
	tms := j.rm.TaskManagers()
	out := make([]rest.TaskManager, 0, len(tms))
	for _, tm := range tms {
		out = append(out, rest.TaskManager{
			ID: dispatcher.TaskManagerID(tm.ID), Path: tm.Address, DataPort: dataPort(tm.DataAddress), LastHeartbeat: now,
			Slots: tm.Slots, FreeSlots: max(tm.Slots-used[tm.ID], 0), CPUCores: -1,
			HeapUsed: -1, HeapCommitted: -1, HeapMax: -1, PhysicalMemory: -1, FreeMemory: -1, AllocatedSlots: []string{},
		})
	}
	return out, nil
}

// dataPort is the port of a data address (0 if it has none).
func dataPort(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
