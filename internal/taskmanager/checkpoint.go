package taskmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
	"github.com/strom-dev/strom/internal/statebackend"
)

// The TaskManager's share of checkpoints: it routes the JobMaster's
// trigger, abort and notification messages to its tasks (mails, so its
// loop never waits for a task), uploads each snapshot to checkpoint storage
// off the task goroutine (the asynchronous part of a checkpoint: the task
// goes on processing while its state is written) and acknowledges it with
// the handles of the files written. A task deployed with a restore reads
// the files of the checkpoint it starts from itself.
//
// Task state layout in storage, under the checkpoint's directory
// (checkpoint.CheckpointDir):
//
//	<uid>/<subtask>-keyed     the keyed-state stream (statebackend format)
//	<uid>/<subtask>-operator  the operator-state lists, as JSON
//	<uid>/<subtask>-channel   the task's channel state of an unaligned
//	                          checkpoint (runtime.EncodeChannelState), under
//	                          the chain head's UID: the in-flight records
//	                          of the task's input and output channels
//
// A savepoint's files go to its own directory instead (Target of the
// trigger, announced to every TaskManager of the job by SavepointTarget),
// with the same layout and paths relative to that directory, so it is
// self-contained. A restore reads from RestoreHandles.Storage when set
// (a savepoint's directory), else from the job's checkpoint storage.
//
// Files are never inlined in the metadata yet: every state a restore reads
// comes from storage, one path for all sizes.

// spKey names a savepoint of a job.
type spKey struct {
	job string
	id  int64
}

// spTarget is where a savepoint's files go, once announced: ready is
// closed when target is set. Uploads may start before the announcement
// reaches this TaskManager (the barrier travels on the data plane, the
// announcement through the loop), so they wait for it.
type spTarget struct {
	target string
	ready  chan struct{}
}

// keepSavepointTargets bounds the announced targets remembered per job:
// older savepoints have long been uploaded or aborted.
const keepSavepointTargets = 16

// savepointWait bounds how long an upload waits for its savepoint's
// target; the coordinator's timeout aborts the savepoint in any case.
const savepointWait = time.Minute

// savepointTarget returns the (possibly not yet announced) target of
// savepoint id of job; with target != "" it announces it.
func (tm *TaskManager) savepointTarget(job string, id int64, target string) *spTarget {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	k := spKey{job, id}
	t := tm.savepoints[k]
	if t == nil {
		t = &spTarget{ready: make(chan struct{})}
		tm.savepoints[k] = t
		var ids []int64
		for o := range tm.savepoints {
			if o.job == job {
				ids = append(ids, o.id)
			}
		}
		if len(ids) > keepSavepointTargets {
			delete(tm.savepoints, spKey{job, slices.Min(ids)})
		}
	}
	if target != "" && t.target == "" {
		t.target = target
		close(t.ready)
	}
	return t
}

// storage returns the TaskManager's handle on checkpoint storage at url,
// opened once and closed when the TaskManager stops (mem:// stores are
// shared per process, so one handle per URL is what every task sees).
func (tm *TaskManager) storage(ctx context.Context, url string) (blob.Store, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if s, ok := tm.stores[url]; ok {
		return s, nil
	}
	s, err := blob.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("task manager %s: opening checkpoint storage: %w", tm.cfg.ID, err)
	}
	tm.stores[url] = s
	return s, nil
}

func (tm *TaskManager) closeStores() {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for url, s := range tm.stores {
		if err := s.Close(); err != nil {
			tm.cfg.Logger.Warn("task manager: closing checkpoint storage", "task_manager", tm.cfg.ID, "url", url, "error", err)
		}
	}
	clear(tm.stores)
}

// running returns the built task of an execution here, nil if none.
func (tm *TaskManager) running(job string, id scheduler.ExecutionID) (*slotTask, *runtime.Task) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	st := tm.tasks[taskKey{job, id}]
	if st == nil {
		return nil, nil
	}
	return st, st.task
}

// checkpointMessage handles the checkpoint messages of the loop; it
// reports whether m was one.
func (tm *TaskManager) checkpointMessage(ctx context.Context, m rpc.Message) bool {
	switch m := m.(type) {
	case rpc.SavepointTarget:
		tm.savepointTarget(m.JobID, m.CheckpointID, m.Target)
	case rpc.TriggerCheckpoint:
		if m.Target != "" {
			tm.savepointTarget(m.JobID, m.CheckpointID, m.Target)
		}
		st, task := tm.running(m.JobID, m.Execution)
		if task == nil {
			tm.decline(m.JobID, m.Execution, st, m.CheckpointID, "task is not running")
			return true
		}
		// A task with inputs is triggered once its producers finished or
		// its input ended (FLIP-147): the runtime takes it at the end of
		// its input, where no barrier can reach it any more.
		opts := runtime.CheckpointOptions{ID: m.CheckpointID, Timestamp: m.Timestamp, Mode: network.ExactlyOnce, Kind: network.Checkpoint}
		switch m.Mode {
		case checkpoint.AtLeastOnce:
			opts.Mode = network.AtLeastOnce
		case checkpoint.Unaligned:
			opts.Mode = network.Unaligned
		case checkpoint.ExactlyOnce:
			if job, err := tm.cfg.Code.Lookup(m.JobID); err == nil && job.Config.Checkpoint != nil && m.Kind == checkpoint.KindCheckpoint {
				// Carried by the barriers: each task decides on its
				// own alignment (a savepoint always aligns).
				opts.AlignedTimeout = job.Config.Checkpoint.AlignedTimeout.Milliseconds()
			}
		}
		if m.Kind == checkpoint.KindSavepoint {
			opts.Kind = network.Savepoint
			opts.Stop, opts.Drain = m.Stop, m.Drain
		}
		if err := task.TriggerCheckpoint(ctx, opts); err != nil && !errors.Is(err, runtime.ErrTaskStopped) {
			tm.decline(m.JobID, m.Execution, st, m.CheckpointID, err.Error())
		}
	case rpc.AbortCheckpoint:
		if _, task := tm.running(m.JobID, m.Execution); task != nil {
			// Both are mails: the abort stops an alignment, the
			// notification tells the operators (a sink drops what it
			// staged for the id).
			_ = task.AbortCheckpoint(ctx, m.CheckpointID)
			_ = task.NotifyCheckpointAborted(ctx, m.CheckpointID)
		}
	case rpc.DrainSource:
		if _, task := tm.running(m.JobID, m.Execution); task != nil {
			// A mail: the source ends its input between two reads.
			if err := task.EndInput(ctx); err != nil && !errors.Is(err, runtime.ErrTaskStopped) {
				tm.cfg.Logger.Warn("task manager: source not drained", "execution", m.Execution.String(), "error", err)
			}
		}
	case rpc.NotifyCheckpointComplete:
		if _, task := tm.running(m.JobID, m.Execution); task != nil {
			_ = task.NotifyCheckpointComplete(ctx, m.CheckpointID)
		}
	default:
		return false
	}
	return true
}

func (tm *TaskManager) decline(job string, id scheduler.ExecutionID, st *slotTask, ckID int64, reason string) {
	if st == nil {
		return // nobody to tell: the JobMaster learns of the task's end
	}
	d := rpc.DeclineCheckpoint{JobID: job, Execution: id, CheckpointID: ckID, Reason: reason}
	_ = tm.cfg.Transport.JobMaster(st.jobMaster).DeclineCheckpoint(d)
}

// onCheckpoint is a task's Task.OnCheckpoint: it runs on the task
// goroutine, so it only hands the snapshot to an upload goroutine.
func (tm *TaskManager) onCheckpoint(ctx context.Context, job *jobcode.Job, m rpc.DeployTask, st *slotTask) func(int64, runtime.TaskSnapshot, error) {
	return func(id int64, snap runtime.TaskSnapshot, err error) {
		if err != nil {
			snap.AbandonLinks(err)
			if errors.Is(err, runtime.ErrTaskStopped) {
				return // the task's end reaches the coordinator instead
			}
			tm.decline(m.JobID, m.Execution, st, id, err.Error())
			return
		}
		// The synchronous part, as the task measured it: what processing
		// stopped for (the upload below runs while it goes on).
		pause := snap.SyncDuration
		var sp *spTarget
		if snap.Options.Kind == network.Savepoint {
			sp = tm.savepointTarget(m.JobID, id, "")
		}
		tm.wg.Add(1)
		go func() {
			defer tm.wg.Done()
			states, err := tm.upload(ctx, job, id, snap, sp)
			jm := tm.cfg.Transport.JobMaster(m.JobMaster)
			if err != nil {
				_ = jm.DeclineCheckpoint(rpc.DeclineCheckpoint{JobID: m.JobID, Execution: m.Execution, CheckpointID: id, Reason: err.Error()})
				return
			}
			_ = jm.AcknowledgeCheckpoint(rpc.AcknowledgeCheckpoint{JobID: m.JobID, Execution: m.Execution, CheckpointID: id, States: states, SyncPause: pause})
		}()
	}
}

// upload writes each operator's state of snap and returns their handles:
// to the job's checkpoint storage, or for a savepoint (sp set) to the
// savepoint's own directory once its target is known.
func (tm *TaskManager) upload(ctx context.Context, job *jobcode.Job, id int64, snap runtime.TaskSnapshot, sp *spTarget) (_ []checkpoint.OperatorSnapshot, err error) {
	// Every incremental link ends here: landed, or failed (so the chain's
	// next snapshot is a base and no later link waits for it).
	defer func() { snap.AbandonLinks(err) }()
	// The asynchronous part: state the task froze is encoded here, on the
	// upload goroutine, while the task goes on.
	if err := snap.Materialize(); err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	var store blob.Store
	var dir string
	if sp != nil {
		wait := time.NewTimer(savepointWait)
		defer wait.Stop()
		select {
		case <-sp.ready:
		case <-wait.C:
			return nil, fmt.Errorf("savepoint %d: where its files go was not announced within %v", id, savepointWait)
		case <-ctx.Done():
			return nil, fmt.Errorf("savepoint %d: %w", id, ctx.Err())
		}
		// Each savepoint is a directory of its own, written once: no
		// handle is kept open for it.
		s, err := blob.Open(ctx, sp.target)
		if err != nil {
			return nil, fmt.Errorf("savepoint %d: %w", id, err)
		}
		defer s.Close()
		store = s
	} else {
		cc := job.Config.Checkpoint
		if cc == nil {
			return nil, fmt.Errorf("job %s has no checkpoint storage", job.ID)
		}
		s, err := tm.storage(ctx, cc.Storage)
		if err != nil {
			return nil, err
		}
		store, dir = s, checkpoint.CheckpointDir(job.ID, checkpoint.KindCheckpoint, checkpoint.ID(id))
	}
	sub := strconv.Itoa(snap.Task.Subtask)
	var out []checkpoint.OperatorSnapshot
	for i, op := range snap.Operators {
		ss := checkpoint.SubtaskState{Subtask: snap.Task.Subtask, Watermark: op.Watermark}
		if i == 0 && !snap.Channel.Empty() {
			// The task's channel state goes with its chain head.
			data := runtime.EncodeChannelState(snap.Channel)
			key := dir + op.UID + "/" + sub + "-channel"
			if err := store.Write(ctx, key, data, blob.WriteOptions{}); err != nil {
				return nil, fmt.Errorf("checkpoint %d: channel state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			ss.Channel = []checkpoint.StateHandle{{Path: key, Size: int64(len(data))}}
		}
		if l := op.KeyedLink; l != nil && sp == nil {
			// An incremental checkpoint: a shared file, named for the
			// attempt and checkpoint that wrote it, and the chain of
			// files a restore needs.
			key := fmt.Sprintf("%s%s/%s-%d-%d-keyed", checkpoint.SharedDir(job.ID), op.UID, sub, snap.Task.Attempt, id)
			err := store.Write(ctx, key, op.Keyed, blob.WriteOptions{})
			l.Finish(runtime.KeyedFile{Path: key, Size: int64(len(op.Keyed))}, err)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: keyed state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			files, err := l.Files(ctx)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: keyed state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			for _, f := range files {
				ss.Keyed = append(ss.Keyed, checkpoint.StateHandle{Path: f.Path, Size: f.Size, Shared: true})
			}
		} else if op.Keyed != nil {
			key := dir + op.UID + "/" + sub + "-keyed"
			if err := store.Write(ctx, key, op.Keyed, blob.WriteOptions{}); err != nil {
				return nil, fmt.Errorf("checkpoint %d: keyed state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			ss.Keyed = []checkpoint.StateHandle{{Path: key, Size: int64(len(op.Keyed))}}
		}
		if len(op.Operator) > 0 {
			data, err := json.Marshal(op.Operator)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d: operator state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			key := dir + op.UID + "/" + sub + "-operator"
			if err := store.Write(ctx, key, data, blob.WriteOptions{}); err != nil {
				return nil, fmt.Errorf("checkpoint %d: operator state of %s/%d: %w", id, op.UID, snap.Task.Subtask, err)
			}
			ss.Operator = []checkpoint.StateHandle{{Path: key, Size: int64(len(data))}}
		}
		out = append(out, checkpoint.OperatorSnapshot{UID: op.UID, State: ss})
	}
	return out, nil
}

// readRestore reads the state files of the checkpoint subtask of vertex v
// restores from and redistributes them to the vertex's parallelism (which
// may differ from the checkpoint's). Every subtask's files of the chain's
// operators are read: a keyed stream covers the key groups of its old
// subtask, and only Redistribute knows which overlap this one's. The
// subtask's own channel state, if the checkpoint was unaligned, comes back
// apart.
func (tm *TaskManager) readRestore(ctx context.Context, job *jobcode.Job, v *jobgraph.JobVertex, subtask int, r *rpc.RestoreHandles) (runtime.JobRestore, *runtime.ChannelState, error) {
	if err := checkChannelStateParallelism(job, r); err != nil {
		return nil, nil, err
	}
	var store blob.Store
	switch {
	case r.Storage != "":
		// A savepoint: its paths are relative to its directory.
		s, err := blob.Open(ctx, r.Storage)
		if err != nil {
			return nil, nil, fmt.Errorf("restoring savepoint %d: %w", r.CheckpointID, err)
		}
		defer s.Close()
		store = s
	case job.Config.Checkpoint == nil:
		return nil, nil, fmt.Errorf("restoring checkpoint %d: job %s has no checkpoint storage", r.CheckpointID, job.ID)
	default:
		s, err := tm.storage(ctx, job.Config.Checkpoint.Storage)
		if err != nil {
			return nil, nil, err
		}
		store = s
	}
	mine := map[string]bool{}
	for _, op := range v.Operators {
		mine[op.UID] = true
	}
	readOne := func(h checkpoint.StateHandle) ([]byte, error) {
		if h.Inline != nil || h.Path == "" {
			return h.Inline, nil
		}
		return store.Read(ctx, h.Path)
	}
	read := func(hs []checkpoint.StateHandle) ([]byte, error) {
		switch len(hs) {
		case 0:
			return nil, nil
		case 1:
			return readOne(hs[0])
		}
		return nil, fmt.Errorf("%d state handles for one stream, this build writes one", len(hs))
	}
	var snaps []runtime.TaskSnapshot
	var channels *runtime.ChannelState
	for _, os := range r.Operators {
		if !mine[os.UID] {
			continue
		}
		for _, ss := range os.Subtasks {
			if len(ss.Channel) > 0 && ss.Subtask == subtask && len(v.Operators) > 0 && os.UID == v.Operators[0].UID {
				data, err := read(ss.Channel)
				if err != nil {
					return nil, nil, fmt.Errorf("restoring checkpoint %d: channel state of %s/%d: %w", r.CheckpointID, os.UID, ss.Subtask, err)
				}
				if channels, err = runtime.DecodeChannelState(data); err != nil {
					return nil, nil, fmt.Errorf("restoring checkpoint %d: channel state of %s/%d: %w", r.CheckpointID, os.UID, ss.Subtask, err)
				}
			}
			// Keyed state is one stream, or an incremental chain: a base
			// and its deltas, in order.
			var keyed []byte
			var deltas [][]byte
			for i, h := range ss.Keyed {
				data, err := readOne(h)
				if err != nil {
					return nil, nil, fmt.Errorf("restoring checkpoint %d: keyed state of %s/%d (file %d of %d): %w", r.CheckpointID, os.UID, ss.Subtask, i+1, len(ss.Keyed), err)
				}
				if i == 0 {
					keyed = data
				} else {
					deltas = append(deltas, data)
				}
			}
			opData, err := read(ss.Operator)
			if err != nil {
				return nil, nil, fmt.Errorf("restoring checkpoint %d: operator state of %s/%d: %w", r.CheckpointID, os.UID, ss.Subtask, err)
			}
			var lists []statebackend.OperatorState
			if opData != nil {
				if err := json.Unmarshal(opData, &lists); err != nil {
					return nil, nil, fmt.Errorf("restoring checkpoint %d: operator state of %s/%d: %w", r.CheckpointID, os.UID, ss.Subtask, err)
				}
			}
			snaps = append(snaps, runtime.TaskSnapshot{
				CheckpointID: r.CheckpointID,
				Task:         runtime.TaskInfo{Subtask: ss.Subtask, Parallelism: os.Parallelism, MaxParallelism: os.MaxParallelism},
				Operators:    []runtime.OperatorSnapshot{{UID: os.UID, Name: os.Name, Keyed: keyed, KeyedDeltas: deltas, Operator: lists, Watermark: ss.Watermark}},
			})
		}
	}
	jr, err := runtime.Redistribute(snaps, func(string) int { return v.Parallelism })
	if err != nil {
		return nil, nil, fmt.Errorf("restoring checkpoint %d: %w", r.CheckpointID, err)
	}
	return jr, channels, nil
}

// checkChannelStateParallelism refuses to restore channel state at another
// parallelism: its records were in flight between particular subtasks
// (a hash partitioning at another parallelism would send them elsewhere),
// so, as in Flink, an unaligned checkpoint with channel state restores
// only at the parallelism it was taken with.
func checkChannelStateParallelism(job *jobcode.Job, r *rpc.RestoreHandles) error {
	hasChannels := ""
	for _, os := range r.Operators {
		for _, ss := range os.Subtasks {
			if len(ss.Channel) > 0 {
				hasChannels = os.UID
			}
		}
	}
	if hasChannels == "" {
		return nil
	}
	now := map[string]int{}
	for _, jv := range job.JobGraph.Vertices {
		for _, op := range jv.Operators {
			now[op.UID] = jv.Parallelism
		}
	}
	for _, os := range r.Operators {
		if p, ok := now[os.UID]; ok && p != os.Parallelism {
			return fmt.Errorf("restoring checkpoint %d: it is an unaligned checkpoint holding in-flight records (channel state, e.g. of operator %q), which can only be restored at the parallelism it was taken with: operator %q ran with parallelism %d and now has %d; restore from an aligned checkpoint or a savepoint to rescale",
				r.CheckpointID, hasChannels, os.UID, os.Parallelism, p)
		}
	}
	return nil
}
