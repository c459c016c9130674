package rpc

// sendGateway implements every gateway over a transport's send function:
// which methods a role may call is decided by the interface it is handed
// as. Both transports use it, so a gateway method is the same one line
// whatever carries the message.
type sendGateway struct {
	send    func(address string, m Message) error
	address string
}

func (g sendGateway) RegisterTaskManager(m RegisterTaskManager) error { return g.send(g.address, m) }
func (g sendGateway) RequestSlots(m RequestSlots) error               { return g.send(g.address, m) }
func (g sendGateway) CancelSlotRequest(m CancelSlotRequest) error     { return g.send(g.address, m) }
func (g sendGateway) ReleaseSlots(m ReleaseSlots) error               { return g.send(g.address, m) }
func (g sendGateway) SlotsGranted(m SlotsGranted) error               { return g.send(g.address, m) }
func (g sendGateway) SlotsRefused(m SlotsRefused) error               { return g.send(g.address, m) }
func (g sendGateway) UpdateTaskState(m TaskStateUpdate) error         { return g.send(g.address, m) }
func (g sendGateway) ReportMetrics(m MetricsReport) error             { return g.send(g.address, m) }
func (g sendGateway) CancelJob(m CancelJob) error                     { return g.send(g.address, m) }
func (g sendGateway) DeployTask(m DeployTask) error                   { return g.send(g.address, m) }
func (g sendGateway) CancelTask(m CancelTask) error                   { return g.send(g.address, m) }
func (g sendGateway) AcknowledgeCheckpoint(m AcknowledgeCheckpoint) error {
	return g.send(g.address, m)
}
func (g sendGateway) DeclineCheckpoint(m DeclineCheckpoint) error { return g.send(g.address, m) }
func (g sendGateway) EndOfInput(m TaskEndOfInput) error           { return g.send(g.address, m) }
func (g sendGateway) TriggerCheckpoint(m TriggerCheckpoint) error { return g.send(g.address, m) }
func (g sendGateway) AbortCheckpoint(m AbortCheckpoint) error     { return g.send(g.address, m) }
func (g sendGateway) NotifyCheckpointComplete(m NotifyCheckpointComplete) error {
	return g.send(g.address, m)
}
func (g sendGateway) TriggerSavepoint(m TriggerSavepoint) error { return g.send(g.address, m) }
func (g sendGateway) SavepointTarget(m SavepointTarget) error   { return g.send(g.address, m) }
func (g sendGateway) DrainSource(m DrainSource) error           { return g.send(g.address, m) }
func (g sendGateway) SavepointResult(m SavepointResult) error   { return g.send(g.address, m) }
func (g sendGateway) UpdateJobStatus(m JobStatus) error         { return g.send(g.address, m) }
func (g sendGateway) JobFinished(m JobFinished) error           { return g.send(g.address, m) }
func (g sendGateway) RequestHeartbeat(m HeartbeatRequest) error { return g.send(g.address, m) }
func (g sendGateway) HeartbeatFromTaskManager(m TaskManagerHeartbeat) error {
	return g.send(g.address, m)
}
func (g sendGateway) ReleaseChannels(m ReleaseChannels) error { return g.send(g.address, m) }
