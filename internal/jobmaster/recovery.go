package jobmaster

import (
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Recovery: a JobMaster started for a job whose previous JobMaster died
// with the JobManager (Config.Incarnation > 0; the Dispatcher found the
// job in its job store). The job's checkpoint storage is the truth about
// its progress, as after any restart:
//
//   - startCheckpointing listed what the storage retains
//     (CompletedStore.Recover), so checkpoint ids continue above the
//     newest one;
//   - the first deploy is held like a restart's and restores the newest
//     retained checkpoint (loadRestore), falling back to an older one only
//     if the newest cannot be loaded and was never notified complete (no
//     sink can have committed it), and failing loudly otherwise; with no
//     checkpoint it restores the savepoint the job resumed from, if any,
//     or starts from scratch;
//   - the executions' attempts start at scheduler.AttemptBase(Incarnation),
//     above every attempt the earlier JobMasters could number, so a sink's
//     in-progress files (named by subtask and attempt) and the channels of
//     the shuffle environment (keyed by attempt) never meet the ones of
//     the tasks the dead JobMaster left running.
//
// Those tasks are stale — no JobMaster will notify their checkpoints, so
// they never commit — and are stopped two ways: their TaskManager cancels
// them when their JobMaster has not asked for a heartbeat for the
// heartbeat timeout (taskmanager), and this JobMaster cancels every
// execution a TaskManager reports that is not one of its own
// (fenceUnknown).

// recover sets up the first deploy of a recovering JobMaster (before
// EvStart): it is held until the checkpoint to restore is loaded.
func (jm *JobMaster) recover() {
	if jm.cfg.Incarnation == 0 || jm.ck == nil {
		return
	}
	jm.logger().Info("job master recovering the job", "job_id", jm.cfg.JobID, "incarnation", jm.cfg.Incarnation,
		"attempt_base", scheduler.AttemptBase(jm.cfg.Incarnation), "retained_checkpoints", len(jm.ck.retained))
	jm.restarting()
}

// Kill makes Run return at once when its context ends, without reporting
// the job's end or sending anything else, as if its process had been
// killed (tests of JobManager failover). Safe on any goroutine.
func (jm *JobMaster) Kill() { jm.killed.Store(true) }

// fenceUnknown cancels, on TaskManager tm, the executions of this job it
// reports that are not current executions of this JobMaster: tasks of a
// JobMaster that died (or of attempts the scheduler has already left
// behind). They could only duplicate output if they ran on.
func (jm *JobMaster) fenceUnknown(tm string, running []scheduler.ExecutionID) {
	if len(running) == 0 {
		return
	}
	current := map[scheduler.ExecutionID]bool{}
	for _, e := range jm.sched.Executions() {
		current[e.ID] = true
	}
	addr, ok := jm.tms[tm]
	if !ok && jm.hb != nil {
		addr, ok = jm.hb.addr[tm]
	}
	if !ok {
		return
	}
	for _, id := range running {
		if current[id] {
			continue
		}
		jm.logger().Info("job master: cancelling an execution it does not run (stale attempt)", "job_id", jm.cfg.JobID, "task_manager", tm, "execution", id.String())
		if err := jm.cfg.Transport.TaskManager(addr).CancelTask(rpc.CancelTask{JobID: jm.cfg.JobID, Execution: id}); err != nil {
			jm.logger().Debug("job master: cancel of a stale execution not delivered", "job_id", jm.cfg.JobID, "execution", id.String(), "error", err)
		}
	}
}
