package minicluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strom-dev/strom/internal/dispatcher"
	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/jobmaster"
	"github.com/strom-dev/strom/internal/jobstore"
	"github.com/strom-dev/strom/internal/resourcemanager"
)

// The JobManager's roles as a process of their own, and the faults tests
// inject into it. KillJobManager stops the Dispatcher, the
// ResourceManager and every JobMaster at once without a word (with
// Config.NetworkRPC the JobManager's network is closed first, as on
// SIGKILL); the TaskManagers run on until they notice (taskmanager's
// liveness). StartJobManager starts new roles over the same job store and
// checkpoint storage (and, with NetworkRPC, the same address, which the
// TaskManagers know the ResourceManager by): the Dispatcher recovers every
// job the store holds with a JobMaster in recovery mode, which restores
// its latest completed checkpoint. KillResourceManager and
// StartResourceManager do the same for the ResourceManager alone: its
// TaskManagers register with the new one, running jobs run on.

// roleRun is one run of roles: their context and goroutines, so that they
// can be stopped (killed) without stopping the cluster.
type roleRun struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *MiniCluster) newRun(parent context.Context) *roleRun {
	ctx, cancel := context.WithCancel(parent)
	return &roleRun{ctx: ctx, cancel: cancel}
}

// goRun runs fn in the run (and the cluster's WaitGroup, which Close
// waits for).
func (r *roleRun) goRun(c *MiniCluster, fn func(context.Context)) {
	c.wg.Add(1)
	r.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer r.wg.Done()
		fn(r.ctx)
	}()
}

// stop ends the run and waits for its goroutines.
func (r *roleRun) stop() {
	r.cancel()
	r.wg.Wait()
}

// startJobManagerNetwork sets up the JobManager's transport: the shared
// in-process one, or (NetworkRPC) a network of its own on the address it
// had before, if any.
func (c *MiniCluster) startJobManagerNetwork() error {
	run := c.newRun(c.ctx)
	c.pmu.Lock()
	c.jmRun = run
	bind := c.jmBind
	c.pmu.Unlock()
	if !c.cfg.NetworkRPC {
		c.jm, c.rmAddr = c.net, resourceManagerAddress
		return nil
	}
	n, err := c.newNetwork(bind, c.unreachable)
	if err != nil {
		return fmt.Errorf("embedded cluster: the JobManager's network: %w", err)
	}
	c.pmu.Lock()
	c.jmNet, c.jmBind = n, n.Addr()
	c.pmu.Unlock()
	c.jm, c.rmAddr = n, n.Addr()+"/"+resourceManagerAddress
	return nil
}

func (c *MiniCluster) startResourceManager() error {
	rm, err := resourcemanager.NewWithConfig(c.jm, c.rmAddr, nil, resourcemanager.Config{
		SlotRequestTimeout: c.cfg.SlotRequestTimeout,
		// Its TaskManagers start with it: a job wider than all of them
		// fails at once instead of waiting for the slot request timeout.
		RefuseAboveCapacity: true,
		Heartbeat:           heartbeat.Config{Interval: c.cfg.HeartbeatInterval, Timeout: c.cfg.HeartbeatTimeout},
	})
	if err != nil {
		return err
	}
	c.pmu.Lock()
	run := c.newRun(c.jmRun.ctx)
	c.rm, c.rmRun = rm, run
	c.pmu.Unlock()
	run.goRun(c, rm.Run)
	return nil
}

func (c *MiniCluster) startDispatcher() error {
	disp, err := dispatcher.New(dispatcher.Config{
		Address:        dispatcherAddress,
		Transport:      c.jm,
		StartJobMaster: c.startJobMaster,
		Store:          c.store,
		Logger:         c.cfg.Logger,
		OnJobEnd: func(id string) {
			c.reg.ReleaseJob(id)
			for _, d := range c.dataPlanes() {
				d.ReleaseJob(id)
			}
			c.code.Remove(id)
		},
	})
	if err != nil {
		return err
	}
	c.pmu.Lock()
	c.disp = disp
	run := c.jmRun
	c.pmu.Unlock()
	run.goRun(c, disp.Run)
	return nil
}

func (c *MiniCluster) dispatcher() *dispatcher.Dispatcher {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.disp
}

func (c *MiniCluster) resourceManager() *resourcemanager.ResourceManager {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.rm
}

// JobStore is the store of the jobs the cluster's Dispatchers accepted.
func (c *MiniCluster) JobStore() jobstore.Store { return c.store }

// KillJobManager kills the Dispatcher, the ResourceManager and every
// JobMaster at once, as SIGKILL would kill the JobManager's process: with
// Config.NetworkRPC its network closes first (nothing they send arrives
// any more, the TaskManagers' connections to it break); none of them
// reports anything; the jobs stay in the job store. The REST server
// stops. The TaskManagers and their tasks run on until they notice.
func (c *MiniCluster) KillJobManager() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster is shut down")
	}
	c.pmu.Lock()
	disp, run, n := c.disp, c.jmRun, c.jmNet
	jms := make([]*jobmaster.JobMaster, 0, len(c.jms))
	for jm := range c.jms {
		jms = append(jms, jm)
	}
	c.pmu.Unlock()
	if disp == nil {
		return errors.New("the JobManager is down already")
	}
	c.closeREST()
	if n != nil {
		_ = n.Close()
	}
	disp.Kill()
	for _, jm := range jms {
		jm.Kill()
	}
	c.stopResourceManager()
	run.stop()
	c.pmu.Lock()
	c.disp, c.jmNet = nil, nil
	c.killedDisps = append(c.killedDisps, disp)
	c.pmu.Unlock()
	return nil
}

// StartJobManager starts new JobManager roles after KillJobManager, over
// the same job store and checkpoint storage (and address): it returns once
// the new ResourceManager holds the live TaskManagers' slots again (they
// register when they notice the old one gone: up to the heartbeat timeout
// plus taskmanager.RegistrationRetry) and the Dispatcher has started a
// JobMaster in recovery mode for every job in the store. Handles of the
// killed Dispatcher follow the jobs to the new one and complete when they
// end there. The REST server, if configured, serves the new Dispatcher
// on the address it had.
func (c *MiniCluster) StartJobManager() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster is shut down")
	}
	if c.dispatcher() != nil {
		return errors.New("the JobManager runs already")
	}
	if err := c.startJobManagerNetwork(); err != nil {
		return err
	}
	if err := c.startResourceManager(); err != nil {
		return err
	}
	if err := c.waitForLiveSlots(); err != nil {
		return err
	}
	if err := c.startDispatcher(); err != nil {
		return err
	}
	c.pmu.Lock()
	prev := c.killedDisps[len(c.killedDisps)-1]
	next := c.disp
	c.pmu.Unlock()
	for _, f := range prev.HandOver(next) {
		c.goRun(f)
	}
	if c.cfg.RESTAddress != "" {
		return c.startREST(c.cfg)
	}
	return nil
}

// KillResourceManager kills the ResourceManager alone (it sends nothing
// more; waiting slot requests are not answered). Running jobs run on;
// the TaskManagers register with the next one when they notice.
func (c *MiniCluster) KillResourceManager() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopResourceManager() {
		return errors.New("no ResourceManager runs")
	}
	return nil
}

// stopResourceManager kills the ResourceManager, if one runs, waits for it
// and forgets it; it reports whether one ran.
func (c *MiniCluster) stopResourceManager() bool {
	c.pmu.Lock()
	rm, run := c.rm, c.rmRun
	c.rm, c.rmRun = nil, nil
	c.pmu.Unlock()
	if rm == nil {
		return false
	}
	rm.Kill()
	if run != nil {
		run.stop()
	}
	return true
}

// StartResourceManager starts a ResourceManager at the address of the
// killed one and returns once the live TaskManagers registered with it.
func (c *MiniCluster) StartResourceManager() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster is shut down")
	}
	if c.resourceManager() != nil {
		return errors.New("a ResourceManager runs already")
	}
	if c.dispatcher() == nil {
		return errors.New("the JobManager is down: StartJobManager starts a ResourceManager with it")
	}
	if err := c.startResourceManager(); err != nil {
		return err
	}
	return c.waitForLiveSlots()
}

// waitForLiveSlots waits until the ResourceManager holds the slots of
// every live TaskManager.
func (c *MiniCluster) waitForLiveSlots() error {
	c.pmu.Lock()
	n := 0
	for _, p := range c.tms {
		if p != nil {
			n += c.cfg.SlotsPerManager
		}
	}
	rm := c.rm
	c.pmu.Unlock()
	timeout := c.cfg.HeartbeatTimeout
	if timeout <= 0 {
		timeout = heartbeat.DefaultTimeout
	}
	deadline := time.Now().Add(timeout + 30*time.Second)
	for rm.RegisteredSlots() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d slots registered again with the new resource manager", rm.RegisteredSlots(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// jmProc is a running JobMaster's stop handle.
type jmProc struct {
	job    string
	cancel context.CancelFunc
	done   chan struct{} // closed when its Run returned
}

// KillJobMaster kills the JobMaster of job jobID alone, as if it had
// crashed (it reports nothing), and has the Dispatcher start a new one in
// recovery mode: it restores the job's latest completed checkpoint, with
// attempts above the dead one's, and the ResourceManager takes back the
// dead one's slots when the new one asks for slots. The tasks the dead
// one left are fenced by the new one, or cancelled by their TaskManagers
// when the dead one's heartbeats stop.
func (c *MiniCluster) KillJobMaster(jobID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster is shut down")
	}
	c.pmu.Lock()
	disp := c.disp
	var jm *jobmaster.JobMaster
	var p *jmProc
	for j, q := range c.jms {
		if q.job == jobID {
			jm, p = j, q
		}
	}
	c.pmu.Unlock()
	if disp == nil || jm == nil {
		return fmt.Errorf("no JobMaster of job %s runs", jobID)
	}
	jm.Kill()
	p.cancel()
	<-p.done // its endpoint is closed: the new one takes its address
	return disp.RecoverJob(jobID)
}
