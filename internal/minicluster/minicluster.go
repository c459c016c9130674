// Package minicluster runs every role — Dispatcher, ResourceManager,
// TaskManagers and one JobMaster per job — in one process, connected by
// the in-process rpc transport: the embedded cluster of Execute and of
// tests. The roles share no state: each has its own loop and endpoint and
// reaches the others only through rpc gateways with plain-data messages.
// What this process does share is what the distributed runtime will have
// per process too: the jobs' code (jobcode.Registry, the job binary there)
// and the shuffle environment (network.Registry, the data plane there).
package minicluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/dispatcher"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobmaster"
	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
	"github.com/strom-dev/strom/internal/resourcemanager"
	"github.com/strom-dev/strom/internal/rest"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// The types clients of the embedded cluster use, under the names they had
// when the roles lived in one package.
type (
	Job            = jobcode.Job
	JobConfig      = jobcode.Config
	JobHandle      = dispatcher.JobHandle
	JobResult      = dispatcher.JobResult
	OperatorTotals = rpc.OperatorTotals
)

// ErrUnknownJob is returned for a job id the Dispatcher does not know.
var ErrUnknownJob = dispatcher.ErrUnknownJob

// Config sizes an embedded cluster.
type Config struct {
	TaskManagers    int
	SlotsPerManager int
	// DropMessage, if set, loses the messages it accepts between the
	// roles (fault-injection tests; see rpc.Local.DropWhen).
	DropMessage func(to string, m rpc.Message) bool
	// DataPlane gives each TaskManager a data plane of its own
	// (network/tcp on loopback), as if each ran in its own process:
	// channels between tasks of different TaskManagers cross TCP, encoded
	// with their records' codecs, while channels within one TaskManager
	// stay in process.
	DataPlane bool
	// NetworkRPC connects the roles with the network transport
	// (rpc.Network, connect over loopback) instead of in-process
	// mailboxes, as if the JobManager (Dispatcher, ResourceManager,
	// JobMasters) and each TaskManager ran in processes of their own:
	// every message crosses protobuf and HTTP/2. Failures then carry
	// their text only (errors.Is on a user's error no longer matches),
	// as between real processes.
	NetworkRPC bool
	// HeartbeatInterval and HeartbeatTimeout set the heartbeats of the
	// ResourceManager and the JobMasters to the TaskManagers (0: 1 s and
	// 5 s); SlotRequestTimeout is how long a job waits for slots the
	// cluster is short of (0: 5 min). Tests of failure detection make
	// them short.
	HeartbeatInterval, HeartbeatTimeout, SlotRequestTimeout time.Duration
	// RESTAddress, when set, serves the REST API on it (host:port; port
	// 0 picks one, see RESTURL) over the Dispatcher (rest.go).
	// SavepointDir is its default savepoint target; BinaryDir, when set,
	// keeps uploaded job binaries (at most MaxBinaryBytes each, 0: the
	// REST default); Logger receives the server's logs.
	RESTAddress    string
	SavepointDir   string
	BinaryDir      string
	MaxBinaryBytes int64
	Logger         *slog.Logger
	// JobStore keeps the jobs the Dispatcher accepted and not yet ended
	// (nil: one in memory). A JobManager started by StartJobManager
	// recovers what it holds (jobmanager.go).
	JobStore jobstore.Store
}

const (
	resourceManagerAddress = "resourcemanager"
	dispatcherAddress      = "dispatcher"
)

// MiniCluster is the embedded cluster: one Dispatcher, one ResourceManager
// and N TaskManagers with M slots each, in this process.
type MiniCluster struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	net    *rpc.Local
	// jm is the JobManager's transport (the Dispatcher, ResourceManager
	// and JobMasters); tms the TaskManagers'. All c.net unless
	// Config.NetworkRPC, which gives each its own rpc.Network.
	jm       rpc.Transport
	networks []*rpc.Network
	rmAddr   string
	code     *jobcode.Registry
	reg      *network.Registry
	slots    int
	cfg      Config
	store    jobstore.Store

	// Under pmu: the JobManager's roles now (jobmanager.go); disp and rm
	// are nil while killed.
	disp   *dispatcher.Dispatcher
	rm     *resourcemanager.ResourceManager
	jmRun  *roleRun // the Dispatcher's and the JobMasters'
	rmRun  *roleRun // the ResourceManager's
	jmNet  *rpc.Network
	jmBind string // the JobManager's network address, kept across restarts
	// killedDisps are the Dispatchers killed so far, newest last: the
	// handles clients got from them follow the jobs (HandOver).
	killedDisps []*dispatcher.Dispatcher
	restAddr    string // the REST server's host:port, kept across restarts

	// Under pmu: the TaskManagers (killed ones removed from data, kept in
	// tms as nil) and the running JobMasters, which the JobManager's
	// transport tells of unreachable TaskManagers.
	pmu  sync.Mutex
	tms  []*tmProcess
	data []*tcp.Endpoint // the live TaskManagers' data planes (Config.DataPlane)
	jms  map[*jobmaster.JobMaster]*jmProc
	// restTMs are the TaskManagers started (rest.go), killed ones too.
	restTMs []tmInfo

	rest *rest.Server // nil without RESTAddress

	mu     sync.Mutex
	closed bool
}

// Start starts an embedded cluster; Close stops it.
func Start(cfg Config) (*MiniCluster, error) {
	if cfg.TaskManagers < 1 || cfg.SlotsPerManager < 1 {
		return nil, fmt.Errorf("cluster needs at least one TaskManager with one slot (got %d × %d)", cfg.TaskManagers, cfg.SlotsPerManager)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &MiniCluster{
		ctx:    ctx,
		cancel: cancel,
		net:    rpc.NewLocal(),
		code:   jobcode.NewRegistry(),
		reg:    network.NewRegistry(),
		slots:  cfg.TaskManagers * cfg.SlotsPerManager,
		cfg:    cfg,
		jms:    map[*jobmaster.JobMaster]*jmProc{},
		store:  cfg.JobStore,
	}
	if c.store == nil {
		c.store = jobstore.NewMemory()
	}
	if cfg.DropMessage != nil {
		c.net.DropWhen(cfg.DropMessage)
	}
	if err := c.start(cfg); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *MiniCluster) start(cfg Config) (err error) {
	if err := c.startJobManagerNetwork(); err != nil {
		return err
	}
	if err := c.startResourceManager(); err != nil {
		return err
	}
	for range cfg.TaskManagers {
		if err := c.startTaskManager(); err != nil {
			return err
		}
	}
	if cfg.NetworkRPC {
		if err := waitForSlots(c.resourceManager(), cfg.TaskManagers*cfg.SlotsPerManager); err != nil {
			return err
		}
	}
	if err := c.startDispatcher(); err != nil {
		return err
	}
	if cfg.RESTAddress != "" {
		return c.startREST(cfg)
	}
	return nil
}

// startJobMaster is the Dispatcher's way to start a JobMaster here.
func (c *MiniCluster) startJobMaster(sub dispatcher.Submission, address, dispatcherAddr string) error {
	var logger *slog.Logger
	var restart scheduler.RestartStrategy
	var ck *jobcode.Checkpointing
	var resume *jobcode.Resume
	if job, err := c.code.Lookup(sub.JobID); err == nil {
		logger = job.Config.Logger
		restart = job.Config.Restart
		ck = job.Config.Checkpoint
		resume = job.Config.Resume
	}
	if n, ok := c.jm.(*rpc.Network); ok {
		// TaskManagers in other processes reach it by its full address;
		// the Dispatcher, in this process, by its bare name.
		address = n.Addr() + "/" + address
	}
	c.pmu.Lock()
	run := c.jmRun
	c.pmu.Unlock()
	jm, err := jobmaster.New(jobmaster.Config{
		JobID: sub.JobID, JobName: sub.JobName, JobGraph: sub.JobGraph, Incarnation: sub.Incarnation,
		Address: address, ResourceManager: c.rmAddr, Dispatcher: dispatcherAddr,
		Transport: c.jm, Logger: logger, Restart: restart, Checkpoint: ck, Resume: resume,
		HeartbeatInterval: c.cfg.HeartbeatInterval, HeartbeatTimeout: c.cfg.HeartbeatTimeout,
		// Every task of the previous attempt has ended: its channels (and
		// the batches left in them) can go; the new attempt has its own.
		OnRestart: func(previous int, vertices []int) {
			if vertices == nil {
				c.reg.ReleaseAttempt(sub.JobID, previous)
				for _, d := range c.dataPlanes() {
					d.ReleaseAttempt(sub.JobID, previous)
				}
				return
			}
			edges := sub.JobGraph.InputEdges(vertices)
			c.reg.ReleaseVertices(sub.JobID, previous, vertices, edges)
			for _, d := range c.dataPlanes() {
				d.ReleaseEdges(sub.JobID, previous, edges)
			}
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(run.ctx)
	p := &jmProc{job: sub.JobID, cancel: cancel, done: make(chan struct{})}
	c.pmu.Lock()
	c.jms[jm] = p
	c.pmu.Unlock()
	run.goRun(c, func(context.Context) {
		defer close(p.done)
		defer cancel()
		defer func() {
			c.pmu.Lock()
			delete(c.jms, jm)
			c.pmu.Unlock()
		}()
		jm.Run(ctx)
	})
	return nil
}

func (c *MiniCluster) goRun(fn func(context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// NumSlots is the cluster's total number of slots.
func (c *MiniCluster) NumSlots() int { return c.slots }

// Submit registers the job's code in this process (where the TaskManagers
// find it) and submits the job to the Dispatcher.
func (c *MiniCluster) Submit(job *Job) (*JobHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("cluster is shut down")
	}
	disp := c.dispatcher()
	if disp == nil {
		return nil, errors.New("the JobManager is down (killed, not started again)")
	}
	if job.ID == "" {
		job.ID = NewJobID()
	}
	if _, err := disp.Job(job.ID); err == nil {
		return nil, fmt.Errorf("job %s already submitted", job.ID)
	}
	if err := c.code.Register(job); err != nil {
		return nil, err
	}
	h, err := disp.Submit(dispatcher.Submission{JobID: job.ID, JobName: job.Name, JobGraph: job.JobGraph})
	if err != nil {
		c.code.Remove(job.ID)
		return nil, err
	}
	return h, nil
}

// Job returns the handle of a submitted job.
func (c *MiniCluster) Job(id string) (*JobHandle, error) {
	disp := c.dispatcher()
	if disp == nil {
		return nil, errors.New("the JobManager is down (killed, not started again)")
	}
	return disp.Job(id)
}

// Close stops every role and waits for all their goroutines, tasks
// included.
func (c *MiniCluster) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeREST()
	// The Dispatcher and the JobMasters stop first, and have stopped,
	// before the ResourceManager and the TaskManagers hear of it: what
	// those do as they stop (slot requests refused, tasks cancelled) must
	// not reach a JobMaster that still thinks the job runs, or it fails
	// the job instead of the shutdown cancelling it.
	c.pmu.Lock()
	procs := make([]*jmProc, 0, len(c.jms))
	for _, p := range c.jms {
		procs = append(procs, p)
	}
	jmRun := c.jmRun
	c.pmu.Unlock()
	for _, p := range procs {
		p.cancel()
	}
	for _, p := range procs {
		<-p.done
	}
	if jmRun != nil {
		jmRun.stop() // the Dispatcher and the ResourceManager
	}
	c.cancel()
	c.wg.Wait()
	c.pmu.Lock()
	killed := slices.Clone(c.killedDisps)
	c.pmu.Unlock()
	// Newest first: each ends its jobs as its successor did.
	for i := len(killed) - 1; i >= 0; i-- {
		killed[i].EndOpen("cluster shut down")
	}
	for _, d := range c.dataPlanes() {
		_ = d.Close()
	}
	c.pmu.Lock()
	networks := slices.Clone(c.networks)
	c.pmu.Unlock()
	for _, n := range networks {
		_ = n.Close()
	}
}

// waitForSlots waits until the TaskManagers' registrations, sent over the
// network, reached the ResourceManager, so that a job submitted next finds
// their slots (in process they arrive before taskmanager.New returns).
func waitForSlots(rm *resourcemanager.ResourceManager, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for rm.RegisteredSlots() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d slots registered with the resource manager after 10s", rm.RegisteredSlots(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// newNetwork starts a network transport on loopback for one "process".
// onUnreachable (nil: none) is told of addresses it cannot reach.
func (c *MiniCluster) newNetwork(bind string, onUnreachable func(rpc.Unreachable)) (*rpc.Network, error) {
	n, err := rpc.NewNetwork(rpc.NetworkOptions{Bind: bind, OnUnreachable: onUnreachable})
	if err != nil {
		return nil, err
	}
	c.pmu.Lock()
	c.networks = append(c.networks, n)
	c.pmu.Unlock()
	return n, nil
}

// DataPlanes are the TaskManagers' data-plane endpoints (Config.DataPlane;
// tests inspect them).
func (c *MiniCluster) DataPlanes() []*tcp.Endpoint { return c.dataPlanes() }

func (c *MiniCluster) dataPlanes() []*tcp.Endpoint {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return slices.Clone(c.data)
}

// Registry is the in-process shuffle environment (tests inspect it).
func (c *MiniCluster) Registry() *network.Registry { return c.reg }

// NewJobID returns a random 32-hex-digit id, the shape of Flink's JobID.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
