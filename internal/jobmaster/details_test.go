package jobmaster

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Checkpoint records move from IN_PROGRESS to COMPLETED or FAILED once,
// with the acks' numbers; the counts follow, and the history keeps the
// last ten ended ones but never drops one in progress.
func TestDetailsCheckpointHistory(t *testing.T) {
	d := newDetails()
	t0 := time.Unix(1000, 0)
	d.ckTriggered(checkpoint.ActTrigger{ID: 1, Timestamp: t0}, 2)
	d.ckAck(rpc.AcknowledgeCheckpoint{CheckpointID: 1, SyncPause: 3 * time.Millisecond,
		States: []checkpoint.OperatorSnapshot{{State: checkpoint.SubtaskState{Keyed: []checkpoint.StateHandle{{Size: 10}}, Operator: []checkpoint.StateHandle{{Size: 5}}}}}}, t0.Add(time.Second))
	d.ckAck(rpc.AcknowledgeCheckpoint{CheckpointID: 1, SyncPause: time.Millisecond}, t0.Add(2*time.Second))
	d.ckEnded(1, "", "", t0.Add(3*time.Second))
	d.ckEnded(1, "", "late abort", t0.Add(4*time.Second)) // ignored: already ended
	d.ckTriggered(checkpoint.ActTrigger{ID: 2, Timestamp: t0, Kind: checkpoint.KindSavepoint, Stop: true}, 2)
	d.ckEnded(2, "", "declined", t0.Add(time.Second))
	d.ckTriggered(checkpoint.ActTrigger{ID: 3, Timestamp: t0}, 2)

	require.Equal(t, 3, d.ck.Total)
	require.Equal(t, 1, d.ck.Completed)
	require.Equal(t, 1, d.ck.Failed)
	require.Equal(t, 1, d.ck.InProgress)
	r1 := d.records[1]
	require.Equal(t, "COMPLETED", r1.Status)
	require.EqualValues(t, 15, r1.Size)
	require.Equal(t, 3*time.Millisecond, r1.SyncPause)
	require.Equal(t, 2, r1.NumAcknowledged)
	require.Equal(t, 3*time.Second, r1.Duration)
	require.Equal(t, rpc.CheckpointRecord{ID: 2, Status: "FAILED", Savepoint: true, Sync: true, Triggered: t0, Duration: time.Second,
		NumSubtasks: 2, FailureMessage: "declined"}, *d.records[2])

	for id := int64(4); id <= 15; id++ {
		d.ckTriggered(checkpoint.ActTrigger{ID: checkpoint.ID(id), Timestamp: t0}, 2)
		d.ckEnded(checkpoint.ID(id), "", "", t0)
	}
	require.Contains(t, d.records, int64(3), "in progress: kept")
	require.NotContains(t, d.records, int64(1))
	d.ckEnded(3, "", "", t0)
	d.ckTriggered(checkpoint.ActTrigger{ID: 16, Timestamp: t0}, 2)
	require.Len(t, d.order, maxCheckpointRecord)
	require.Equal(t, int64(7), d.order[0])
	require.Equal(t, 0+1, d.ck.InProgress)
}

// Task failures enter the history with their TaskManager, newest first and
// bounded; the job's failure is added unless it is the task's own.
func TestDetailsExceptions(t *testing.T) {
	d := newDetails()
	now := time.Unix(2000, 0)
	id := scheduler.ExecutionID{Vertex: 1, Subtask: 0, Attempt: 0}
	d.deployed(id, scheduler.SlotID{TaskManager: "tm-2"}, now)
	f := &rpc.Failure{Message: "boom", Task: "Map"}
	d.taskState(rpc.TaskStateUpdate{Execution: id, State: scheduler.Failed, Failure: f}, now.Add(time.Second))
	require.Equal(t, now.Add(time.Second), d.execs[subtask{1, 0}].end)
	d.jobFailed(f, now)
	require.Len(t, d.exceptions, 1, "the job failed of the task's failure: one entry")
	require.Equal(t, "tm-2", d.exceptions[0].TaskManager)
	d.jobFailed(&rpc.Failure{Message: "checkpoint storage gone"}, now)
	require.Len(t, d.exceptions, 2)
	require.Equal(t, "checkpoint storage gone", d.exceptions[0].Failure.Message)

	for i := range 20 {
		d.taskState(rpc.TaskStateUpdate{Execution: id, State: scheduler.Failed, Failure: &rpc.Failure{Message: fmt.Sprint(i)}}, now)
	}
	require.Len(t, d.exceptions, maxExceptions)
	require.Equal(t, "19", d.exceptions[0].Failure.Message)

	// A report of an older attempt does not touch the current one's times.
	d.deployed(scheduler.ExecutionID{Vertex: 1, Attempt: 1}, scheduler.SlotID{TaskManager: "tm-3"}, now)
	d.taskState(rpc.TaskStateUpdate{Execution: id, State: scheduler.Canceled}, now)
	require.True(t, d.execs[subtask{1, 0}].end.IsZero())
}
