package jobmaster

import (
	"fmt"
	"time"

	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Failure detection of the JobMaster's TaskManagers (issue 12.2): an
// active heartbeat monitor (internal/heartbeat) over every TaskManager it
// was granted a slot on. A TaskManager declared dead — silent for the
// heartbeat timeout, or lost when the transport reports its connection
// broken (TaskManagerUnreachable) — fails every execution deployed there
// that has not ended, so the restart strategy restores the job from its
// latest checkpoint on other slots. It is forgotten as a deploy target
// (jm.tms) at once: a cancel sent to it would never be answered, so the
// scheduler counts its executions as cancelled, and a deploy to it fails
// until a new slot grant names it again (it registered again).
//
// A TaskManager that answers after it was declared dead (it was frozen,
// not gone) is fenced: the executions it still runs are of attempts the
// scheduler already failed, so each is cancelled there.

type hbShell struct {
	sh      *heartbeat.Shell
	seq     uint64
	addr    map[string]string // TaskManager id → address, kept after death (fencing)
	timeout time.Duration
}

func (jm *JobMaster) startHeartbeats() error {
	sh, err := heartbeat.NewShell(heartbeat.Config{Interval: jm.cfg.HeartbeatInterval, Timeout: jm.cfg.HeartbeatTimeout})
	if err != nil {
		return fmt.Errorf("job master of job %s: %w", jm.cfg.JobID, err)
	}
	jm.hbMu.Lock()
	jm.hb = &hbShell{sh: sh, addr: map[string]string{}, timeout: sh.Monitor().Config().Timeout}
	jm.hbMu.Unlock()
	return nil
}

func (jm *JobMaster) stopHeartbeats() {
	if jm.hb != nil {
		jm.hb.sh.Stop()
	}
}

// TaskManagerUnreachable tells the JobMaster that messages to address can
// no longer be delivered (rpc.NetworkOptions.OnUnreachable of its
// process, routed here by the process owner). Safe on any goroutine; a
// TaskManager at that address is then declared lost in the JobMaster's
// loop.
func (jm *JobMaster) TaskManagerUnreachable(address, reason string) {
	jm.hbMu.Lock()
	hb := jm.hb
	jm.hbMu.Unlock()
	if hb != nil {
		hb.sh.ConnectionLost(address, reason)
	}
}

func (jm *JobMaster) hbTimerC() <-chan time.Time {
	if jm.hb == nil {
		return nil
	}
	return jm.hb.sh.C()
}

func (jm *JobMaster) hbLostC() <-chan struct{} {
	if jm.hb == nil {
		return nil
	}
	return jm.hb.sh.Lost()
}

// watchTaskManager starts monitoring a TaskManager named in a slot grant,
// unless it is alive in the monitor already.
func (jm *JobMaster) watchTaskManager(id, address string) {
	if jm.hb == nil {
		return
	}
	jm.hb.addr[id] = address
	if t, ok := jm.hb.sh.Monitor().Get(id); ok && t.State == heartbeat.Alive {
		return
	}
	jm.hbDo(jm.hb.sh.Handle(heartbeat.EvAdd{Target: id}))
}

// hbEvent feeds the monitor one event (nil: the timer fired).
func (jm *JobMaster) hbEvent(ev heartbeat.Event) {
	if jm.hb != nil {
		jm.hbDo(jm.hb.sh.Handle(ev))
	}
}

// hbLosses feeds the transport's connection losses to the monitor.
func (jm *JobMaster) hbLosses() {
	for _, l := range jm.hb.sh.TakeLosses() {
		for id, addr := range jm.hb.addr {
			if addr == l.Address {
				jm.hbEvent(heartbeat.EvConnectionLost{Target: id, Reason: l.Reason})
			}
		}
	}
}

func (jm *JobMaster) hbDo(acts []heartbeat.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case heartbeat.ActSendRequest:
			jm.hb.seq++
			err := jm.cfg.Transport.TaskManager(jm.hb.addr[a.Target]).RequestHeartbeat(rpc.HeartbeatRequest{ReplyTo: jm.cfg.Address, JobID: jm.cfg.JobID, Seq: jm.hb.seq})
			if err != nil {
				jm.hbDo(jm.hb.sh.Handle(heartbeat.EvConnectionLost{Target: a.Target, Reason: err.Error()}))
			}
		case heartbeat.ActTimedOut:
			jm.taskManagerDead(a.Target, fmt.Sprintf("heartbeat timeout after %v", jm.hb.timeout))
		case heartbeat.ActLost:
			jm.taskManagerDead(a.Target, "connection lost: "+a.Reason)
		case heartbeat.ActResumed:
			execs, _ := a.Payload.([]scheduler.ExecutionID)
			jm.fence(a.Target, execs)
		}
	}
}

// taskManagerDead fails the executions deployed on a dead TaskManager.
func (jm *JobMaster) taskManagerDead(id, reason string) {
	err := fmt.Errorf("TaskManager %s lost: %s", id, reason)
	jm.logger().Warn("job master: TaskManager lost", "job_id", jm.cfg.JobID, "task_manager", id, "reason", reason)
	delete(jm.tms, id)
	jm.step(scheduler.EvSlotsLost{TaskManager: id, Err: err})
}

// fence cancels, on a TaskManager that came back after it was declared
// dead, the executions it still runs: the scheduler failed them, so their
// attempts are stale (a later attempt may run elsewhere already).
func (jm *JobMaster) fence(id string, running []scheduler.ExecutionID) {
	jm.logger().Info("job master: TaskManager declared dead answers again; cancelling its stale executions", "job_id", jm.cfg.JobID, "task_manager", id, "executions", len(running))
	tm := jm.cfg.Transport.TaskManager(jm.hb.addr[id])
	for _, e := range running {
		if err := tm.CancelTask(rpc.CancelTask{JobID: jm.cfg.JobID, Execution: e}); err != nil {
			jm.logger().Debug("job master: cancel of a stale execution not delivered", "job_id", jm.cfg.JobID, "execution", e, "error", err)
		}
	}
}
