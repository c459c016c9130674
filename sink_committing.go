package strom

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/state"
)

// Two-phase-commit sinks (Flink's unified sink, FLIP-143). A writer writes
// records into something not yet visible to readers (an in-progress file,
// an open transaction); at each checkpoint's barrier it closes that and
// hands back committables, which the sink keeps in its operator state with
// the checkpoint's id; once the checkpoint is complete a Committer makes
// them visible. Output is therefore visible exactly once: what a restore
// replays was never committed, and what a checkpoint holds is committed
// even if the job died between the checkpoint's completion and the commit,
// because a restore commits again everything the restored state holds.

// EndOfInput is the checkpoint id PrepareCommit gets at the end of bounded
// input (Flink's Long.MAX_VALUE): the writer hands back its last
// committables.
const EndOfInput int64 = math.MaxInt64

// CommittingSinkWriter is a SinkWriter that writes in transactions (Flink's
// TwoPhaseCommittingSink.PrecommittingSinkWriter).
type CommittingSinkWriter[T, C any] interface {
	SinkWriter[T]
	// PrepareCommit is the pre-commit, called just before the barrier of
	// checkpointID (or with EndOfInput after Flush at the end of input):
	// flush and durably close the current transaction, start the next one
	// lazily, and return what commits the closed one (none if it is
	// empty). What it returns is stored in the snapshot of checkpointID,
	// so it must stay committable until committed, across a crash.
	PrepareCommit(checkpointID int64) ([]C, error)
}

// Committer makes committables visible (Flink's Committer). Commit must be
// idempotent: the sink commits again after a restore everything the
// restored snapshot holds, and after a failed Commit retries all of it, so
// committing a committable already committed must be a no-op, not an error
// and not a second copy. Commit is called on the sink subtask's goroutine.
type Committer[C any] interface {
	Commit(ctx context.Context, committables []C) error
}

// CommitRecoverer is implemented by Committers that clean up after a
// restore: Recover is called once per sink subtask of a restored job,
// after the subtask has committed its share of the restored committables
// and before its writer is made. restored holds the committables of every
// old subtask (all are being committed by some new subtask), so it may
// abort or delete what the sink's old attempts left behind that none of
// them references — only of old subtasks it owns (see SinkContext), since
// other subtasks of this job may already be writing.
type CommitRecoverer[C any] interface {
	Recover(ctx SinkContext, restored []C) error
}

// committablesState is the sink's union list state: every pending
// committable with its checkpoint id. A union list so that a restored
// subtask sees every old subtask's committables (a CommitRecoverer must
// know all of them before it deletes anything); each new subtask commits
// only its share, element i going to subtask i mod p, as a split list
// would deal them.
const committablesState = "_sink_committables"

// pendingCommit is a committable and the checkpoint it was prepared for.
type pendingCommit[C any] struct {
	Checkpoint  int64
	Committable C
}

// pendingCodec encodes a pendingCommit with the user's codec for C: a
// varint checkpoint id, then the committable.
type pendingCodec[C any] struct{ c codec.Codec[C] }

func (p pendingCodec[C]) Append(dst []byte, v pendingCommit[C]) []byte {
	return p.c.Append(binary.AppendVarint(dst, v.Checkpoint), v.Committable)
}

func (p pendingCodec[C]) Decode(src []byte) (pendingCommit[C], int, error) {
	id, n := binary.Varint(src)
	if n <= 0 {
		return pendingCommit[C]{}, 0, fmt.Errorf("committable's checkpoint id: %w", codec.ErrCorrupt)
	}
	c, m, err := p.c.Decode(src[n:])
	if err != nil {
		return pendingCommit[C]{}, 0, fmt.Errorf("committable of checkpoint %d: %w", id, err)
	}
	return pendingCommit[C]{Checkpoint: id, Committable: c}, n + m, nil
}

type committingSinkOp[T, C any] struct {
	newWriter    func(SinkContext) (CommittingSinkWriter[T, C], error)
	newCommitter func(SinkContext) (Committer[C], error)
	codec        codec.Codec[C] // nil: codec.Of, type checked by package state

	name      string
	rt        *runtime.Context
	sctx      SinkContext
	w         CommittingSinkWriter[T, C]
	committer Committer[C]
	list      state.ListState[pendingCommit[C]]
	// pending are the committables not committed yet, in the order they
	// were prepared.
	pending []pendingCommit[C]
	// checkpointed: the subtask took part in a checkpoint or was restored,
	// so checkpoints commit its output (see Finish).
	checkpointed bool
}

func sinkContext(ctx *runtime.Context) SinkContext {
	sc := SinkContext{Subtask: ctx.Task.Subtask, Parallelism: ctx.Task.Parallelism, Attempt: ctx.Task.Attempt,
		JobName: ctx.Task.JobName, JobID: ctx.Task.JobID, Context: ctx.Ctx, opState: operatorStore(ctx)}
	sc.Restored = sc.opState != nil && sc.opState.IsRestored()
	return sc
}

// InitializeState commits the restored committables before anything is
// processed: the snapshot restored is of a complete checkpoint, so all it
// holds was meant to be visible, whether or not the old job got to commit
// it (the Committer makes a second commit a no-op).
func (o *committingSinkOp[T, C]) InitializeState(ctx *runtime.Context) error {
	o.name, o.rt = ctx.OperatorName, ctx
	o.sctx = sinkContext(ctx)
	var err error
	if o.committer, err = o.newCommitter(o.sctx); err != nil {
		return fmt.Errorf("sink %q: making the committer: %w", o.name, err)
	}
	if o.sctx.opState == nil {
		return fmt.Errorf("sink %q: no operator state to keep committables in", o.name)
	}
	desc := state.UnionListDescriptor[pendingCommit[C]]{Name: committablesState}
	if o.codec != nil {
		desc.Codec = pendingCodec[C]{o.codec}
	}
	if o.list, err = state.GetUnionList(o.sctx, desc); err != nil {
		return fmt.Errorf("sink %q: %w", o.name, err)
	}
	// With checkpointing on, every commit waits for a checkpoint, from
	// the start: a commit before the first one (at the end of a short
	// input, say) would be repeated by a restart from scratch.
	o.checkpointed = ctx.Checkpointing
	if !o.sctx.opState.IsRestored() {
		return nil
	}
	o.checkpointed = true
	all := o.list.Get()
	var mine []C
	restored := make([]C, 0, len(all))
	for i, p := range all {
		restored = append(restored, p.Committable)
		if i%o.sctx.Parallelism == o.sctx.Subtask {
			mine = append(mine, p.Committable)
		}
	}
	// The list is rewritten at every snapshot from pending; what is
	// restored is committed now or fails the task, so none stays pending.
	o.list.Clear()
	if len(mine) > 0 {
		if err := o.committer.Commit(o.sctx.Context, mine); err != nil {
			return fmt.Errorf("sink %q: committing %d restored committables: %w", o.name, len(mine), err)
		}
	}
	if r, ok := o.committer.(CommitRecoverer[C]); ok {
		if err := r.Recover(o.sctx, restored); err != nil {
			return fmt.Errorf("sink %q: recovering: %w", o.name, err)
		}
	}
	return nil
}

func (o *committingSinkOp[T, C]) Open(*runtime.Context) error {
	w, err := o.newWriter(o.sctx)
	if err != nil {
		return err
	}
	o.w = w
	return nil
}

func (o *committingSinkOp[T, C]) ProcessElement(v T, ts int64) {
	if err := o.w.Write(v, ts); err != nil {
		runtime.Fail(o.name, err)
	}
}

func (o *committingSinkOp[T, C]) ProcessWatermark(int64) {}
func (o *committingSinkOp[T, C]) ProcessIdle()           {}

// prepare runs the writer's pre-commit for checkpoint id and keeps what it
// returns.
func (o *committingSinkOp[T, C]) prepare(id int64) error {
	cs, err := o.w.PrepareCommit(id)
	if err != nil {
		return fmt.Errorf("sink %q: preparing the commit of checkpoint %d: %w", o.name, id, err)
	}
	for _, c := range cs {
		o.pending = append(o.pending, pendingCommit[C]{Checkpoint: id, Committable: c})
	}
	return nil
}

// PrepareSnapshotPreBarrier is the pre-commit: the transaction closed here
// holds exactly the records before the barrier.
//
// Committables prepared at the end of input (Finish) belong to this
// checkpoint, the first taken after them (FLIP-147's final checkpoint): its
// notification commits them, and a restore from it commits them too, the
// records they hold being behind the restored position. They keep
// EndOfInput in their file names (the writer named them then).
func (o *committingSinkOp[T, C]) PrepareSnapshotPreBarrier(id int64) error {
	o.checkpointed = true
	for i := range o.pending {
		if o.pending[i].Checkpoint == EndOfInput {
			o.pending[i].Checkpoint = id
		}
	}
	return o.prepare(id)
}

// SnapshotState stores the pending committables (those of this checkpoint
// and of earlier ones not committed yet) in the union list.
func (o *committingSinkOp[T, C]) SnapshotState(id int64) (runtime.OperatorSnapshot, error) {
	o.list.Update(o.pending)
	return o.rt.SnapshotState(id)
}

// NotifyCheckpointComplete commits every committable of checkpoints up to
// id: a notification that was lost (or arrives late, or not at all for an
// aborted checkpoint) is made up for by the next one. A failed commit
// fails the task, and the restore commits everything again.
func (o *committingSinkOp[T, C]) NotifyCheckpointComplete(id int64) error {
	var due []C
	keep := o.pending[:0:0]
	for _, p := range o.pending {
		if p.Checkpoint <= id {
			due = append(due, p.Committable)
		} else {
			keep = append(keep, p)
		}
	}
	if len(due) == 0 {
		return nil
	}
	if err := o.committer.Commit(o.sctx.Context, due); err != nil {
		return fmt.Errorf("sink %q: committing %d committables of checkpoints up to %d: %w", o.name, len(due), id, err)
	}
	o.pending = keep
	return nil
}

// NotifyCheckpointAborted keeps the committables: the next complete
// checkpoint's snapshot holds them too and its notification commits them
// (as Flink does; the data was pre-committed and must not be lost).
func (o *committingSinkOp[T, C]) NotifyCheckpointAborted(int64) error { return nil }

// Finish flushes and pre-commits the writer's last transaction. A subtask
// that never took a checkpoint, of a job without checkpointing, commits
// everything now, so bounded jobs produce output. Otherwise the commit is
// a checkpoint's: committing here would make records after the last
// checkpoint visible, and a restore from that checkpoint would write them
// again. The task stays after Finish for the final checkpoint (FLIP-147;
// see PrepareSnapshotPreBarrier), whose notification commits them.
func (o *committingSinkOp[T, C]) Finish() error {
	if err := o.w.Flush(); err != nil {
		return err
	}
	if err := o.prepare(EndOfInput); err != nil {
		return err
	}
	if o.checkpointed {
		return nil
	}
	return o.NotifyCheckpointComplete(EndOfInput)
}

func (o *committingSinkOp[T, C]) Close() error {
	if o.w == nil {
		return nil
	}
	return o.w.Close()
}

// SinkToCommitting writes the stream exactly once through a two-phase
// commit: newWriter makes each subtask's writer, newCommitter its
// committer (made before the writer, also to commit what a restore
// brings back; it may implement CommitRecoverer). committables is the
// codec the committables are stored with in snapshots; nil means
// codec.Of[C](), and then a C the default codec would drop data of (a
// struct with unexported fields) is refused when the job starts, as state
// types are. Give the sink a UID so a restore finds its committables.
//
// Commits happen on checkpoint notifications (everything up to the
// checkpoint notified; the output of a bounded job's end of input at the
// final checkpoint's), on a restore (everything restored) and, without
// checkpointing, at the end of input.
func SinkToCommitting[T, C any](s Stream[T], name string,
	newWriter func(SinkContext) (CommittingSinkWriter[T, C], error),
	newCommitter func(SinkContext) (Committer[C], error),
	committables codec.Codec[C]) Sink {
	if newWriter == nil || newCommitter == nil {
		s.env.fail(errorf("sink %q: SinkToCommitting needs a writer and a committer", name))
		return Sink{}
	}
	out := addOperator(s, "sink", name, runtime.Forward, nil, func(_ *runtime.Context, _ runtime.Output[struct{}]) (runtime.OneInput[T], error) {
		return &committingSinkOp[T, C]{newWriter: newWriter, newCommitter: newCommitter, codec: committables}, nil
	})
	return Sink{env: s.env, node: out.node()}
}
