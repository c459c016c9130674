package taskmanager

import (
	"time"
)

// The TaskManager's passive watch of the JobManager's roles (Flink's
// TaskExecutor heartbeat targets): the ResourceManager and every JobMaster
// ask it for heartbeats at their interval, so a role that stops asking for
// the heartbeat timeout is taken for lost (its JobManager died, or is cut
// off from here).
//
//   - A JobMaster lost: the tasks it deployed here are cancelled. They are
//     stale: no JobMaster will notify their checkpoints, so they can never
//     commit, and a new JobMaster of the job restores from its latest
//     checkpoint with attempts of its own. Cancelling them frees their
//     slots for it (and stops their sources reading for nothing).
//   - The ResourceManager lost: the TaskManager registers again, retrying
//     every RegistrationRetry until a ResourceManager asks for a heartbeat
//     (which shows it knows this TaskManager). Its tasks run on: their
//     JobMasters may be alive (a ResourceManager restarted alone).
//
// A JobMaster is watched from its first deploy here until no task of it
// is left. Time is an input (checkLiveness(now)), called on the loop's
// metrics tick, so the timeout is noticed within one MetricsInterval.
// Tasks hosted in job workers (Config.Workers) are not covered: their
// relay answers for them.

// checkLiveness takes roles that have been silent for the heartbeat
// timeout at now for lost.
func (tm *TaskManager) checkLiveness(now time.Time) {
	if tm.cfg.JobWorker {
		return
	}
	timeout := tm.cfg.HeartbeatTimeout
	if tm.rmSeen && now.Sub(tm.rmLast) > timeout {
		tm.cfg.Logger.Warn("task manager: resource manager lost: no heartbeat request; registering again",
			"task_manager", tm.cfg.ID, "resource_manager", tm.cfg.ResourceManager, "timeout", timeout)
		tm.rmSeen = false
		tm.registeredAt = time.Time{} // registerAgain sends at once
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	byJM := map[string][]taskKey{}
	for k, t := range tm.tasks {
		byJM[t.jobMaster] = append(byJM[t.jobMaster], k)
	}
	for addr := range tm.jmSeen {
		if len(byJM[addr]) == 0 {
			delete(tm.jmSeen, addr) // nothing of it left to watch
		}
	}
	for addr, keys := range byJM {
		seen, ok := tm.jmSeen[addr]
		if !ok {
			tm.jmSeen[addr] = now
			continue
		}
		if now.Sub(seen) <= timeout {
			continue
		}
		tm.cfg.Logger.Warn("task manager: job master lost: no heartbeat request; cancelling its tasks",
			"task_manager", tm.cfg.ID, "job_master", addr, "tasks", len(keys), "timeout", timeout)
		for _, k := range keys {
			t := tm.tasks[k]
			t.cancel()
			tm.watchCancel(k, t)
		}
		// Watched again from now: tasks slow to end are not reported
		// every tick.
		tm.jmSeen[addr] = now
	}
}
