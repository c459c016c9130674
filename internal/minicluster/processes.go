package minicluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/strom-dev/strom/internal/network/tcp"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/taskmanager"
)

// The TaskManagers as processes of their own (Config.NetworkRPC and
// Config.DataPlane), and the faults tests inject into them: killed
// (SIGKILL: its transport and data plane close without a goodbye, which
// the JobManager's transport reports as unreachable at once), frozen
// (SIGSTOP: its loop stops, its connections stay, so only the heartbeat
// timeout finds it), thawed, and new ones started.

// tmProcess is one TaskManager and what its "process" owns.
type tmProcess struct {
	id     string
	tm     *taskmanager.TaskManager
	net    *rpc.Network  // nil without NetworkRPC
	data   *tcp.Endpoint // nil without DataPlane
	cancel context.CancelFunc
	done   chan struct{} // closed when its Run returned
	thaw   chan struct{} // non-nil while frozen
}

// startTaskManager starts TaskManager tm-<n+1>, n the number started so
// far, and registers its slots.
func (c *MiniCluster) startTaskManager() (err error) {
	c.pmu.Lock()
	id := fmt.Sprintf("tm-%d", len(c.tms)+1)
	c.tms = append(c.tms, nil) // reserves the id
	i := len(c.tms) - 1
	c.pmu.Unlock()
	p := &tmProcess{id: id, done: make(chan struct{})}
	if c.cfg.DataPlane {
		if p.data, err = tcp.Listen(tcp.Config{}); err != nil {
			return err
		}
	}
	var tr rpc.Transport = c.net
	addr := "taskmanager-" + id
	if c.cfg.NetworkRPC {
		if p.net, err = c.newNetwork("", nil); err != nil {
			p.closeData()
			return err
		}
		tr, addr = p.net, p.net.Addr()+"/"+addr
	}
	p.tm, err = taskmanager.New(taskmanager.Config{
		ID: id, Address: addr, Slots: c.cfg.SlotsPerManager, ResourceManager: c.rmAddr,
		Transport: tr, Code: c.code, Network: c.reg, Data: p.data, HeartbeatTimeout: c.cfg.HeartbeatTimeout,
	})
	if err != nil {
		p.closeData()
		return err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	p.cancel = cancel
	c.pmu.Lock()
	c.tms[i] = p
	c.restTMs = append(c.restTMs, tmInfo{id: id, address: addr, slots: c.cfg.SlotsPerManager})
	if p.data != nil {
		c.data = append(c.data, p.data)
	}
	c.pmu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		p.tm.Run(ctx)
	}()
	return nil
}

func (p *tmProcess) closeData() {
	if p.data != nil {
		_ = p.data.Close()
	}
}

// StartTaskManager starts one more TaskManager (tm-<N+1>), which
// registers its slots with the ResourceManager; a job waiting for slots
// gets them.
func (c *MiniCluster) StartTaskManager() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster is shut down")
	}
	return c.startTaskManager()
}

// process is the live TaskManager i (0-based, in start order).
func (c *MiniCluster) process(i int) (*tmProcess, error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if i < 0 || i >= len(c.tms) || c.tms[i] == nil {
		return nil, fmt.Errorf("no live TaskManager %d", i)
	}
	return c.tms[i], nil
}

// KillTaskManager kills TaskManager i abruptly, as SIGKILL would: its
// transport and data plane close first (the JobManager sees the
// connection lost; nothing it sends arrives any more), then its loop and
// tasks stop. It needs Config.NetworkRPC: in process, the roles share one
// transport and a connection cannot be lost.
func (c *MiniCluster) KillTaskManager(i int) error {
	if !c.cfg.NetworkRPC {
		return errors.New("KillTaskManager needs Config.NetworkRPC")
	}
	p, err := c.process(i)
	if err != nil {
		return err
	}
	c.pmu.Lock()
	c.tms[i] = nil
	for j, d := range c.data {
		if d == p.data {
			c.data = append(c.data[:j:j], c.data[j+1:]...)
			break
		}
	}
	c.pmu.Unlock()
	_ = p.net.Close()
	p.cancel()
	<-p.done
	// Closed after its tasks stopped (the TaskManager's contract); its
	// peers' connections to it break then.
	p.closeData()
	return nil
}

// FreezeTaskManager stops TaskManager i's loop, as SIGSTOP would as far as
// the other roles can tell: it answers no heartbeat and reads no message,
// while its connections stay open. ThawTaskManager lets it go on.
func (c *MiniCluster) FreezeTaskManager(i int) error {
	p, err := c.process(i)
	if err != nil {
		return err
	}
	c.pmu.Lock()
	if p.thaw != nil {
		c.pmu.Unlock()
		return fmt.Errorf("TaskManager %s is frozen already", p.id)
	}
	p.thaw = make(chan struct{})
	thaw := p.thaw
	c.pmu.Unlock()
	p.tm.Freeze(thaw)
	return nil
}

// ThawTaskManager lets a frozen TaskManager i run again: it answers the
// heartbeat requests that waited, and a TaskManager declared dead in the
// meantime is fenced (its stale tasks cancelled, made to register again).
func (c *MiniCluster) ThawTaskManager(i int) error {
	p, err := c.process(i)
	if err != nil {
		return err
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if p.thaw == nil {
		return fmt.Errorf("TaskManager %s is not frozen", p.id)
	}
	close(p.thaw)
	p.thaw = nil
	return nil
}

// unreachable routes the JobManager transport's reports of addresses it
// cannot reach to the ResourceManager and every JobMaster, which find the
// TaskManager at that address, if any, and declare it lost.
func (c *MiniCluster) unreachable(u rpc.Unreachable) {
	c.pmu.Lock()
	rm := c.rm
	jms := make([]interface {
		TaskManagerUnreachable(address, reason string)
	}, 0, len(c.jms))
	for jm := range c.jms {
		jms = append(jms, jm)
	}
	c.pmu.Unlock()
	reason := u.Err.Error()
	if rm != nil {
		rm.TaskManagerUnreachable(u.Address, reason)
	}
	for _, jm := range jms {
		jm.TaskManagerUnreachable(u.Address, reason)
	}
}

// RegisteredSlots is how many slots the ResourceManager holds from live,
// registered TaskManagers (tests of failure detection watch slots drop
// and come back).
func (c *MiniCluster) RegisteredSlots() int {
	rm := c.resourceManager()
	if rm == nil {
		return 0
	}
	return rm.RegisteredSlots()
}
