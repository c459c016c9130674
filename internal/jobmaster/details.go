package jobmaster

import (
	"strings"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Bounds of what the JobMaster keeps for the REST API, as Flink's
// web.exception-history-size (16) and web.checkpoints.history (10).
const (
	maxExceptions       = 16
	maxCheckpointRecord = 10
)

// details is what the JobMaster keeps of its job for the Dispatcher to show
// through REST (rpc.JobDetails) beyond what the Scheduler knows: when each
// execution ran and where, its latest time rates, the exception history
// and the checkpoint statistics. Only the loop touches it.
type details struct {
	execs      map[subtask]*execInfo
	exceptions []rpc.JobException // newest first
	ck         rpc.CheckpointStats
	// pending are the checkpoints in progress, by id (the records in
	// ck.History are copies made by report).
	records map[int64]*rpc.CheckpointRecord
	order   []int64 // ids in records, oldest first
	// restoredSeen is the restore last counted (ckShell.restoredFrom).
	restoredSeen checkpoint.ID
}

// execInfo is one subtask's current attempt.
type execInfo struct {
	attempt     int
	taskManager string
	start, end  time.Time
	rates       *rpc.TaskMetrics // latest report's (Operators unset)
}

func newDetails() details {
	return details{execs: map[subtask]*execInfo{}, records: map[int64]*rpc.CheckpointRecord{}}
}

// deployed notes an attempt's deployment (its start).
func (d *details) deployed(id scheduler.ExecutionID, slot scheduler.SlotID, now time.Time) {
	d.execs[subtask{id.Vertex, id.Subtask}] = &execInfo{attempt: id.Attempt, taskManager: slot.TaskManager, start: now}
}

// taskState notes a task's terminal state and, if it failed, adds its
// failure to the history.
func (d *details) taskState(m rpc.TaskStateUpdate, now time.Time) {
	e := d.execs[subtask{m.Execution.Vertex, m.Execution.Subtask}]
	if e == nil || e.attempt != m.Execution.Attempt {
		e = nil // a report of an older attempt
	}
	if e != nil && m.State.Terminal() && e.end.IsZero() {
		e.end = now
	}
	if m.Failure != nil {
		tm := ""
		if e != nil {
			tm = e.taskManager
		}
		d.addException(rpc.JobException{Time: now, Failure: *m.Failure, TaskManager: tm})
	}
}

// jobFailed adds the job's own failure unless it is the task failure
// already at the head of the history (the job failed because of it).
func (d *details) jobFailed(f *rpc.Failure, now time.Time) {
	if f == nil {
		return
	}
	if len(d.exceptions) > 0 && d.exceptions[0].Failure.Message == f.Message && d.exceptions[0].Failure.Task == f.Task {
		return
	}
	d.addException(rpc.JobException{Time: now, Failure: *f})
}

func (d *details) addException(e rpc.JobException) {
	e.Failure.Cause = nil // plain data only
	d.exceptions = append([]rpc.JobException{e}, d.exceptions...)
	if len(d.exceptions) > maxExceptions {
		d.exceptions = d.exceptions[:maxExceptions]
	}
}

// rates keeps a metrics report's time rates of a current attempt.
func (d *details) rates(t rpc.TaskMetrics) {
	e := d.execs[subtask{t.Execution.Vertex, t.Execution.Subtask}]
	if e == nil || e.attempt != t.Execution.Attempt {
		return
	}
	e.rates = &rpc.TaskMetrics{Execution: t.Execution, BusyMsPerSecond: t.BusyMsPerSecond,
		IdleMsPerSecond: t.IdleMsPerSecond, BackPressuredMsPerSecond: t.BackPressuredMsPerSecond}
}

// ckTriggered records a checkpoint or savepoint in progress; subtasks is
// how many acks it needs.
func (d *details) ckTriggered(a checkpoint.ActTrigger, subtasks int) {
	r := &rpc.CheckpointRecord{ID: int64(a.ID), Status: "IN_PROGRESS", Savepoint: a.Kind == checkpoint.KindSavepoint,
		Sync: a.Stop, Triggered: a.Timestamp, NumSubtasks: subtasks}
	d.records[r.ID] = r
	d.order = append(d.order, r.ID)
	d.ck.Total++
	d.ck.InProgress++
	for len(d.order) > maxCheckpointRecord {
		old := d.records[d.order[0]]
		if old.Status == "IN_PROGRESS" {
			break // kept until it ends, so the counts stay right
		}
		delete(d.records, d.order[0])
		d.order = d.order[1:]
	}
}

// ckAck adds an acknowledgement's numbers to its checkpoint's record.
func (d *details) ckAck(m rpc.AcknowledgeCheckpoint, now time.Time) {
	r := d.records[m.CheckpointID]
	if r == nil || r.Status != "IN_PROGRESS" {
		return
	}
	r.NumAcknowledged++
	r.LatestAck = now
	r.SyncPause = max(r.SyncPause, m.SyncPause)
	for _, op := range m.States {
		for _, hs := range [][]checkpoint.StateHandle{op.State.Keyed, op.State.Operator, op.State.Channel} {
			for _, h := range hs {
				r.Size += h.Size
			}
		}
	}
}

// ckEnded moves a checkpoint in progress to COMPLETED (failure "") or
// FAILED; path is a completed savepoint's directory.
func (d *details) ckEnded(id checkpoint.ID, path, failure string, now time.Time) {
	r := d.records[int64(id)]
	if r == nil || r.Status != "IN_PROGRESS" {
		return
	}
	d.ck.InProgress--
	r.Duration = now.Sub(r.Triggered)
	if failure == "" {
		r.Status = "COMPLETED"
		r.Path = path
		d.ck.Completed++
	} else {
		r.Status = "FAILED"
		r.FailureMessage = failure
		d.ck.Failed++
	}
}

// report is the job's details as of now, for JobStatus and JobFinished.
func (jm *JobMaster) details() rpc.JobDetails {
	d := &jm.rest
	if ck := jm.ck; ck != nil && ck.restoredFrom != 0 && ck.restoredFrom != d.restoredSeen {
		// A restore from a checkpoint or savepoint other than the last
		// one counted (restoring the same one again is not told apart).
		d.restoredSeen = ck.restoredFrom
		d.ck.Restored++
		d.ck.RestoredID = int64(ck.restoredFrom)
		d.ck.RestoredTime = time.Now()
		d.ck.RestoredSavepoint = !strings.HasPrefix(ck.restoredDesc, "checkpoint ")
		d.ck.RestoredPath = ""
		if d.ck.RestoredSavepoint {
			d.ck.RestoredPath = ck.restoredDesc
		}
	}
	out := rpc.JobDetails{Exceptions: append([]rpc.JobException(nil), d.exceptions...), Checkpoints: d.ck}
	out.Checkpoints.History = make([]rpc.CheckpointRecord, 0, len(d.order))
	for i := len(d.order) - 1; i >= 0; i-- {
		out.Checkpoints.History = append(out.Checkpoints.History, *d.records[d.order[i]])
	}
	if c := jm.cfg.Checkpoint; c != nil {
		out.CheckpointConfig = &rpc.CheckpointSettings{
			ExactlyOnce: c.Mode != checkpoint.AtLeastOnce, Unaligned: c.Mode == checkpoint.Unaligned, Interval: c.Interval, Timeout: c.Timeout, MinPause: c.MinPause,
			MaxConcurrent: max(c.MaxConcurrent, 1), TolerableFailures: c.TolerableFailures, Storage: c.Storage,
			AlignedTimeout: c.AlignedTimeout, Retained: max(c.Retained, 1),
		}
		if out.CheckpointConfig.Timeout == 0 {
			out.CheckpointConfig.Timeout = checkpoint.DefaultTimeout
		}
	}
	return out
}

// execDetails adds start, end and time rates to an execution's status.
func (d *details) execDetails(s *rpc.ExecutionStatus) {
	e := d.execs[subtask{s.ID.Vertex, s.ID.Subtask}]
	if e == nil || e.attempt != s.ID.Attempt {
		return
	}
	s.Start, s.End = e.start, e.end
	if e.rates != nil {
		r := *e.rates
		s.Metrics = &r
	}
}

// execMetrics adds the latest operator counters to an execution's status.
func (jm *JobMaster) execMetrics(s *rpc.ExecutionStatus) {
	m := jm.metrics[subtask{s.ID.Vertex, s.ID.Subtask}]
	if m == nil || m.attempt != s.ID.Attempt {
		return
	}
	if s.Metrics == nil {
		s.Metrics = &rpc.TaskMetrics{Execution: s.ID}
	}
	s.Metrics.Operators = append([]rpc.OperatorMetrics(nil), m.ops...)
}

// numSubtasks is how many subtasks the job has: the acks a checkpoint
// needs.
func (jm *JobMaster) numSubtasks() int {
	n := 0
	for _, v := range jm.cfg.JobGraph.Vertices {
		n += v.Parallelism
	}
	return n
}
