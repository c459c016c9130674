package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
)

// Values with every field set, for the table below.
var (
	exec    = scheduler.ExecutionID{Vertex: 1, Subtask: 2, Attempt: 3}
	slot    = scheduler.SlotID{TaskManager: "tm-1", Index: 4}
	failure = &Failure{Message: "boom", Job: "j", JobID: "job-1", Operator: "Map", Task: "Source -> Map",
		Subtask: 1, Parallelism: 2, Attempt: 3, Stack: "goroutine 1", NoRestart: true}
	opMetrics = OperatorMetrics{Vertex: 1, Subtask: 2, Node: 3, Name: "Map", UID: "uid", IsSource: true,
		RecordsIn: 5, RecordsOut: 6, BackpressureWaits: 7, Watermark: 8}
	taskMetrics = TaskMetrics{Execution: exec, Operators: []OperatorMetrics{opMetrics}, BusyMsPerSecond: 100, IdleMsPerSecond: 200, BackPressuredMsPerSecond: 700}
	execStatus  = ExecutionStatus{ID: exec, State: scheduler.Failed, Slot: slot, Failure: failure,
		Start: time.UnixMilli(1700000000000).UTC(), End: time.UnixMilli(1700000001000).UTC(), Metrics: &taskMetrics}
	details = JobDetails{
		Exceptions: []JobException{{Time: time.UnixMilli(1700000000500).UTC(), Failure: *failure, TaskManager: "tm-1"}},
		Checkpoints: CheckpointStats{Total: 4, InProgress: 1, Completed: 2, Failed: 1, Restored: 1, RestoredID: 2,
			RestoredTime: time.UnixMilli(1700000000200).UTC(), RestoredSavepoint: true, RestoredPath: "file:///sp/savepoint-job-1-0123456789ab",
			History: []CheckpointRecord{{ID: 3, Status: "FAILED", Savepoint: true, Sync: true, Triggered: time.UnixMilli(1700000000300).UTC(),
				LatestAck: time.UnixMilli(1700000000400).UTC(), Duration: time.Second, Size: 10, SyncPause: time.Millisecond,
				NumSubtasks: 4, NumAcknowledged: 3, Path: "file:///sp/x", FailureMessage: "expired"}}},
		CheckpointConfig: &CheckpointSettings{ExactlyOnce: true, Interval: time.Second, Timeout: time.Minute, MinPause: time.Millisecond,
			MaxConcurrent: 2, TolerableFailures: 3, Storage: "file:///ck", AlignedTimeout: time.Second, Retained: 2, Unaligned: true},
	}
	handle   = checkpoint.StateHandle{Path: "job-1/chk-3/uid/0-keyed", Size: 9, Inline: []byte("x"), Shared: true}
	subState = checkpoint.SubtaskState{Subtask: 1, Keyed: []checkpoint.StateHandle{handle}, Operator: []checkpoint.StateHandle{handle},
		Channel: []checkpoint.StateHandle{handle}, Watermark: 5, Finished: true}
	totals = OperatorTotals{Node: 3, Name: "Map", UID: "uid", Parallelism: 2, RecordsIn: 5, RecordsOut: 6, BackpressureWaits: 7}
)

// messages holds one value of every message type, every field non-zero.
var messages = []Message{
	RegisterTaskManager{TaskManager: "tm-1", Address: "taskmanager-tm-1", Slots: 2, DataAddress: "127.0.0.1:7000"},
	RequestSlots{JobID: "job-1", RequestID: 7, N: 3, JobMaster: "jobmaster-job-1"},
	CancelSlotRequest{JobID: "job-1", RequestID: 7},
	ReleaseSlots{JobID: "job-1", Slots: []scheduler.SlotID{slot}},
	SlotsGranted{JobID: "job-1", RequestID: 7, Slots: []SlotOffer{{Slot: slot, Address: "taskmanager-tm-1", DataAddress: "127.0.0.1:7000"}}},
	SlotsRefused{JobID: "job-1", RequestID: 7, Reason: "no slots"},
	TaskStateUpdate{JobID: "job-1", Execution: exec, State: scheduler.Failed, Failure: failure, Metrics: []OperatorMetrics{opMetrics}},
	MetricsReport{JobID: "job-1", TaskManager: "tm-1", Tasks: []TaskMetrics{taskMetrics}},
	CancelJob{JobID: "job-1"},
	DeployTask{JobID: "job-1", Execution: exec, Slot: slot, JobMaster: "jobmaster-job-1", Restore: &RestoreHandles{CheckpointID: 3,
		Operators: []checkpoint.OperatorState{{UID: "uid", Name: "Map", Parallelism: 2, MaxParallelism: 128, Subtasks: []checkpoint.SubtaskState{subState}}},
		Storage:   "file:///sp/savepoint-job-1-0123456789ab"},
		Placement: []TaskPlacement{{Vertex: 1, Subtask: 2, DataAddress: "127.0.0.1:7000"}},
		Binary:    "5e0c", Args: []string{"--rate", "10"}},
	ReleaseChannels{JobID: "job-1", Attempt: 2, Vertices: []int{1, 3}, Edges: []int{4}, JobEnded: true},
	AcknowledgeCheckpoint{JobID: "job-1", Execution: exec, CheckpointID: 3, States: []checkpoint.OperatorSnapshot{{UID: "uid", State: subState}}, SyncPause: time.Millisecond},
	DeclineCheckpoint{JobID: "job-1", Execution: exec, CheckpointID: 3, Reason: "no"},
	TaskEndOfInput{JobID: "job-1", Execution: exec},
	TriggerCheckpoint{JobID: "job-1", Execution: exec, CheckpointID: 3, Timestamp: 1700000000000, Mode: checkpoint.AtLeastOnce, Kind: checkpoint.KindSavepoint,
		Target: "s3://b/sp/savepoint-job-1-0123456789ab?region=x", Stop: true, Drain: true},
	TriggerSavepoint{JobID: "job-1", RequestID: 9, Target: "file:///sp", Stop: true, Drain: true, Checkpoint: true},
	SavepointTarget{JobID: "job-1", CheckpointID: 3, Target: "mem://sp/savepoint-job-1-0123456789ab"},
	DrainSource{JobID: "job-1", Execution: scheduler.ExecutionID{Vertex: 4, Subtask: 1, Attempt: 2}},
	SavepointResult{JobID: "job-1", RequestID: 9, Path: "file:///sp/savepoint-job-1-0123456789ab", Error: "savepoint 3 failed", CheckpointID: 3},
	AbortCheckpoint{JobID: "job-1", Execution: exec, CheckpointID: 3, Reason: "expired"},
	NotifyCheckpointComplete{JobID: "job-1", Execution: exec, CheckpointID: 3},
	CancelTask{JobID: "job-1", Execution: exec},
	HeartbeatRequest{ReplyTo: "127.0.0.1:6123/jobmaster-job-1", JobID: "job-1", Seq: 5, Reregister: true},
	TaskManagerHeartbeat{TaskManager: "tm-1", JobID: "job-1", Seq: 5, Slots: 2, Executions: []scheduler.ExecutionID{exec}},
	JobStatus{JobID: "job-1", State: scheduler.JobFailing, Restarts: 2, Executions: []ExecutionStatus{execStatus}, Operators: []OperatorTotals{totals}, Details: details},
	JobFinished{JobID: "job-1", JobName: "j", State: scheduler.JobFailed, Failure: failure, Duration: time.Second, Restarts: 3,
		Executions: []ExecutionStatus{execStatus}, Operators: []OperatorTotals{totals}, CheckpointsCompleted: 4, RestoredCheckpoint: 2,
		RestoredFrom: "file:///sp/savepoint-job-1-0123456789ab", LastCheckpointDuration: 250 * time.Millisecond,
		LastCheckpointSize: 4096, LastCheckpointSyncPause: 3 * time.Millisecond, Details: details},
}

// Every message survives encoding/json unchanged: it is plain data, ready
// for a network transport.
func TestMessagesRoundTripThroughJSON(t *testing.T) {
	for _, m := range messages {
		typ := reflect.TypeOf(m)
		t.Run(typ.Name(), func(t *testing.T) {
			requireNonZero(t, reflect.ValueOf(m), typ.Name())
			data, err := json.Marshal(m)
			require.NoError(t, err)
			back := reflect.New(typ)
			require.NoError(t, json.Unmarshal(data, back.Interface()))
			require.True(t, reflect.DeepEqual(m, back.Elem().Interface()), "%s: got %+v, want %+v", data, back.Elem().Interface(), m)
		})
	}
}

// requireNonZero fails for a zero field anywhere in v, so that a field the
// JSON form drops cannot hide behind a zero value. Fields not encoded
// (`json:"-"`) are skipped: they are what only the in-process transport
// carries.
func requireNonZero(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("%s is zero: give it a value", path)
		return
	}
	if v.Type() == reflect.TypeFor[time.Time]() {
		return // a value, not fields to fill (its location may be UTC's nil)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		requireNonZero(t, v.Elem(), path)
	case reflect.Slice:
		for i := range v.Len() {
			requireNonZero(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Tag.Get("json") == "-" {
				continue
			}
			requireNonZero(t, v.Field(i), path+"."+f.Name)
		}
	}
}

// The table above lists every message type: the package's types with an
// isMessage method, found in its source.
func TestEveryMessageTypeIsInTheTable(t *testing.T) {
	listed := map[string]bool{}
	for _, m := range messages {
		listed[reflect.TypeOf(m).Name()] = true
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	found := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "isMessage" {
				continue
			}
			recv := fn.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			name := recv.(*ast.Ident).Name
			found++
			require.True(t, listed[name], "message type %s is missing from the round-trip table", name)
		}
	}
	require.Equal(t, len(messages), found, "the table lists a type twice or one that is not a message")
}

// A task's failure crosses the transport as plain data. In this process
// errors.Is still finds the cause; from its JSON form Err rebuilds a
// *runtime.TaskError with the same text.
func TestFailureKeepsTheCauseOnlyInProcess(t *testing.T) {
	cause := errors.New("user says no")
	te := &runtime.TaskError{Job: "j", Operator: "Map", Task: runtime.TaskInfo{JobName: "j", JobID: "job-1", VertexName: "Source -> Map", Subtask: 1, Parallelism: 2, Attempt: 3},
		Err: cause, Stack: "goroutine 1"}
	f := FailureOf(te)
	require.ErrorIs(t, f.Err(), cause)

	data, err := json.Marshal(f)
	require.NoError(t, err)
	var back Failure
	require.NoError(t, json.Unmarshal(data, &back))
	require.Nil(t, back.Cause)
	got := back.Err()
	require.EqualError(t, got, te.Error())
	require.NotErrorIs(t, got, cause)
	var gotTE *runtime.TaskError
	require.ErrorAs(t, got, &gotTE)
	require.Equal(t, te.Task, gotTE.Task)
	require.Equal(t, te.Stack, gotTE.Stack)
	require.Equal(t, "Map", gotTE.Operator)

	plain := FailureOf(fmt.Errorf("could not allocate slots: %w", errors.New("none")))
	data, err = json.Marshal(plain)
	require.NoError(t, err)
	back = Failure{}
	require.NoError(t, json.Unmarshal(data, &back))
	require.EqualError(t, back.Err(), "could not allocate slots: none")
	require.Nil(t, FailureOf(nil))
	require.NoError(t, (*Failure)(nil).Err())
}
