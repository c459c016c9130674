package jobmaster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/internal/rpc"
)

// Savepoints at the JobMaster: serving the Dispatcher's requests, writing
// a completed savepoint's metadata to its own directory, and resuming a
// job from one. The coordinator decides when a savepoint is taken and when
// it has failed; this shell names its directory, tells the TaskManagers
// where its files go and answers the request — exactly once, with the
// path or an error — while the job keeps running either way.

// spRequest is a savepoint request being served.
type spRequest struct {
	rpcID  uint64 // the Dispatcher's request id
	target string // as the user gave it
	dir    string // the savepoint's own directory (URL)
	id     checkpoint.ID
	stop   bool // a stop-with-savepoint
	// checkpoint: a checkpoint asked for by hand, not a savepoint.
	checkpoint bool
}

// triggerSavepoint takes a request: the savepoint gets a fresh directory
// under the target and waits in the coordinator for the tasks to run.
func (jm *JobMaster) triggerSavepoint(m rpc.TriggerSavepoint) {
	if m.Checkpoint {
		jm.triggerCheckpoint(m)
		return
	}
	r := &spRequest{rpcID: m.RequestID, target: m.Target, stop: m.Stop}
	target, err := checkpoint.StorageURL(m.Target)
	if err == nil {
		r.dir, err = checkpoint.JoinURL(target, checkpoint.NewSavepointDirName(jm.cfg.JobID))
	}
	if err != nil {
		jm.replySavepoint(r, "", err)
		return
	}
	ck := jm.ck
	ck.spNext++
	ck.spRequests[ck.spNext] = r
	jm.logger().Info("savepoint requested", "job_id", jm.cfg.JobID, "target", m.Target, "dir", r.dir)
	jm.ckStep(checkpoint.EvTrigger{Request: ck.spNext, Kind: checkpoint.KindSavepoint, Dir: r.dir, Stop: m.Stop, Drain: m.Drain})
}

// savepointTriggered tells every TaskManager of the job where the files
// of savepoint a.ID go, before its trigger reaches the sources: tasks
// downstream snapshot on the barrier, which carries no location. The
// transport keeps each TaskManager's messages in order, and an upload
// that starts before its announcement waits for it.
func (jm *JobMaster) savepointTriggered(a checkpoint.ActTrigger) {
	if r := jm.ck.spRequests[a.Request]; r != nil {
		r.id = a.ID
	}
	var addrs []string
	for _, addr := range jm.tms {
		if !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		// An unreachable TaskManager's tasks decline when triggered, or
		// their failure aborts the savepoint.
		_ = jm.cfg.Transport.TaskManager(addr).SavepointTarget(rpc.SavepointTarget{JobID: jm.cfg.JobID, CheckpointID: int64(a.ID), Target: a.Dir})
	}
}

// writeSavepoint writes a savepoint's _metadata into its directory, after
// every state file (the tasks acked them written), off the loop. Success
// answers the request; a failure goes back to the coordinator, whose abort
// answers it.
func (jm *JobMaster) writeSavepoint(a checkpoint.ActWriteMetadata) {
	md := a.Metadata
	jm.async(func(ctx context.Context) func() {
		err := checkpoint.WriteSavepointMetadata(ctx, a.Dir, &md)
		return func() {
			if err != nil {
				err = fmt.Errorf("writing its metadata: %w", err)
			} else {
				jm.rest.ckEnded(md.ID, a.Dir, "", time.Now())
			}
			if r := jm.ck.spRequests[a.Request]; err == nil && r != nil {
				delete(jm.ck.spRequests, a.Request)
				if r.stop {
					// Its sinks commit it now: should the job fail
					// before it has finished, it restarts from this
					// savepoint, newer than any checkpoint, so nothing
					// committed is produced again.
					jm.ck.savepoint = &rpc.RestoreHandles{CheckpointID: int64(md.ID), Operators: md.Operators, Storage: a.Dir}
				}
				jm.logger().Info("savepoint completed", "job_id", jm.cfg.JobID, "savepoint", md.ID, "path", a.Dir)
				jm.replySavepoint(r, a.Dir, nil)
			}
			jm.ckStep(checkpoint.EvMetadataWritten{ID: md.ID, Err: err})
		}
	})
}

// savepointFailed answers request req, which the coordinator aborted.
func (jm *JobMaster) savepointFailed(req int, id checkpoint.ID, cause error) {
	r := jm.ck.spRequests[req]
	if r == nil {
		return
	}
	delete(jm.ck.spRequests, req)
	r.id = id
	jm.logger().Warn("savepoint failed; the job keeps running", "job_id", jm.cfg.JobID, "savepoint", id, "target", r.target, "error", cause)
	jm.replySavepoint(r, "", cause)
}

// triggerCheckpoint takes a request for a checkpoint now (Flink 1.17's
// POST /jobs/:jobid/checkpoints): the coordinator takes it as soon as
// its rules allow (min pause, max concurrent), into the job's checkpoint
// storage, and it counts as any checkpoint; the answer is its id once
// its metadata is written.
func (jm *JobMaster) triggerCheckpoint(m rpc.TriggerSavepoint) {
	r := &spRequest{rpcID: m.RequestID, target: "checkpoint storage", checkpoint: true}
	if jm.cfg.Checkpoint == nil {
		jm.replySavepoint(r, "", errors.New("the job has no checkpointing configured (no interval, no storage): take a savepoint instead"))
		return
	}
	ck := jm.ck
	ck.spNext++
	ck.spRequests[ck.spNext] = r
	jm.logger().Info("checkpoint requested", "job_id", jm.cfg.JobID)
	jm.ckStep(checkpoint.EvTrigger{Request: ck.spNext, Kind: checkpoint.KindCheckpoint})
}

// checkpointCompleted answers the request for checkpoint id, if one asked
// for it.
func (jm *JobMaster) checkpointCompleted(req int, id checkpoint.ID) {
	r := jm.ck.spRequests[req]
	if req == 0 || r == nil {
		return
	}
	delete(jm.ck.spRequests, req)
	r.id = id
	res := rpc.SavepointResult{JobID: jm.cfg.JobID, RequestID: r.rpcID, CheckpointID: int64(id)}
	if err := jm.disp.SavepointResult(res); err != nil {
		jm.logger().Debug("job master: checkpoint result not delivered", "job_id", jm.cfg.JobID, "error", err)
	}
}

func (jm *JobMaster) replySavepoint(r *spRequest, path string, cause error) {
	res := rpc.SavepointResult{JobID: jm.cfg.JobID, RequestID: r.rpcID, Path: path}
	if cause != nil && r.checkpoint {
		if r.id != 0 {
			res.Error = fmt.Sprintf("checkpoint %d of job %s failed: %v", r.id, jm.cfg.JobID, cause)
		} else {
			res.Error = fmt.Sprintf("checkpoint of job %s failed: %v", jm.cfg.JobID, cause)
		}
	} else if cause != nil {
		if r.id != 0 {
			res.Error = fmt.Sprintf("savepoint %d of job %s to %s failed: %v", r.id, jm.cfg.JobID, r.target, cause)
		} else {
			res.Error = fmt.Sprintf("savepoint of job %s to %s failed: %v", jm.cfg.JobID, r.target, cause)
		}
	}
	if err := jm.disp.SavepointResult(res); err != nil {
		jm.logger().Debug("job master: savepoint result not delivered", "job_id", jm.cfg.JobID, "error", err)
	}
}

// refuseSavepoints answers the requests still open when the job ends.
func (jm *JobMaster) refuseSavepoints(state fmt.Stringer) {
	if jm.ck == nil {
		return
	}
	reqs := make([]int, 0, len(jm.ck.spRequests))
	for k := range jm.ck.spRequests {
		reqs = append(reqs, k)
	}
	slices.Sort(reqs)
	for _, k := range reqs {
		jm.replySavepoint(jm.ck.spRequests[k], "", fmt.Errorf("the job ended (%v) before it completed", state))
	}
	clear(jm.ck.spRequests)
}

// restoredFrom says what the job last restored from, for JobFinished.
func (jm *JobMaster) restoredFrom() string {
	if jm.ck == nil {
		return ""
	}
	return jm.ck.restoredDesc
}

// resume loads the savepoint the job starts from, if any, and matches its
// operators to the job's by UID (Flink's savepoint restore, with the
// compatibility report it lacks): state of operators the job no longer has
// is refused unless AllowNonRestoredState drops it, a keyed operator's
// maxParallelism must not change (it fixes the key groups), parallelism
// may (state is redistributed). What maps, what is dropped and which
// operators start empty is logged. An error fails the job before it runs.
func (jm *JobMaster) resume(ctx context.Context) error {
	rs := jm.cfg.Resume
	if rs == nil || rs.Path == "" {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("resuming job %s from savepoint %s: %w", jm.cfg.JobID, rs.Path, err)
	}
	md, dir, err := checkpoint.LoadSavepoint(ctx, rs.Path)
	if err != nil {
		return fail(err)
	}
	type jobOp struct {
		name   string
		maxPar int
	}
	jg := jm.cfg.JobGraph
	ops := map[string]jobOp{}
	var order []string
	for _, v := range jg.Vertices {
		maxP := v.MaxParallelism
		if maxP == 0 {
			maxP = jg.MaxParallelism
		}
		for _, op := range v.Operators {
			ops[op.UID] = jobOp{name: op.Name, maxPar: maxP}
			order = append(order, op.UID)
		}
	}
	var mapped []checkpoint.OperatorState
	var mappedUIDs, dropped, stateless []string
	var errs []error
	for _, os := range md.Operators {
		hasState, keyed := false, false
		for _, st := range os.Subtasks {
			keyed = keyed || len(st.Keyed) > 0
			hasState = hasState || len(st.Keyed) > 0 || len(st.Operator) > 0 || len(st.Channel) > 0
		}
		op, ok := ops[os.UID]
		switch {
		case !ok && hasState:
			dropped = append(dropped, fmt.Sprintf("%q (%s)", os.UID, os.Name))
		case !ok:
			stateless = append(stateless, os.UID)
		case keyed && os.MaxParallelism != op.maxPar:
			errs = append(errs, fmt.Errorf("operator %q (%s) has keyed state for maxParallelism %d in the savepoint, but the job's maxParallelism is %d: it is fixed for the life of a job (the key groups), set it back to %d",
				os.UID, op.name, os.MaxParallelism, op.maxPar, os.MaxParallelism))
		default:
			mapped = append(mapped, os)
			mappedUIDs = append(mappedUIDs, os.UID)
		}
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	if len(dropped) > 0 && !rs.AllowNonRestoredState {
		return fail(fmt.Errorf("it holds state of operators the job does not have: %s; give those operators their old UIDs, or allow non-restored state to drop it",
			strings.Join(dropped, ", ")))
	}
	var fresh []string
	for _, uid := range order {
		if !slices.ContainsFunc(md.Operators, func(o checkpoint.OperatorState) bool { return o.UID == uid }) {
			fresh = append(fresh, uid)
		}
	}
	log := jm.logger()
	log.Info("resuming from savepoint", "job_id", jm.cfg.JobID, "savepoint", dir, "savepoint_id", md.ID, "of_job", md.JobID,
		"restored", mappedUIDs, "new", fresh, "without_state", stateless)
	if len(dropped) > 0 {
		log.Info("savepoint state dropped (allow non-restored state)", "job_id", jm.cfg.JobID, "savepoint", dir, "operators", dropped)
	}
	h := &rpc.RestoreHandles{CheckpointID: int64(md.ID), Operators: mapped, Storage: dir}
	jm.ck.savepoint = h
	if len(jm.ck.retained) > 0 {
		// A JobMaster of this job ran before and completed checkpoints
		// after the resume: the newest state is theirs, found on restart.
		return nil
	}
	jm.ck.restore = h
	jm.ck.restoredFrom = md.ID
	jm.ck.restoredDesc = dir
	jm.ckStep(checkpoint.EvRestore{LatestID: md.ID})
	return nil
}
