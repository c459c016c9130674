package rpc

import (
	"fmt"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/rpc/rpcpb"
	"github.com/strom-dev/strom/internal/scheduler"
)

// The one place where the messages of this package meet their protobuf
// form (proto/strom/rpc/v1/rpc.proto): MessageToProto and
// MessageFromProto, and the helpers for the types the messages share. The
// mapping is field by field; wire_test.go round-trips every message type
// with every field set, in Go and in protobuf, so a field added on one
// side only fails there.
//
// Two things do not survive the trip, by design: Failure.Cause (the
// original error stays in its process, as with JSON), and the difference
// between a nil and an empty slice (both arrive as nil).

// MessageToProto is m as the envelope the network transport sends.
func MessageToProto(m Message) (*rpcpb.Envelope, error) {
	var e rpcpb.Envelope
	switch m := m.(type) {
	case RegisterTaskManager:
		e.Message = &rpcpb.Envelope_RegisterTaskManager{RegisterTaskManager: &rpcpb.RegisterTaskManager{
			TaskManager: m.TaskManager, Address: m.Address, Slots: int64(m.Slots), DataAddress: m.DataAddress}}
	case RequestSlots:
		e.Message = &rpcpb.Envelope_RequestSlots{RequestSlots: &rpcpb.RequestSlots{
			JobId: m.JobID, RequestId: m.RequestID, N: int64(m.N), JobMaster: m.JobMaster}}
	case CancelSlotRequest:
		e.Message = &rpcpb.Envelope_CancelSlotRequest{CancelSlotRequest: &rpcpb.CancelSlotRequest{
			JobId: m.JobID, RequestId: m.RequestID}}
	case ReleaseSlots:
		e.Message = &rpcpb.Envelope_ReleaseSlots{ReleaseSlots: &rpcpb.ReleaseSlots{
			JobId: m.JobID, Slots: convertAll(m.Slots, slotToProto)}}
	case SlotsGranted:
		e.Message = &rpcpb.Envelope_SlotsGranted{SlotsGranted: &rpcpb.SlotsGranted{
			JobId: m.JobID, RequestId: m.RequestID, Slots: convertAll(m.Slots, slotOfferToProto)}}
	case SlotsRefused:
		e.Message = &rpcpb.Envelope_SlotsRefused{SlotsRefused: &rpcpb.SlotsRefused{
			JobId: m.JobID, RequestId: m.RequestID, Reason: m.Reason}}
	case TaskStateUpdate:
		e.Message = &rpcpb.Envelope_TaskStateUpdate{TaskStateUpdate: &rpcpb.TaskStateUpdate{
			JobId: m.JobID, Execution: executionToProto(m.Execution), State: int64(m.State),
			Failure: failureToProto(m.Failure), Metrics: convertAll(m.Metrics, operatorMetricsToProto)}}
	case MetricsReport:
		e.Message = &rpcpb.Envelope_MetricsReport{MetricsReport: &rpcpb.MetricsReport{
			JobId: m.JobID, TaskManager: m.TaskManager, Tasks: convertAll(m.Tasks, taskMetricsToProto)}}
	case CancelJob:
		e.Message = &rpcpb.Envelope_CancelJob{CancelJob: &rpcpb.CancelJob{JobId: m.JobID}}
	case TriggerSavepoint:
		e.Message = &rpcpb.Envelope_TriggerSavepoint{TriggerSavepoint: &rpcpb.TriggerSavepoint{
			JobId: m.JobID, RequestId: m.RequestID, Target: m.Target, Stop: m.Stop, Drain: m.Drain, Checkpoint: m.Checkpoint}}
	case AcknowledgeCheckpoint:
		e.Message = &rpcpb.Envelope_AcknowledgeCheckpoint{AcknowledgeCheckpoint: &rpcpb.AcknowledgeCheckpoint{
			JobId: m.JobID, Execution: executionToProto(m.Execution), CheckpointId: m.CheckpointID,
			States: convertAll(m.States, operatorSnapshotToProto), SyncPauseNanos: int64(m.SyncPause)}}
	case DeclineCheckpoint:
		e.Message = &rpcpb.Envelope_DeclineCheckpoint{DeclineCheckpoint: &rpcpb.DeclineCheckpoint{
			JobId: m.JobID, Execution: executionToProto(m.Execution), CheckpointId: m.CheckpointID, Reason: m.Reason}}
	case TaskEndOfInput:
		e.Message = &rpcpb.Envelope_TaskEndOfInput{TaskEndOfInput: &rpcpb.TaskEndOfInput{
			JobId: m.JobID, Execution: executionToProto(m.Execution)}}
	case DeployTask:
		e.Message = &rpcpb.Envelope_DeployTask{DeployTask: &rpcpb.DeployTask{
			JobId: m.JobID, Execution: executionToProto(m.Execution), Slot: slotToProto(m.Slot),
			JobMaster: m.JobMaster, Restore: restoreToProto(m.Restore), Placement: placementToProto(m.Placement),
			Binary: m.Binary, Args: m.Args}}
	case ReleaseChannels:
		e.Message = &rpcpb.Envelope_ReleaseChannels{ReleaseChannels: &rpcpb.ReleaseChannels{
			JobId: m.JobID, Attempt: int64(m.Attempt), Vertices: intsToProto(m.Vertices), Edges: intsToProto(m.Edges), JobEnded: m.JobEnded}}
	case CancelTask:
		e.Message = &rpcpb.Envelope_CancelTask{CancelTask: &rpcpb.CancelTask{
			JobId: m.JobID, Execution: executionToProto(m.Execution)}}
	case TriggerCheckpoint:
		e.Message = &rpcpb.Envelope_TriggerCheckpoint{TriggerCheckpoint: &rpcpb.TriggerCheckpoint{
			JobId: m.JobID, Execution: executionToProto(m.Execution), CheckpointId: m.CheckpointID,
			Timestamp: m.Timestamp, Mode: uint32(m.Mode), Kind: uint32(m.Kind), Target: m.Target,
			Stop: m.Stop, Drain: m.Drain}}
	case HeartbeatRequest:
		e.Message = &rpcpb.Envelope_HeartbeatRequest{HeartbeatRequest: &rpcpb.HeartbeatRequest{
			ReplyTo: m.ReplyTo, JobId: m.JobID, Seq: m.Seq, Reregister: m.Reregister}}
	case TaskManagerHeartbeat:
		e.Message = &rpcpb.Envelope_TaskManagerHeartbeat{TaskManagerHeartbeat: &rpcpb.TaskManagerHeartbeat{
			TaskManager: m.TaskManager, JobId: m.JobID, Seq: m.Seq, Slots: int64(m.Slots),
			Executions: convertAll(m.Executions, executionToProto)}}
	case DrainSource:
		e.Message = &rpcpb.Envelope_DrainSource{DrainSource: &rpcpb.DrainSource{
			JobId: m.JobID, Execution: executionToProto(m.Execution)}}
	case SavepointTarget:
		e.Message = &rpcpb.Envelope_SavepointTarget{SavepointTarget: &rpcpb.SavepointTarget{
			JobId: m.JobID, CheckpointId: m.CheckpointID, Target: m.Target}}
	case AbortCheckpoint:
		e.Message = &rpcpb.Envelope_AbortCheckpoint{AbortCheckpoint: &rpcpb.AbortCheckpoint{
			JobId: m.JobID, Execution: executionToProto(m.Execution), CheckpointId: m.CheckpointID, Reason: m.Reason}}
	case NotifyCheckpointComplete:
		e.Message = &rpcpb.Envelope_NotifyCheckpointComplete{NotifyCheckpointComplete: &rpcpb.NotifyCheckpointComplete{
			JobId: m.JobID, Execution: executionToProto(m.Execution), CheckpointId: m.CheckpointID}}
	case JobStatus:
		e.Message = &rpcpb.Envelope_JobStatus{JobStatus: &rpcpb.JobStatus{
			JobId: m.JobID, State: int64(m.State), Restarts: int64(m.Restarts),
			Executions: convertAll(m.Executions, executionStatusToProto), Operators: convertAll(m.Operators, operatorTotalsToProto),
			Details: detailsToProto(m.Details)}}
	case JobFinished:
		e.Message = &rpcpb.Envelope_JobFinished{JobFinished: &rpcpb.JobFinished{
			JobId: m.JobID, JobName: m.JobName, State: int64(m.State), Failure: failureToProto(m.Failure),
			DurationNanos: int64(m.Duration), Restarts: int64(m.Restarts),
			Executions: convertAll(m.Executions, executionStatusToProto), Operators: convertAll(m.Operators, operatorTotalsToProto),
			CheckpointsCompleted: int64(m.CheckpointsCompleted), RestoredCheckpoint: m.RestoredCheckpoint,
			RestoredFrom: m.RestoredFrom, LastCheckpointDurationNanos: int64(m.LastCheckpointDuration),
			LastCheckpointSize: m.LastCheckpointSize, LastCheckpointSyncPauseNanos: int64(m.LastCheckpointSyncPause),
			Details: detailsToProto(m.Details)}}
	case SavepointResult:
		e.Message = &rpcpb.Envelope_SavepointResult{SavepointResult: &rpcpb.SavepointResult{
			JobId: m.JobID, RequestId: m.RequestID, Path: m.Path, Error: m.Error, CheckpointId: m.CheckpointID}}
	default:
		return nil, fmt.Errorf("rpc: no protobuf form for message type %T", m)
	}
	return &e, nil
}

// MessageFromProto is the message an envelope holds. An envelope with no
// message (or one this version does not know, from a newer sender) is an
// error.
func MessageFromProto(e *rpcpb.Envelope) (Message, error) {
	switch p := e.GetMessage().(type) {
	case *rpcpb.Envelope_RegisterTaskManager:
		m := p.RegisterTaskManager
		return RegisterTaskManager{TaskManager: m.GetTaskManager(), Address: m.GetAddress(), Slots: int(m.GetSlots()), DataAddress: m.GetDataAddress()}, nil
	case *rpcpb.Envelope_RequestSlots:
		m := p.RequestSlots
		return RequestSlots{JobID: m.GetJobId(), RequestID: m.GetRequestId(), N: int(m.GetN()), JobMaster: m.GetJobMaster()}, nil
	case *rpcpb.Envelope_CancelSlotRequest:
		m := p.CancelSlotRequest
		return CancelSlotRequest{JobID: m.GetJobId(), RequestID: m.GetRequestId()}, nil
	case *rpcpb.Envelope_ReleaseSlots:
		m := p.ReleaseSlots
		return ReleaseSlots{JobID: m.GetJobId(), Slots: convertAll(m.GetSlots(), slotFromProto)}, nil
	case *rpcpb.Envelope_SlotsGranted:
		m := p.SlotsGranted
		return SlotsGranted{JobID: m.GetJobId(), RequestID: m.GetRequestId(), Slots: convertAll(m.GetSlots(), slotOfferFromProto)}, nil
	case *rpcpb.Envelope_SlotsRefused:
		m := p.SlotsRefused
		return SlotsRefused{JobID: m.GetJobId(), RequestID: m.GetRequestId(), Reason: m.GetReason()}, nil
	case *rpcpb.Envelope_TaskStateUpdate:
		m := p.TaskStateUpdate
		return TaskStateUpdate{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()),
			State: scheduler.ExecState(m.GetState()), Failure: failureFromProto(m.GetFailure()),
			Metrics: convertAll(m.GetMetrics(), operatorMetricsFromProto)}, nil
	case *rpcpb.Envelope_MetricsReport:
		m := p.MetricsReport
		return MetricsReport{JobID: m.GetJobId(), TaskManager: m.GetTaskManager(), Tasks: convertAll(m.GetTasks(), taskMetricsFromProto)}, nil
	case *rpcpb.Envelope_CancelJob:
		return CancelJob{JobID: p.CancelJob.GetJobId()}, nil
	case *rpcpb.Envelope_TriggerSavepoint:
		m := p.TriggerSavepoint
		return TriggerSavepoint{JobID: m.GetJobId(), RequestID: m.GetRequestId(), Target: m.GetTarget(), Stop: m.GetStop(), Drain: m.GetDrain(), Checkpoint: m.GetCheckpoint()}, nil
	case *rpcpb.Envelope_AcknowledgeCheckpoint:
		m := p.AcknowledgeCheckpoint
		return AcknowledgeCheckpoint{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), CheckpointID: m.GetCheckpointId(),
			States: convertAll(m.GetStates(), operatorSnapshotFromProto), SyncPause: time.Duration(m.GetSyncPauseNanos())}, nil
	case *rpcpb.Envelope_DeclineCheckpoint:
		m := p.DeclineCheckpoint
		return DeclineCheckpoint{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), CheckpointID: m.GetCheckpointId(), Reason: m.GetReason()}, nil
	case *rpcpb.Envelope_TaskEndOfInput:
		m := p.TaskEndOfInput
		return TaskEndOfInput{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution())}, nil
	case *rpcpb.Envelope_DeployTask:
		m := p.DeployTask
		return DeployTask{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), Slot: slotFromProto(m.GetSlot()),
			JobMaster: m.GetJobMaster(), Restore: restoreFromProto(m.GetRestore()), Placement: placementFromProto(m.GetPlacement()),
			Binary: m.GetBinary(), Args: m.GetArgs()}, nil
	case *rpcpb.Envelope_ReleaseChannels:
		m := p.ReleaseChannels
		return ReleaseChannels{JobID: m.GetJobId(), Attempt: int(m.GetAttempt()), Vertices: intsFromProto(m.GetVertices()),
			Edges: intsFromProto(m.GetEdges()), JobEnded: m.GetJobEnded()}, nil
	case *rpcpb.Envelope_CancelTask:
		m := p.CancelTask
		return CancelTask{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution())}, nil
	case *rpcpb.Envelope_TriggerCheckpoint:
		m := p.TriggerCheckpoint
		return TriggerCheckpoint{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), CheckpointID: m.GetCheckpointId(),
			Timestamp: m.GetTimestamp(), Mode: checkpoint.Mode(m.GetMode()), Kind: checkpoint.Kind(m.GetKind()), Target: m.GetTarget(),
			Stop: m.GetStop(), Drain: m.GetDrain()}, nil
	case *rpcpb.Envelope_HeartbeatRequest:
		m := p.HeartbeatRequest
		return HeartbeatRequest{ReplyTo: m.GetReplyTo(), JobID: m.GetJobId(), Seq: m.GetSeq(), Reregister: m.GetReregister()}, nil
	case *rpcpb.Envelope_TaskManagerHeartbeat:
		m := p.TaskManagerHeartbeat
		return TaskManagerHeartbeat{TaskManager: m.GetTaskManager(), JobID: m.GetJobId(), Seq: m.GetSeq(), Slots: int(m.GetSlots()),
			Executions: convertAll(m.GetExecutions(), executionFromProto)}, nil
	case *rpcpb.Envelope_DrainSource:
		m := p.DrainSource
		return DrainSource{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution())}, nil
	case *rpcpb.Envelope_SavepointTarget:
		m := p.SavepointTarget
		return SavepointTarget{JobID: m.GetJobId(), CheckpointID: m.GetCheckpointId(), Target: m.GetTarget()}, nil
	case *rpcpb.Envelope_AbortCheckpoint:
		m := p.AbortCheckpoint
		return AbortCheckpoint{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), CheckpointID: m.GetCheckpointId(), Reason: m.GetReason()}, nil
	case *rpcpb.Envelope_NotifyCheckpointComplete:
		m := p.NotifyCheckpointComplete
		return NotifyCheckpointComplete{JobID: m.GetJobId(), Execution: executionFromProto(m.GetExecution()), CheckpointID: m.GetCheckpointId()}, nil
	case *rpcpb.Envelope_JobStatus:
		m := p.JobStatus
		return JobStatus{JobID: m.GetJobId(), State: scheduler.JobState(m.GetState()), Restarts: int(m.GetRestarts()),
			Executions: convertAll(m.GetExecutions(), executionStatusFromProto), Operators: convertAll(m.GetOperators(), operatorTotalsFromProto),
			Details: detailsFromProto(m.GetDetails())}, nil
	case *rpcpb.Envelope_JobFinished:
		m := p.JobFinished
		return JobFinished{JobID: m.GetJobId(), JobName: m.GetJobName(), State: scheduler.JobState(m.GetState()),
			Failure: failureFromProto(m.GetFailure()), Duration: time.Duration(m.GetDurationNanos()), Restarts: int(m.GetRestarts()),
			Executions: convertAll(m.GetExecutions(), executionStatusFromProto), Operators: convertAll(m.GetOperators(), operatorTotalsFromProto),
			CheckpointsCompleted: int(m.GetCheckpointsCompleted()), RestoredCheckpoint: m.GetRestoredCheckpoint(),
			RestoredFrom: m.GetRestoredFrom(), LastCheckpointDuration: time.Duration(m.GetLastCheckpointDurationNanos()),
			LastCheckpointSize: m.GetLastCheckpointSize(), LastCheckpointSyncPause: time.Duration(m.GetLastCheckpointSyncPauseNanos()),
			Details: detailsFromProto(m.GetDetails())}, nil
	case *rpcpb.Envelope_SavepointResult:
		m := p.SavepointResult
		return SavepointResult{JobID: m.GetJobId(), RequestID: m.GetRequestId(), Path: m.GetPath(), Error: m.GetError(), CheckpointID: m.GetCheckpointId()}, nil
	}
	return nil, fmt.Errorf("rpc: envelope holds no known message (%T)", e.GetMessage())
}

// convertAll maps a slice; empty becomes nil, as protobuf cannot tell the
// two apart anyway.
func convertAll[A, B any](in []A, f func(A) B) []B {
	if len(in) == 0 {
		return nil
	}
	out := make([]B, len(in))
	for i, a := range in {
		out[i] = f(a)
	}
	return out
}

func executionToProto(id scheduler.ExecutionID) *rpcpb.ExecutionID {
	return &rpcpb.ExecutionID{Vertex: int64(id.Vertex), Subtask: int64(id.Subtask), Attempt: int64(id.Attempt)}
}

func executionFromProto(p *rpcpb.ExecutionID) scheduler.ExecutionID {
	return scheduler.ExecutionID{Vertex: int(p.GetVertex()), Subtask: int(p.GetSubtask()), Attempt: int(p.GetAttempt())}
}

func slotToProto(s scheduler.SlotID) *rpcpb.SlotID {
	return &rpcpb.SlotID{TaskManager: s.TaskManager, Index: int64(s.Index)}
}

func slotFromProto(p *rpcpb.SlotID) scheduler.SlotID {
	return scheduler.SlotID{TaskManager: p.GetTaskManager(), Index: int(p.GetIndex())}
}

func slotOfferToProto(o SlotOffer) *rpcpb.SlotOffer {
	return &rpcpb.SlotOffer{Slot: slotToProto(o.Slot), Address: o.Address, DataAddress: o.DataAddress}
}

func slotOfferFromProto(p *rpcpb.SlotOffer) SlotOffer {
	return SlotOffer{Slot: slotFromProto(p.GetSlot()), Address: p.GetAddress(), DataAddress: p.GetDataAddress()}
}

func placementToProto(ps []TaskPlacement) []*rpcpb.TaskPlacement {
	var out []*rpcpb.TaskPlacement
	for _, p := range ps {
		out = append(out, &rpcpb.TaskPlacement{Vertex: int64(p.Vertex), Subtask: int64(p.Subtask), DataAddress: p.DataAddress})
	}
	return out
}

func placementFromProto(ps []*rpcpb.TaskPlacement) []TaskPlacement {
	var out []TaskPlacement
	for _, p := range ps {
		out = append(out, TaskPlacement{Vertex: int(p.GetVertex()), Subtask: int(p.GetSubtask()), DataAddress: p.GetDataAddress()})
	}
	return out
}

// failureToProto drops Cause: the original error stays in this process.
func failureToProto(f *Failure) *rpcpb.Failure {
	if f == nil {
		return nil
	}
	return &rpcpb.Failure{Message: f.Message, Job: f.Job, JobId: f.JobID, Operator: f.Operator, Task: f.Task,
		Subtask: int64(f.Subtask), Parallelism: int64(f.Parallelism), Attempt: int64(f.Attempt), Stack: f.Stack, NoRestart: f.NoRestart}
}

func failureFromProto(p *rpcpb.Failure) *Failure {
	if p == nil {
		return nil
	}
	return &Failure{Message: p.GetMessage(), Job: p.GetJob(), JobID: p.GetJobId(), Operator: p.GetOperator(), Task: p.GetTask(),
		Subtask: int(p.GetSubtask()), Parallelism: int(p.GetParallelism()), Attempt: int(p.GetAttempt()), Stack: p.GetStack(), NoRestart: p.GetNoRestart()}
}

func executionStatusToProto(s ExecutionStatus) *rpcpb.ExecutionStatus {
	p := &rpcpb.ExecutionStatus{Id: executionToProto(s.ID), State: int64(s.State), Slot: slotToProto(s.Slot), Failure: failureToProto(s.Failure),
		StartUnixNanos: timeToProto(s.Start), EndUnixNanos: timeToProto(s.End)}
	if s.Metrics != nil {
		p.Metrics = taskMetricsToProto(*s.Metrics)
	}
	return p
}

func executionStatusFromProto(p *rpcpb.ExecutionStatus) ExecutionStatus {
	s := ExecutionStatus{ID: executionFromProto(p.GetId()), State: scheduler.ExecState(p.GetState()), Slot: slotFromProto(p.GetSlot()),
		Failure: failureFromProto(p.GetFailure()), Start: timeFromProto(p.GetStartUnixNanos()), End: timeFromProto(p.GetEndUnixNanos())}
	if p.GetMetrics() != nil {
		m := taskMetricsFromProto(p.GetMetrics())
		s.Metrics = &m
	}
	return s
}

func taskMetricsToProto(m TaskMetrics) *rpcpb.TaskMetrics {
	return &rpcpb.TaskMetrics{Execution: executionToProto(m.Execution), Operators: convertAll(m.Operators, operatorMetricsToProto),
		BusyMsPerSecond: m.BusyMsPerSecond, IdleMsPerSecond: m.IdleMsPerSecond, BackPressuredMsPerSecond: m.BackPressuredMsPerSecond}
}

func taskMetricsFromProto(p *rpcpb.TaskMetrics) TaskMetrics {
	return TaskMetrics{Execution: executionFromProto(p.GetExecution()), Operators: convertAll(p.GetOperators(), operatorMetricsFromProto),
		BusyMsPerSecond: p.GetBusyMsPerSecond(), IdleMsPerSecond: p.GetIdleMsPerSecond(), BackPressuredMsPerSecond: p.GetBackPressuredMsPerSecond()}
}

func operatorMetricsToProto(m OperatorMetrics) *rpcpb.OperatorMetrics {
	return &rpcpb.OperatorMetrics{Vertex: int64(m.Vertex), Subtask: int64(m.Subtask), Node: int64(m.Node), Name: m.Name, Uid: m.UID,
		IsSource: m.IsSource, RecordsIn: m.RecordsIn, RecordsOut: m.RecordsOut, BackpressureWaits: m.BackpressureWaits, Watermark: m.Watermark}
}

func operatorMetricsFromProto(p *rpcpb.OperatorMetrics) OperatorMetrics {
	return OperatorMetrics{Vertex: int(p.GetVertex()), Subtask: int(p.GetSubtask()), Node: int(p.GetNode()), Name: p.GetName(), UID: p.GetUid(),
		IsSource: p.GetIsSource(), RecordsIn: p.GetRecordsIn(), RecordsOut: p.GetRecordsOut(), BackpressureWaits: p.GetBackpressureWaits(), Watermark: p.GetWatermark()}
}

func operatorTotalsToProto(t OperatorTotals) *rpcpb.OperatorTotals {
	return &rpcpb.OperatorTotals{Node: int64(t.Node), Name: t.Name, Uid: t.UID, Parallelism: int64(t.Parallelism),
		RecordsIn: t.RecordsIn, RecordsOut: t.RecordsOut, BackpressureWaits: t.BackpressureWaits}
}

func operatorTotalsFromProto(p *rpcpb.OperatorTotals) OperatorTotals {
	return OperatorTotals{Node: int(p.GetNode()), Name: p.GetName(), UID: p.GetUid(), Parallelism: int(p.GetParallelism()),
		RecordsIn: p.GetRecordsIn(), RecordsOut: p.GetRecordsOut(), BackpressureWaits: p.GetBackpressureWaits()}
}

func restoreToProto(r *RestoreHandles) *rpcpb.RestoreHandles {
	if r == nil {
		return nil
	}
	return &rpcpb.RestoreHandles{CheckpointId: r.CheckpointID, Operators: convertAll(r.Operators, operatorStateToProto), Storage: r.Storage}
}

func restoreFromProto(p *rpcpb.RestoreHandles) *RestoreHandles {
	if p == nil {
		return nil
	}
	return &RestoreHandles{CheckpointID: p.GetCheckpointId(), Operators: convertAll(p.GetOperators(), operatorStateFromProto), Storage: p.GetStorage()}
}

func operatorStateToProto(s checkpoint.OperatorState) *rpcpb.OperatorState {
	return &rpcpb.OperatorState{Uid: s.UID, Name: s.Name, Parallelism: int64(s.Parallelism), MaxParallelism: int64(s.MaxParallelism),
		Subtasks: convertAll(s.Subtasks, subtaskStateToProto)}
}

func operatorStateFromProto(p *rpcpb.OperatorState) checkpoint.OperatorState {
	return checkpoint.OperatorState{UID: p.GetUid(), Name: p.GetName(), Parallelism: int(p.GetParallelism()), MaxParallelism: int(p.GetMaxParallelism()),
		Subtasks: convertAll(p.GetSubtasks(), subtaskStateFromProto)}
}

func operatorSnapshotToProto(s checkpoint.OperatorSnapshot) *rpcpb.OperatorSnapshot {
	return &rpcpb.OperatorSnapshot{Uid: s.UID, State: subtaskStateToProto(s.State)}
}

func operatorSnapshotFromProto(p *rpcpb.OperatorSnapshot) checkpoint.OperatorSnapshot {
	return checkpoint.OperatorSnapshot{UID: p.GetUid(), State: subtaskStateFromProto(p.GetState())}
}

func subtaskStateToProto(s checkpoint.SubtaskState) *rpcpb.SubtaskState {
	return &rpcpb.SubtaskState{Subtask: int64(s.Subtask), Keyed: convertAll(s.Keyed, stateHandleToProto),
		Operator: convertAll(s.Operator, stateHandleToProto), Channel: convertAll(s.Channel, stateHandleToProto),
		Watermark: s.Watermark, Finished: s.Finished}
}

func subtaskStateFromProto(p *rpcpb.SubtaskState) checkpoint.SubtaskState {
	return checkpoint.SubtaskState{Subtask: int(p.GetSubtask()), Keyed: convertAll(p.GetKeyed(), stateHandleFromProto),
		Operator: convertAll(p.GetOperator(), stateHandleFromProto), Channel: convertAll(p.GetChannel(), stateHandleFromProto),
		Watermark: p.GetWatermark(), Finished: p.GetFinished()}
}

func stateHandleToProto(h checkpoint.StateHandle) *rpcpb.StateHandle {
	return &rpcpb.StateHandle{Path: h.Path, Size: h.Size, Inline: h.Inline, Shared: h.Shared}
}

func stateHandleFromProto(p *rpcpb.StateHandle) checkpoint.StateHandle {
	var inline []byte
	if len(p.GetInline()) > 0 {
		inline = p.GetInline()
	}
	return checkpoint.StateHandle{Path: p.GetPath(), Size: p.GetSize(), Inline: inline, Shared: p.GetShared()}
}

// timeToProto is t in Unix nanoseconds, 0 for the zero time (whose
// UnixNano is out of range).
func timeToProto(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeFromProto is the inverse of timeToProto, in UTC.
func timeFromProto(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func detailsToProto(d JobDetails) *rpcpb.JobDetails {
	p := &rpcpb.JobDetails{Exceptions: convertAll(d.Exceptions, func(e JobException) *rpcpb.JobException {
		return &rpcpb.JobException{TimeUnixNanos: timeToProto(e.Time), Failure: failureToProto(&e.Failure), TaskManager: e.TaskManager}
	})}
	c := d.Checkpoints
	p.Checkpoints = &rpcpb.CheckpointStats{Total: int64(c.Total), InProgress: int64(c.InProgress), Completed: int64(c.Completed), Failed: int64(c.Failed),
		History: convertAll(c.History, checkpointRecordToProto), Restored: int64(c.Restored), RestoredId: c.RestoredID,
		RestoredTimeUnixNanos: timeToProto(c.RestoredTime), RestoredSavepoint: c.RestoredSavepoint, RestoredPath: c.RestoredPath}
	if s := d.CheckpointConfig; s != nil {
		p.CheckpointConfig = &rpcpb.CheckpointSettings{ExactlyOnce: s.ExactlyOnce, IntervalNanos: int64(s.Interval), TimeoutNanos: int64(s.Timeout),
			MinPauseNanos: int64(s.MinPause), MaxConcurrent: int64(s.MaxConcurrent), TolerableFailures: int64(s.TolerableFailures),
			Storage: s.Storage, AlignedTimeoutNanos: int64(s.AlignedTimeout), Retained: int64(s.Retained), Unaligned: s.Unaligned}
	}
	return p
}

func detailsFromProto(p *rpcpb.JobDetails) JobDetails {
	d := JobDetails{Exceptions: convertAll(p.GetExceptions(), func(e *rpcpb.JobException) JobException {
		out := JobException{Time: timeFromProto(e.GetTimeUnixNanos()), TaskManager: e.GetTaskManager()}
		if f := failureFromProto(e.GetFailure()); f != nil {
			out.Failure = *f
		}
		return out
	})}
	c := p.GetCheckpoints()
	d.Checkpoints = CheckpointStats{Total: int(c.GetTotal()), InProgress: int(c.GetInProgress()), Completed: int(c.GetCompleted()), Failed: int(c.GetFailed()),
		History: convertAll(c.GetHistory(), checkpointRecordFromProto), Restored: int(c.GetRestored()), RestoredID: c.GetRestoredId(),
		RestoredTime: timeFromProto(c.GetRestoredTimeUnixNanos()), RestoredSavepoint: c.GetRestoredSavepoint(), RestoredPath: c.GetRestoredPath()}
	if s := p.GetCheckpointConfig(); s != nil {
		d.CheckpointConfig = &CheckpointSettings{ExactlyOnce: s.GetExactlyOnce(), Interval: time.Duration(s.GetIntervalNanos()),
			Timeout: time.Duration(s.GetTimeoutNanos()), MinPause: time.Duration(s.GetMinPauseNanos()), MaxConcurrent: int(s.GetMaxConcurrent()),
			TolerableFailures: int(s.GetTolerableFailures()), Storage: s.GetStorage(), AlignedTimeout: time.Duration(s.GetAlignedTimeoutNanos()),
			Retained: int(s.GetRetained()), Unaligned: s.GetUnaligned()}
	}
	return d
}

func checkpointRecordToProto(r CheckpointRecord) *rpcpb.CheckpointRecord {
	return &rpcpb.CheckpointRecord{Id: r.ID, Status: r.Status, Savepoint: r.Savepoint, Sync: r.Sync,
		TriggeredUnixNanos: timeToProto(r.Triggered), LatestAckUnixNanos: timeToProto(r.LatestAck), DurationNanos: int64(r.Duration),
		Size: r.Size, SyncPauseNanos: int64(r.SyncPause), NumSubtasks: int64(r.NumSubtasks), NumAcknowledged: int64(r.NumAcknowledged),
		Path: r.Path, FailureMessage: r.FailureMessage}
}

func checkpointRecordFromProto(p *rpcpb.CheckpointRecord) CheckpointRecord {
	return CheckpointRecord{ID: p.GetId(), Status: p.GetStatus(), Savepoint: p.GetSavepoint(), Sync: p.GetSync(),
		Triggered: timeFromProto(p.GetTriggeredUnixNanos()), LatestAck: timeFromProto(p.GetLatestAckUnixNanos()),
		Duration: time.Duration(p.GetDurationNanos()), Size: p.GetSize(), SyncPause: time.Duration(p.GetSyncPauseNanos()),
		NumSubtasks: int(p.GetNumSubtasks()), NumAcknowledged: int(p.GetNumAcknowledged()), Path: p.GetPath(), FailureMessage: p.GetFailureMessage()}
}

func intsToProto(xs []int) []int64 {
	if xs == nil {
		return nil
	}
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

func intsFromProto(xs []int64) []int {
	if len(xs) == 0 {
		return nil
	}
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x)
	}
	return out
}
