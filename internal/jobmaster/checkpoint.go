package jobmaster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// The JobMaster's checkpoint shell: it owns the job's checkpoint.Coordinator
// (a pure state machine) as it owns the Scheduler, feeds it time, task
// states and acks, and carries out its actions.
//
// Storage is never touched on the loop: writing a checkpoint's metadata,
// its notified marker, and reading metadata for a restore run on goroutines
// whose results come back as closures on the async channel, run by the loop
// in its select like any message. Only opening the store and listing what
// is retained (CompletedStore.Recover) happen before the loop starts, when
// nothing waits on it yet.
type ckShell struct {
	cfg   jobcode.Checkpointing
	coord *checkpoint.Coordinator
	// blob and store are nil when the job has no checkpointing: the
	// coordinator then only takes savepoints, which go to their own
	// directories.
	blob  blob.Store
	store *checkpoint.CompletedStore
	tick  *time.Ticker

	local []checkpoint.Event // events raised while carrying out actions

	// retained mirrors the store's retained checkpoints, newest first, as
	// the loop knows them (the store's own list is behind its I/O lock).
	retained []checkpoint.RetainedCheckpoint
	// runningAttempt is the newest restart count (the Scheduler's
	// Restarts: with region failover tasks' attempts differ, but this only
	// grows) reported to the coordinator as running; -1 before the first.
	runningAttempt int
	completed      int
	writes         int // checkpoint metadata writes in flight

	// Restoring: deploys of the new attempt wait (held) until the
	// checkpoint to restore is loaded; restore is what they carry.
	restorePending bool // restart seen, load not started (writes in flight)
	restoring      bool
	held           []scheduler.ActDeploy
	restore        *rpc.RestoreHandles
	restoredFrom   checkpoint.ID
	// savepoint is the savepoint the job resumed from (nil: none): what
	// a restart restores while no checkpoint of the job is retained.
	savepoint *rpc.RestoreHandles
	// restoredDesc says what the job last restored from, for JobFinished.
	restoredDesc string

	// Savepoint requests by the coordinator's request number.
	spRequests map[int]*spRequest
	spNext     int

	// ended are the executions that reported their end of input: they
	// wait for a checkpoint and, their outputs ended, get its trigger
	// directly (no barrier reaches them). Executions of older attempts
	// are dropped on a restart.
	ended map[scheduler.ExecutionID]bool
	// triggered are the checkpoints in progress: the trigger message and
	// the executions it went to, so an execution whose input ends while
	// one is pending gets that trigger too, once.
	triggered map[checkpoint.ID]*ckTriggered
	// lastDuration is the last completed checkpoint's, from its trigger
	// to its metadata written (JobFinished reports it).
	lastDuration time.Duration
	// stats gathers, per checkpoint in progress, what its acks say: bytes
	// written and the longest synchronous pause; last* are the last
	// completed checkpoint's.
	stats         map[checkpoint.ID]*ckStats
	lastSize      int64
	lastSyncPause time.Duration
}

type ckStats struct {
	bytes     int64
	syncPause time.Duration
}

// ackStats adds an ack's numbers to its checkpoint's.
func (ck *ckShell) ackStats(m rpc.AcknowledgeCheckpoint) {
	if ck == nil {
		return
	}
	s := ck.stats[checkpoint.ID(m.CheckpointID)]
	if s == nil {
		if len(ck.stats) >= 64 {
			return // acks of checkpoints that ended long ago: not kept
		}
		s = &ckStats{}
		ck.stats[checkpoint.ID(m.CheckpointID)] = s
	}
	s.syncPause = max(s.syncPause, m.SyncPause)
	for _, op := range m.States {
		for _, hs := range [][]checkpoint.StateHandle{op.State.Keyed, op.State.Operator, op.State.Channel} {
			for i, h := range hs {
				// An incremental chain's earlier files were written by
				// earlier checkpoints: only its last one is new.
				if h.Shared && i < len(hs)-1 {
					continue
				}
				s.bytes += h.Size
			}
		}
	}
}

// endStats drops the numbers of checkpoint id and older ones, and returns
// id's.
func (ck *ckShell) endStats(id checkpoint.ID) ckStats {
	var out ckStats
	if s := ck.stats[id]; s != nil {
		out = *s
	}
	for k := range ck.stats {
		if k <= id {
			delete(ck.stats, k)
		}
	}
	return out
}

type ckTriggered struct {
	msg rpc.TriggerCheckpoint
	to  map[scheduler.ExecutionID]bool
}

// async runs work off the loop; the closure it returns runs on the loop.
// Work gets a context that ends when the JobMaster stops; Run waits for
// every goroutine before it returns, so none outlives it.
func (jm *JobMaster) async(work func(ctx context.Context) func()) {
	jm.asyncWG.Add(1)
	go func() {
		defer jm.asyncWG.Done()
		done := work(jm.asyncCtx)
		select {
		case jm.asyncC <- done:
		case <-jm.asyncCtx.Done():
		}
	}()
}

// startCheckpointing opens checkpoint storage and lists what it retains
// from an earlier run of the job, so ids continue. An error fails the job.
func (jm *JobMaster) startCheckpointing(ctx context.Context) error {
	var cc jobcode.Checkpointing
	if jm.cfg.Checkpoint != nil {
		cc = *jm.cfg.Checkpoint
	}
	coord, err := checkpoint.New(jm.cfg.JobID, jm.cfg.JobGraph, cc.Config)
	if err != nil {
		return fmt.Errorf("checkpointing of job %s: %w", jm.cfg.JobID, err)
	}
	newShell := func(bs blob.Store, store *checkpoint.CompletedStore) *ckShell {
		return &ckShell{cfg: cc, coord: coord, blob: bs, store: store, runningAttempt: -1,
			ended: map[scheduler.ExecutionID]bool{}, triggered: map[checkpoint.ID]*ckTriggered{}, spRequests: map[int]*spRequest{}, stats: map[checkpoint.ID]*ckStats{}}
	}
	if jm.cfg.Checkpoint == nil {
		// Savepoints only: no storage of its own, no periodic trigger.
		jm.ck = newShell(nil, nil)
		jm.ck.tick = time.NewTicker(tickEvery(coord, cc.Config))
		return jm.resume(ctx)
	}
	bs, err := blob.Open(ctx, cc.Storage)
	if err != nil {
		return fmt.Errorf("checkpointing of job %s: %w", jm.cfg.JobID, err)
	}
	log := jm.logger()
	store, err := checkpoint.NewCompletedStore(bs, jm.cfg.JobID, checkpoint.StoreOptions{
		Retained:       cc.Retained,
		OnDiscardError: func(err error) { log.Warn("checkpoint storage cleanup", "job_id", jm.cfg.JobID, "error", err) },
	})
	if err == nil {
		jm.ck = newShell(bs, store)
		jm.ck.retained, err = store.Recover(ctx)
	}
	if err != nil {
		_ = bs.Close()
		jm.ck = nil
		return fmt.Errorf("checkpointing of job %s: %w", jm.cfg.JobID, err)
	}
	if len(jm.ck.retained) > 0 {
		jm.ckStep(checkpoint.EvRestore{LatestID: jm.ck.retained[0].ID})
	}
	jm.ck.tick = time.NewTicker(tickEvery(coord, cc.Config))
	return jm.resume(ctx)
}

// tickEvery is how often the coordinator hears the time: a fraction of the
// interval, so periodic triggers are late by at most that much, bounded so
// tiny intervals do not spin and long ones still time out promptly.
func tickEvery(_ *checkpoint.Coordinator, c checkpoint.Config) time.Duration {
	d := c.Interval / 4
	if c.Timeout > 0 && (c.Timeout/4 < d || d == 0) {
		// Without periodic checkpoints only timeouts need the clock.
		d = c.Timeout / 4
	}
	if d == 0 {
		d = checkpoint.DefaultTimeout / 4
	}
	return min(max(d, 5*time.Millisecond), time.Second)
}

func (jm *JobMaster) ckTickC() <-chan time.Time {
	if jm.ck == nil {
		return nil
	}
	return jm.ck.tick.C
}

func (jm *JobMaster) stopCheckpointing() {
	if jm.ck == nil {
		return
	}
	jm.ck.tick.Stop()
	jm.asyncCancel()
	jm.asyncWG.Wait()
	if jm.ck.blob == nil {
		return
	}
	if err := jm.ck.blob.Close(); err != nil {
		jm.logger().Warn("job master: closing checkpoint storage", "job_id", jm.cfg.JobID, "error", err)
	}
}

// ckStep feeds ev to the coordinator and carries out its actions, then
// those of the events they raised.
func (jm *JobMaster) ckStep(ev checkpoint.Event) {
	if jm.ck == nil {
		return
	}
	jm.ck.local = append(jm.ck.local, ev)
	jm.ckDrain()
}

// ckDrain feeds the coordinator the events raised while carrying out
// actions, and carries out theirs.
func (jm *JobMaster) ckDrain() {
	for len(jm.ck.local) > 0 && !jm.done {
		ev := jm.ck.local[0]
		jm.ck.local = jm.ck.local[1:]
		jm.ckApply(jm.ck.coord.Handle(ev))
	}
}

func taskID(id scheduler.ExecutionID) checkpoint.TaskID {
	return checkpoint.TaskID{Vertex: id.Vertex, Subtask: id.Subtask, Attempt: id.Attempt}
}

func execID(id checkpoint.TaskID) scheduler.ExecutionID {
	return scheduler.ExecutionID{Vertex: id.Vertex, Subtask: id.Subtask, Attempt: id.Attempt}
}

// tmOf returns the gateways of the TaskManagers running the tasks (nil
// for a task the JobMaster knows no TaskManager of).
func (jm *JobMaster) tmOf(tasks []checkpoint.TaskID) []rpc.TaskManagerGateway {
	slots := map[scheduler.ExecutionID]string{}
	for _, e := range jm.sched.Executions() {
		slots[e.ID] = e.Slot.TaskManager
	}
	out := make([]rpc.TaskManagerGateway, len(tasks))
	for i, t := range tasks {
		if addr, ok := jm.tms[slots[execID(t)]]; ok {
			out[i] = jm.cfg.Transport.TaskManager(addr)
		}
	}
	return out
}

func (jm *JobMaster) ckApply(acts []checkpoint.Action) {
	ck := jm.ck
	for _, a := range acts {
		switch a := a.(type) {
		case checkpoint.ActTrigger:
			tr := &ckTriggered{to: map[scheduler.ExecutionID]bool{},
				msg: rpc.TriggerCheckpoint{JobID: jm.cfg.JobID, CheckpointID: int64(a.ID), Timestamp: a.Timestamp.UnixMilli(), Mode: a.Mode, Kind: a.Kind,
					Target: a.Dir, Stop: a.Stop, Drain: a.Drain}}
			ck.triggered[a.ID] = tr
			jm.rest.ckTriggered(a, jm.numSubtasks())
			if a.Kind == checkpoint.KindSavepoint {
				jm.savepointTriggered(a)
			}
			// Besides the tasks the coordinator names (barriers flow from
			// them), every task of it whose input has ended: its channels
			// carry no barrier any more (FLIP-147).
			tasks := slices.Clone(a.Tasks)
			for _, p := range ck.coord.Pending() {
				if p.ID != a.ID {
					continue
				}
				for _, w := range p.Waiting {
					if ck.ended[execID(w)] && !slices.Contains(tasks, w) {
						tasks = append(tasks, w)
					}
				}
			}
			for i, gw := range jm.tmOf(tasks) {
				jm.sendTrigger(gw, tr, tasks[i])
			}
		case checkpoint.ActWriteMetadata:
			if a.Metadata.Kind == checkpoint.KindSavepoint {
				jm.writeSavepoint(a)
				continue
			}
			md, req := a.Metadata, a.Request
			ck.writes++
			jm.async(func(ctx context.Context) func() {
				err := ck.store.Add(ctx, &md)
				return func() {
					ck.writes--
					if err == nil {
						ck.completed++
						ck.lastDuration = time.Since(md.Triggered) // md.Completed is the coordinator's last tick
						st := ck.endStats(md.ID)
						ck.lastSize, ck.lastSyncPause = st.bytes, st.syncPause
						ck.retained = ck.store.Retained()
						jm.rest.ckEnded(md.ID, "", "", time.Now())
						jm.logger().Info("checkpoint completed", "job_id", jm.cfg.JobID, "checkpoint", md.ID,
							"duration", ck.lastDuration, "bytes", st.bytes, "max_sync_pause", st.syncPause)
						jm.checkpointCompleted(req, md.ID)
					} else {
						err = fmt.Errorf("writing metadata of checkpoint %d: %w", md.ID, err)
						jm.rest.ckEnded(md.ID, "", err.Error(), time.Now())
					}
					jm.ckStep(checkpoint.EvMetadataWritten{ID: md.ID, Err: err})
					if ck.writes == 0 && ck.restorePending {
						jm.loadRestore()
					}
				}
			})
		case checkpoint.ActNotifyComplete:
			delete(ck.triggered, a.ID)
			if a.Savepoint {
				// A stop-with-savepoint's: it is in no checkpoint store,
				// so there is no notified marker to write first (a
				// restart restores it, see writeSavepoint).
				jm.notifyComplete(a)
				continue
			}
			// The marker first: once any task may have committed what the
			// checkpoint covers (a two-phase-commit sink), recovery must
			// never fall back past it, so the marker must exist by then.
			// If it cannot be written the tasks are not told; a sink
			// commits everything up to the next id it is told of.
			jm.async(func(ctx context.Context) func() {
				err := ck.store.MarkNotified(ctx, a.ID)
				return func() {
					if err != nil {
						jm.logger().Warn("checkpoint complete, but its notified marker was not written: tasks not notified",
							"job_id", jm.cfg.JobID, "checkpoint", a.ID, "error", err)
						if len(a.Finish) > 0 {
							// The coordinator released tasks that will
							// now never hear of it: restart from it
							// rather than wait forever (a restore
							// commits what it holds).
							jm.failJob(fmt.Errorf("checkpoint %d: tasks waiting for it cannot be told it is complete: %w", a.ID, err))
						}
						return
					}
					ck.retained = ck.store.Retained()
					jm.notifyComplete(a)
				}
			})
		case checkpoint.ActAbort:
			delete(ck.triggered, a.ID)
			jm.rest.ckEnded(a.ID, "", a.Reason, time.Now())
			jm.logger().Debug("checkpoint aborted", "job_id", jm.cfg.JobID, "checkpoint", a.ID, "reason", a.Reason)
			if a.Request != 0 {
				jm.savepointFailed(a.Request, a.ID, errors.New(a.Reason))
			}
			for i, gw := range jm.tmOf(a.Tasks) {
				if gw != nil {
					_ = gw.AbortCheckpoint(rpc.AbortCheckpoint{JobID: jm.cfg.JobID, Execution: execID(a.Tasks[i]), CheckpointID: int64(a.ID), Reason: a.Reason})
				}
			}
			// Its files stay until the store's next Recover (a new
			// JobMaster of the job) deletes the directory as an orphan.
		case checkpoint.ActEndInput:
			for i, gw := range jm.tmOf(a.Tasks) {
				if gw != nil {
					_ = gw.DrainSource(rpc.DrainSource{JobID: jm.cfg.JobID, Execution: execID(a.Tasks[i])})
				}
			}
		case checkpoint.ActDiscard:
			// As for an abort: left to the next Recover.
		case checkpoint.ActFailJob:
			jm.failJob(fmt.Errorf("checkpointing of job %s: %s", jm.cfg.JobID, a.Reason))
		}
	}
}

// notifyComplete tells the tasks of a that its checkpoint is complete.
func (jm *JobMaster) notifyComplete(a checkpoint.ActNotifyComplete) {
	for i, gw := range jm.tmOf(a.Tasks) {
		if gw != nil {
			_ = gw.NotifyCheckpointComplete(rpc.NotifyCheckpointComplete{JobID: jm.cfg.JobID, Execution: execID(a.Tasks[i]), CheckpointID: int64(a.ID)})
		}
	}
}

// sendTrigger sends the trigger of tr to task, once; an unreachable
// TaskManager declines it.
func (jm *JobMaster) sendTrigger(gw rpc.TaskManagerGateway, tr *ckTriggered, task checkpoint.TaskID) {
	id := execID(task)
	if tr.to[id] {
		return
	}
	tr.to[id] = true
	m := tr.msg
	m.Execution = id
	if gw == nil || gw.TriggerCheckpoint(m) != nil {
		jm.ck.local = append(jm.ck.local, checkpoint.EvDecline{ID: checkpoint.ID(m.CheckpointID), Task: task, Reason: "task's TaskManager unreachable"})
	}
}

// endOfInput handles a task's report that its input ended: the
// coordinator hears of it (it may trigger the final checkpoint now), and
// every checkpoint in progress that waits for the task's ack but was not
// sent to it is: the barriers of such a checkpoint cannot reach the task
// any more, as its input channels have all ended.
func (jm *JobMaster) endOfInput(id scheduler.ExecutionID) {
	ck := jm.ck
	if ck == nil {
		return
	}
	ck.ended[id] = true
	if !jm.ckKnowsRunning(id) {
		// Fed when its attempt is reported running (taskStateForCheckpoints):
		// the coordinator ignores tasks of an attempt it does not run.
		return
	}
	jm.ckStep(checkpoint.EvEndOfInput{Task: taskID(id)})
	jm.triggerEnded(id)
}

// triggerEnded sends the task whose input ended the checkpoints in
// progress that wait for it and have not been sent to it.
func (jm *JobMaster) triggerEnded(id scheduler.ExecutionID) {
	ck := jm.ck
	t := taskID(id)
	for _, p := range ck.coord.Pending() {
		tr := ck.triggered[p.ID]
		if tr == nil || tr.to[id] || !slices.Contains(p.Waiting, t) {
			continue
		}
		jm.sendTrigger(jm.tmOf([]checkpoint.TaskID{t})[0], tr, t)
	}
	jm.ckDrain()
}

// failJob fails the job from the JobMaster's side (too many failed
// checkpoints, or a checkpoint that cannot be restored): one running
// execution is reported failed to the Scheduler, which cancels the others
// and restarts or fails the job under its restart strategy, and its task
// is cancelled so that it does not outlive its attempt.
func (jm *JobMaster) failJob(err error) {
	jm.logger().Error("job master failing the job", "job_id", jm.cfg.JobID, "error", err)
	for _, e := range jm.sched.Executions() {
		if e.State.Terminal() {
			continue
		}
		if addr, ok := jm.tms[e.Slot.TaskManager]; ok {
			_ = jm.cfg.Transport.TaskManager(addr).CancelTask(rpc.CancelTask{JobID: jm.cfg.JobID, Execution: e.ID})
		}
		jm.local = append(jm.local, scheduler.EvTaskState{ID: e.ID, State: scheduler.Failed, Err: err})
		return
	}
}

// taskStateForCheckpoints tells the coordinator about a task's new state,
// and that an attempt runs once all its tasks do.
func (jm *JobMaster) taskStateForCheckpoints(id scheduler.ExecutionID, st scheduler.ExecState) {
	if jm.ck == nil {
		return
	}
	switch st {
	case scheduler.Finished:
		jm.ckStep(checkpoint.EvTaskFinished{Task: taskID(id)})
	case scheduler.Failed, scheduler.Canceled:
		jm.ckStep(checkpoint.EvTaskFailed{Task: taskID(id)})
	}
	execs := jm.sched.Executions()
	if len(execs) == 0 {
		return
	}
	// The restart count, not an execution's attempt: after a region
	// failover the regions' attempts differ (scheduler.Scheduler).
	attempt := jm.sched.Restarts()
	if attempt <= jm.ck.runningAttempt {
		return
	}
	anyRunning := false
	tasks := make([]checkpoint.TaskID, 0, len(execs))
	for _, e := range execs {
		if e.State != scheduler.Running && e.State != scheduler.Finished {
			return
		}
		anyRunning = anyRunning || e.State == scheduler.Running
		tasks = append(tasks, taskID(e.ID))
	}
	if !anyRunning {
		return
	}
	jm.ck.runningAttempt = attempt
	// The coordinator times the first checkpoint from now.
	jm.ckStep(checkpoint.EvTick{Now: time.Now()})
	jm.ckStep(checkpoint.EvTasksRunning{Attempt: attempt, Tasks: tasks})
	for _, e := range execs {
		if e.State == scheduler.Finished {
			jm.ckStep(checkpoint.EvTaskFinished{Task: taskID(e.ID)})
		}
	}
	// Tasks whose input ended before every task ran: the coordinator
	// hears of them now.
	current := map[scheduler.ExecutionID]bool{}
	for _, e := range execs {
		current[e.ID] = true
	}
	for id := range jm.ck.ended {
		if !current[id] {
			delete(jm.ck.ended, id)
		}
	}
	for _, e := range execs {
		if e.State == scheduler.Running && jm.ck.ended[e.ID] {
			jm.ckStep(checkpoint.EvEndOfInput{Task: taskID(e.ID)})
			jm.triggerEnded(e.ID)
		}
	}
}

// ckKnowsRunning says the coordinator was told that the execution runs:
// it is current, and its restart was reported running.
func (jm *JobMaster) ckKnowsRunning(id scheduler.ExecutionID) bool {
	if jm.sched.Restarts() != jm.ck.runningAttempt {
		return false
	}
	for _, e := range jm.sched.Executions() {
		if e.ID == id {
			return true
		}
	}
	return false
}

// restarting is called when the Scheduler restarts the job: the new
// attempt's deploys are held until the latest checkpoint is loaded. A
// metadata write still in flight may complete a newer checkpoint, so the
// load waits for it.
func (jm *JobMaster) restarting() {
	if jm.ck == nil {
		return
	}
	jm.ck.restore = nil
	jm.ck.restoring = true
	if jm.ck.writes > 0 {
		jm.ck.restorePending = true
		return
	}
	jm.loadRestore()
}

// loadRestore reads the metadata of the newest retained checkpoint from
// storage (off the loop) and releases the held deploys with it. A
// checkpoint whose metadata cannot be read fails the restore — loudly,
// naming it — unless it was never notified complete: then nothing can have
// committed its output, and an older retained one (or none: a fresh start)
// is as good.
func (jm *JobMaster) loadRestore() {
	ck := jm.ck
	ck.restorePending = false
	candidates := append([]checkpoint.RetainedCheckpoint(nil), ck.retained...)
	jobID := jm.cfg.JobID
	log := jm.logger()
	jm.async(func(ctx context.Context) func() {
		var md *checkpoint.Metadata
		var err error
		for _, c := range candidates {
			var data []byte
			data, err = ck.blob.Read(ctx, c.MetadataKey)
			if err == nil {
				md, err = checkpoint.DecodeMetadata(c.MetadataKey, data)
			}
			if err == nil {
				break
			}
			err = fmt.Errorf("restoring job %s from checkpoint %d: its metadata cannot be loaded: %w", jobID, c.ID, err)
			if errors.Is(err, context.Canceled) {
				break
			}
			// The marker in storage decides, not what this JobMaster
			// remembers: the same decision a new JobMaster would take
			// after a failover.
			notified, exErr := ck.blob.Exists(ctx, checkpoint.NotifiedKey(jobID, c.Kind, c.ID))
			if exErr != nil {
				err = fmt.Errorf("%w; whether it was notified complete cannot be read either: %w", err, exErr)
				break
			}
			if notified {
				err = fmt.Errorf("%w (it was notified complete, so falling back to an older checkpoint could repeat committed output)", err)
				break
			}
			log.Warn("checkpoint cannot be loaded and was never notified complete: falling back to an older one",
				"job_id", jobID, "checkpoint", c.ID, "error", err)
			err = nil
		}
		return func() {
			ck.restoring = false
			held := ck.held
			ck.held = nil
			if err != nil {
				for _, d := range held {
					jm.local = append(jm.local, scheduler.EvTaskState{ID: d.ID, State: scheduler.Failed, Err: err})
				}
				jm.logger().Error("job master: restore failed", "job_id", jobID, "error", err)
				return
			}
			switch {
			case md != nil && (ck.savepoint == nil || int64(md.ID) > ck.savepoint.CheckpointID):
				ck.restore = &rpc.RestoreHandles{CheckpointID: int64(md.ID), Operators: md.Operators}
				ck.restoredFrom = md.ID
				ck.restoredDesc = fmt.Sprintf("checkpoint %d", md.ID)
				jm.logger().Info("job restoring from checkpoint", "job_id", jobID, "checkpoint", md.ID)
				jm.ckStep(checkpoint.EvRestore{LatestID: md.ID})
			case ck.savepoint != nil:
				// No checkpoint since the resume: the savepoint is still
				// the newest consistent state.
				ck.restore = ck.savepoint
				ck.restoredFrom = checkpoint.ID(ck.savepoint.CheckpointID)
				ck.restoredDesc = ck.savepoint.Storage
				jm.logger().Info("job restoring from the savepoint it resumed from", "job_id", jobID, "savepoint", ck.savepoint.Storage)
			}
			for _, d := range held {
				jm.deploy(d)
			}
		}
	})
}

// holdDeploy keeps a deploy of the attempt being restored until its
// checkpoint is loaded; it reports whether it did.
func (jm *JobMaster) holdDeploy(d scheduler.ActDeploy) bool {
	if jm.ck == nil || !jm.ck.restoring {
		return false
	}
	jm.ck.held = append(jm.ck.held, d)
	return true
}

// unholdDeploy drops a held deploy of an execution being cancelled; it
// reports whether there was one (then the execution never ran).
func (jm *JobMaster) unholdDeploy(id scheduler.ExecutionID) bool {
	if jm.ck == nil {
		return false
	}
	for i, d := range jm.ck.held {
		if d.ID == id {
			jm.ck.held = append(jm.ck.held[:i], jm.ck.held[i+1:]...)
			return true
		}
	}
	return false
}

func (jm *JobMaster) restoreHandles() *rpc.RestoreHandles {
	if jm.ck == nil {
		return nil
	}
	return jm.ck.restore
}

// checkpointCounts are the numbers JobFinished reports.
func (jm *JobMaster) checkpointCounts() (completed int, restoredFrom int64) {
	if jm.ck == nil {
		return 0, 0
	}
	return jm.ck.completed, int64(jm.ck.restoredFrom)
}
