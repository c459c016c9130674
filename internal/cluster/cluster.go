// Package cluster holds Strom's runtime roles — Dispatcher, JobMaster,
// ResourceManager and TaskManagers — and the embedded MiniCluster that runs
// them all in one process. The roles share no state: they talk by messages
// sent to each other's inboxes, the in-process form of the RPC that the
// distributed runtime will use, so splitting them into processes changes the
// transport, not the roles.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/strom-dev/strom/internal/network"
)

// Config sizes an embedded cluster.
type Config struct {
	TaskManagers    int
	SlotsPerManager int
}

// MiniCluster is the embedded cluster: one Dispatcher, one ResourceManager
// and N TaskManagers with M slots each, in this process.
type MiniCluster struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rm     *ResourceManager
	tms    map[string]*TaskManager
	reg    *network.Registry
	ctx    context.Context

	mu     sync.Mutex
	jobs   map[string]*JobMaster
	closed bool
}

// Start starts an embedded cluster; Close stops it.
func Start(cfg Config) (*MiniCluster, error) {
	if cfg.TaskManagers < 1 || cfg.SlotsPerManager < 1 {
		return nil, fmt.Errorf("cluster needs at least one TaskManager with one slot (got %d × %d)", cfg.TaskManagers, cfg.SlotsPerManager)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &MiniCluster{
		cancel: cancel,
		ctx:    ctx,
		rm:     newResourceManager(),
		tms:    map[string]*TaskManager{},
		reg:    network.NewRegistry(),
		jobs:   map[string]*JobMaster{},
	}
	c.goRun(c.rm.run)
	for i := range cfg.TaskManagers {
		id := fmt.Sprintf("tm-%d", i+1)
		tm := newTaskManager(id, cfg.SlotsPerManager, c.reg)
		c.tms[id] = tm
		c.goRun(tm.run)
		// Registration is a message like any other: the TaskManager offers
		// its slots to the ResourceManager.
		if err := c.rm.send(ctx, msgRegisterTM{ID: id, Slots: cfg.SlotsPerManager, TM: tm}); err != nil {
			cancel()
			return nil, err
		}
	}
	return c, nil
}

func (c *MiniCluster) goRun(fn func(context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// NumSlots is the cluster's total number of slots.
func (c *MiniCluster) NumSlots() int {
	n := 0
	for _, tm := range c.tms {
		n += tm.Slots
	}
	return n
}

// Submit is the Dispatcher's entry point: it starts a JobMaster for the job
// and returns a handle to it.
func (c *MiniCluster) Submit(job *Job) (*JobHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("cluster is shut down")
	}
	if job.ID == "" {
		job.ID = NewJobID()
	}
	if _, ok := c.jobs[job.ID]; ok {
		return nil, fmt.Errorf("job %s already submitted", job.ID)
	}
	jm := newJobMaster(job, c.rm, c.tms)
	jm.onDone = func(JobResult) { c.reg.ReleaseJob(job.ID) }
	c.jobs[job.ID] = jm
	c.goRun(jm.run)
	return &JobHandle{jm: jm}, nil
}

// Job returns the handle of a submitted job.
func (c *MiniCluster) Job(id string) (*JobHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	jm, ok := c.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	return &JobHandle{jm: jm}, nil
}

// Close stops every role and waits for all their goroutines, tasks
// included.
func (c *MiniCluster) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Registry is the in-process shuffle environment (tests inspect it).
func (c *MiniCluster) Registry() *network.Registry { return c.reg }

// NewJobID returns a random 32-hex-digit id, the shape of Flink's JobID.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
