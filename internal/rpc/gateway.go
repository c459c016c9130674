package rpc

import "errors"

// The gateways are what one role may ask of another. A gateway method
// hands its message to the transport and returns: it never waits for the
// receiver, so no role's loop can be held by another role (the in-process
// transport queues in the receiver's mailbox, unbounded like the actor
// mailboxes under Flink's RPC; a network transport queues in its
// connection). An error means the message cannot be delivered (no endpoint
// at that address): the sender treats the receiver as gone. Delivery is
// in order per sender and receiver.

// ResourceManagerGateway is how TaskManagers and JobMasters reach the
// ResourceManager.
type ResourceManagerGateway interface {
	RegisterTaskManager(RegisterTaskManager) error
	RequestSlots(RequestSlots) error
	CancelSlotRequest(CancelSlotRequest) error
	ReleaseSlots(ReleaseSlots) error
	HeartbeatFromTaskManager(TaskManagerHeartbeat) error
}

// JobMasterGateway is how the ResourceManager, TaskManagers and the
// Dispatcher reach a job's JobMaster.
type JobMasterGateway interface {
	SlotsGranted(SlotsGranted) error
	SlotsRefused(SlotsRefused) error
	UpdateTaskState(TaskStateUpdate) error
	ReportMetrics(MetricsReport) error
	CancelJob(CancelJob) error
	AcknowledgeCheckpoint(AcknowledgeCheckpoint) error
	DeclineCheckpoint(DeclineCheckpoint) error
	EndOfInput(TaskEndOfInput) error
	TriggerSavepoint(TriggerSavepoint) error
	HeartbeatFromTaskManager(TaskManagerHeartbeat) error
}

// TaskManagerGateway is how a JobMaster reaches a TaskManager.
type TaskManagerGateway interface {
	DeployTask(DeployTask) error
	CancelTask(CancelTask) error
	TriggerCheckpoint(TriggerCheckpoint) error
	AbortCheckpoint(AbortCheckpoint) error
	NotifyCheckpointComplete(NotifyCheckpointComplete) error
	SavepointTarget(SavepointTarget) error
	DrainSource(DrainSource) error
	RequestHeartbeat(HeartbeatRequest) error
	ReleaseChannels(ReleaseChannels) error
}

// DispatcherGateway is how a JobMaster reports to the Dispatcher.
type DispatcherGateway interface {
	UpdateJobStatus(JobStatus) error
	JobFinished(JobFinished) error
	SavepointResult(SavepointResult) error
}

// Endpoint is where one role receives its messages.
type Endpoint interface {
	// Address is where other roles reach this endpoint.
	Address() string
	// Ready has a value whenever messages may be waiting: a role's loop
	// selects on it, then calls Receive.
	Ready() <-chan struct{}
	// Receive takes every message waiting, oldest first.
	Receive() []Message
	// Close frees the address; later sends to it fail.
	Close()
}

// Transport connects the roles: an endpoint per role, and gateways to the
// others by address. A gateway to an address no one listens on is not an
// error; its sends are.
type Transport interface {
	Listen(address string) (Endpoint, error)
	ResourceManager(address string) ResourceManagerGateway
	JobMaster(address string) JobMasterGateway
	TaskManager(address string) TaskManagerGateway
	Dispatcher(address string) DispatcherGateway
}

// ErrUnreachable is returned by a send to an address no endpoint listens on.
var ErrUnreachable = errors.New("rpc: no endpoint at address")
