package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strom-dev/strom/internal/network"
)

// Checkpoint barriers on the task side (Flink's CheckpointBarrierHandler and
// SubtaskCheckpointCoordinator).
//
// A source task takes checkpoint n when TriggerCheckpoint's mail runs,
// between two reader steps. Every other task takes it when its input gate
// has seen barrier n on every live channel (an ended channel counts as
// aligned: FLIP-147). Exactly-once blocks each channel once its barrier
// arrived, so no record behind a barrier reaches the operators before the
// snapshot; at-least-once only counts. Taking checkpoint n is always the
// same, on the task goroutine: PrepareSnapshotPreBarrier on the chain head
// first (what it emits precedes the barrier), barrier n on every output,
// the synchronous snapshot, then OnCheckpoint.
//
// A task follows one checkpoint at a time (the newest it has seen; the
// coordinator runs one at a time too). A barrier, cancel marker or
// AbortCheckpoint for a newer id aborts the one being aligned; anything for
// an older id, or for one the task already took or aborted, is ignored.
// Every checkpoint a task learns of (trigger, barrier, cancel marker,
// AbortCheckpoint) ends with exactly one OnCheckpoint call: the snapshot,
// or an error; an aborted one also sends a cancel marker downstream, once,
// so tasks there stop aligning it.
//
// Unaligned (FLIP-76; channelstate.go): a source sends barrier n in the
// priority lane of its outputs, overtaking the batches queued there, which
// are its output channel state. A task with inputs takes checkpoint n at
// the first barrier n on any channel (priority barriers are polled also
// while it is backpressured), forwarding it in the priority lane likewise;
// it holds no channel back, and records what each channel delivers until
// that channel's barrier as its input channel state; the snapshot is
// reported once every channel delivered barrier n or ended. An aligned
// checkpoint with an alignment timeout (BarrierOptions.AlignedTimeout)
// switches to unaligned in a task whose alignment takes longer, and so
// does one aligning when an unaligned barrier of its id arrives (from an
// upstream task that switched).

// CheckpointOptions says which checkpoint to take and how.
type CheckpointOptions struct {
	// ID is the checkpoint id, > 0, increasing per job.
	ID   int64
	Mode network.CheckpointMode
	Kind network.SnapshotKind
	// Timestamp is when the coordinator triggered it (Unix ms).
	Timestamp int64
	// AlignedTimeout (ms), with Mode ExactlyOnce: see
	// network.BarrierOptions.AlignedTimeout.
	AlignedTimeout int64
	// Stop and Drain make a savepoint (Kind Savepoint) a
	// stop-with-savepoint, without or with draining: see "Stop with
	// savepoint" below. Barriers do not carry them: only source tasks act on
	// a trigger's Stop, and the tasks downstream learn of the stop from the
	// end of partition that follows the savepoint.
	Stop  bool
	Drain bool
}

// stops reports whether the trigger stops a source that is still reading,
// without draining.
func (o CheckpointOptions) stops() bool {
	return o.Stop && !o.Drain && o.Kind == network.Savepoint
}

func (o CheckpointOptions) barrier() network.BarrierOptions {
	return network.BarrierOptions{Mode: o.Mode, Kind: o.Kind, Timestamp: o.Timestamp, AlignedTimeout: o.AlignedTimeout}
}

// CheckpointListener is implemented by operators that act once a
// checkpoint is complete (a transactional sink commits) or aborted. Every
// operator of the chain is notified, tail first (see notifyCheckpoint).
// Notifications are not ordered against each other: one for an id older
// than one already notified is still delivered, and a restore can repeat
// one, so an operator must be idempotent and must not assume ids increase
// (a sink commits everything up to id it has not committed yet).
type CheckpointListener interface {
	NotifyCheckpointComplete(id int64) error
	NotifyCheckpointAborted(id int64) error
}

// ErrCheckpointAborted is wrapped by the error OnCheckpoint gets for a
// checkpoint the task aborted: superseded by a newer one, cancelled
// upstream or by AbortCheckpoint.
var ErrCheckpointAborted = errors.New("checkpoint aborted")

// TriggerCheckpoint makes the task take checkpoint opts.ID: a mail, so it
// never blocks the caller and runs between two reader steps or input
// batches, also while the task is backpressured. The result goes to
// OnCheckpoint.
//
// A source task takes it when the mail runs. A task with inputs is
// triggered directly only once its producers have finished or it has
// reached the end of its input (FLIP-147: an ended channel carries no
// barrier): it takes it once its input has ended and its operators
// finished, after the records still queued in its channels; a trigger for
// a checkpoint it already took or aborted is ignored (its result went out
// then).
//
// A task that has stopped returns ErrTaskStopped, or (if it stops with the
// trigger queued or deferred) reports an error wrapping it; a source
// trigger not newer than the last checkpoint the task took or aborted
// reports an error.
func (t *Task) TriggerCheckpoint(ctx context.Context, opts CheckpointOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.ID <= 0 {
		return fmt.Errorf("checkpoint id %d: must be positive", opts.ID)
	}
	return t.mailDropped(func() { t.triggerMail(opts) }, func() {
		t.report(opts.ID, TaskSnapshot{}, fmt.Errorf("checkpoint %d: %w", opts.ID, ErrTaskStopped))
	})
}

func (t *Task) triggerMail(opts CheckpointOptions) {
	switch {
	case t.stoppedAt > 0:
		t.report(opts.ID, TaskSnapshot{}, fmt.Errorf("checkpoint %d: %w: stopped with savepoint %d", opts.ID, ErrTaskStopped, t.stoppedAt))
	case t.Input == nil && opts.ID <= t.lastCheckpoint:
		t.report(opts.ID, TaskSnapshot{}, fmt.Errorf("%w: checkpoint %d is not newer than checkpoint %d", ErrCheckpointAborted, opts.ID, t.lastCheckpoint))
	case t.Input == nil && opts.Drain && opts.Kind == network.Savepoint && !t.inputEnded:
		// A drained savepoint is the final checkpoint of a source whose
		// input ended by EndInput: taken here, the source would go on.
		t.lastCheckpoint = opts.ID
		t.report(opts.ID, TaskSnapshot{}, fmt.Errorf("%w: savepoint %d drains, but source task %s/%d is still reading: end its input first (Task.EndInput)",
			ErrCheckpointAborted, opts.ID, t.Info.VertexName, t.Info.Subtask))
	case t.Input == nil:
		t.lastCheckpoint = opts.ID
		// A newer checkpoint releases a source waiting for a
		// stop-with-savepoint: the coordinator has moved on.
		t.stopping = 0
		t.takeCheckpoint(opts)
		if opts.stops() && !t.inputEnded && t.lastTaken == opts.ID {
			t.stopping = opts.ID
		}
	case t.gate() == nil:
		t.report(opts.ID, TaskSnapshot{}, fmt.Errorf("checkpoint %d: task %s/%d has no input gate to align barriers in",
			opts.ID, t.Info.VertexName, t.Info.Subtask))
	case t.inputEnded:
		t.triggerEnded(opts)
	case t.deferred == nil || opts.ID > t.deferred.ID:
		// Its producers have finished: what they sent is all still to
		// be processed before the snapshot, which is therefore taken at
		// the end of the input. A newer trigger replaces an older one
		// (the coordinator has moved on).
		if d := t.deferred; d != nil {
			t.report(d.ID, TaskSnapshot{}, fmt.Errorf("%w: checkpoint %d superseded by checkpoint %d", ErrCheckpointAborted, d.ID, opts.ID))
		}
		t.deferred = &opts
	}
}

// triggerEnded takes checkpoint opts in a task with inputs whose input has
// ended, unless the gate has seen it (taken, or aborted) or a newer one.
func (t *Task) triggerEnded(opts CheckpointOptions) {
	a := &t.gate().align
	if opts.ID <= a.latest {
		return
	}
	a.latest = opts.ID
	t.takeCheckpoint(opts)
}

// Stop with savepoint (Flink's FLIP-34 "synchronous savepoint").
//
// Without drain (Stop, not Drain): a source task triggered with Stop takes
// the savepoint and sends its barrier as for any checkpoint, then reads no
// more and runs no timers, only mail. NotifyCheckpointComplete of the
// savepoint (or a later id) stops it: it ends its outputs with an end of
// partition that carries the savepoint id ("stopped, not drained"),
// without end-of-input processing. AbortCheckpoint or
// NotifyCheckpointAborted of the savepoint, or a trigger of a newer
// checkpoint, makes it read on: the job goes on. A task with inputs ends
// stopped as soon as all its input channels have ended and any of them
// ended stopped (channels of producers that had finished earlier may have
// ended drained); from the first stopped channel on it passes no watermark
// or idleness to its operators, so no timer fires past the savepoint. A
// task that ends stopped calls no Finish, sends no maximum watermark,
// fires no timers, takes no final checkpoint (the savepoint is the final
// snapshot) and ends its own outputs stopped. But a task that took the
// savepoint delivers NotifyCheckpointComplete of it to its operators
// before it returns (a two-phase-commit sink commits the savepoint's
// transactions then): it waits for that notification, in its mailbox,
// until its context ends; NotifyCheckpointAborted of the savepoint ends
// the wait without it. A task that never took the savepoint (it aborted
// it: a stopped end then contradicts the coordinator, which completes a
// savepoint only once every task took it) does not wait: it returns at
// once and logs a warning. Triggers that reach a stopped task are
// declined with ErrTaskStopped. See StoppedAt.
//
// With drain, the coordinator calls EndInput at every source: the source
// ends its input as a bounded one does (maximum watermark, Finish,
// end-of-input hooks, and with WaitForFinalCheckpoint the FLIP-147 final
// checkpoint, which the coordinator then takes as the savepoint, Drain
// set). A Drain trigger that reaches a source still reading is declined.

// EndInput makes a source task stop reading and end its input exactly as
// if its bounded input had ended (a mail: it takes effect between two
// reader steps, also while the task is backpressured, idle or waiting for
// a stop-with-savepoint). It is for stop-with-savepoint with drain; a task
// with inputs refuses it (its input ends when its producers' does).
func (t *Task) EndInput(ctx context.Context) error {
	if t.Input != nil {
		return fmt.Errorf("end input of task %s/%d: only a source task's input can be ended", t.Info.VertexName, t.Info.Subtask)
	}
	return t.Mail(ctx, func() { t.endRequested = true })
}

// StoppedAt is the id of the stop-with-savepoint the task ended with, 0 if
// it did not end stopped. Read it after Run returned (Run's return
// synchronises).
func (t *Task) StoppedAt() int64 { return t.stoppedAt }

// stopEnded ends channel i stopped by savepoint id: from now on the gate
// passes no watermark or idleness to the operators (a stopped input holds
// event time where the savepoint left it; the other channels' inputs must
// not advance it either).
func (g *Gate) stopEnded(i int, id int64) {
	if id < 0 {
		Fail("", fmt.Errorf("%w: end of partition with stop id %d on input channel %d", ErrUnexpectedEvent, id, i))
	}
	g.stopped = max(g.stopped, id)
	g.valve.ended[i] = true
	g.op = stoppedTime{}
}

// stoppedTime drops the time events of a gate with a stopped input.
type stoppedTime struct{}

func (stoppedTime) ProcessWatermark(int64) {}
func (stoppedTime) ProcessIdle()           {}

// stopEnd is the end of a task stopped by stop-with-savepoint t.stoppedAt
// (see "Stop with savepoint").
func (t *Task) stopEnd(ctx context.Context) error {
	id := t.stoppedAt
	for _, w := range t.Writers {
		w.EndOfPartitionStopped(id)
	}
	if t.lastTaken < id {
		t.Logger.Warn("task stopped by a savepoint it did not take; it ends without waiting for the savepoint's notification",
			"task", t.Info.String(), "savepoint", id, "last_taken", t.lastTaken)
		return nil
	}
	for t.lastCompleted < id && !t.stopAborted {
		if ctx.Err() != nil {
			return ErrTaskCanceled
		}
		t.current = -1
		t.runMail()
		if t.lastCompleted >= id || t.stopAborted {
			break
		}
		if !t.waitMail(ctx) {
			return ErrTaskCanceled
		}
	}
	return nil
}

// waitMail sleeps until the task's notifier fires (mail among it) or ctx
// ends (false). Timers are not waited for: they do not run.
func (t *Task) waitMail(ctx context.Context) bool {
	select {
	case <-t.Notify:
		return true
	case <-ctx.Done():
		return false
	}
}

// AbortCheckpoint aborts checkpoint id (a mail): a task aligning it
// unblocks its channels, sends a cancel marker downstream and reports the
// abort; a task that has not seen id yet does the same and will ignore its
// barriers; one that took or aborted it already does nothing.
func (t *Task) AbortCheckpoint(ctx context.Context, id int64) error {
	return t.Mail(ctx, func() {
		err := fmt.Errorf("%w: checkpoint %d aborted by the coordinator", ErrCheckpointAborted, id)
		if id == t.stoppedAt {
			t.stopAborted = true // no notification will come: stopEnd ends
		}
		if g := t.gate(); g != nil {
			g.cancelCheckpoint(id, err)
			return
		}
		if id == t.stopping {
			// The stop-with-savepoint failed: the source reads on.
			t.stopping = 0
		}
		if id > t.lastCheckpoint {
			t.lastCheckpoint = id
			t.abortedCheckpoint(id, err)
		}
	})
}

// NotifyCheckpointComplete tells every operator implementing
// CheckpointListener that checkpoint id is complete (a mail).
func (t *Task) NotifyCheckpointComplete(ctx context.Context, id int64) error {
	return t.Mail(ctx, func() { t.notifyCheckpoint(id, true) })
}

// NotifyCheckpointAborted tells every operator implementing
// CheckpointListener that checkpoint id was aborted (a mail). It does not
// stop an alignment: that is AbortCheckpoint.
func (t *Task) NotifyCheckpointAborted(ctx context.Context, id int64) error {
	return t.Mail(ctx, func() { t.notifyCheckpoint(id, false) })
}

// notifyCheckpoint notifies the chain tail first: the side effects of
// downstream operators (a sink's commit makes output visible) happen
// before those of upstream ones (a source commits its read positions for
// monitoring), so what is reported as consumed is already visible. Every
// operator is notified even if one fails (as in Flink); the first error
// then fails the task, since a sink that cannot commit must not go on.
func (t *Task) notifyCheckpoint(id int64, complete bool) {
	defer func() {
		// Committed: a task waiting for its final checkpoint may end
		// (not when a listener failed: Fail has panicked past this).
		if complete && t.finalFrom > 0 && id >= t.finalFrom {
			t.released = true
		}
		if complete {
			t.lastCompleted = max(t.lastCompleted, id)
			if t.stopping > 0 && id >= t.stopping {
				// The stop-with-savepoint is complete: the source ends,
				// stopped (loop).
				t.stoppedAt, t.stopping = t.stopping, 0
			}
		} else {
			if id == t.stopping {
				t.stopping = 0 // failed: the source reads on
			}
			if id == t.stoppedAt {
				t.stopAborted = true
			}
		}
	}()
	var failed error
	failedOp := ""
	for i := len(t.Chain) - 1; i >= 0; i-- {
		c := t.Chain[i]
		l, ok := c.Op.(CheckpointListener)
		if !ok {
			continue
		}
		t.current = i
		var err error
		if complete {
			err = l.NotifyCheckpointComplete(id)
		} else {
			err = l.NotifyCheckpointAborted(id)
		}
		if err != nil && failed == nil {
			what := "complete"
			if !complete {
				what = "aborted"
			}
			failed, failedOp = fmt.Errorf("notify checkpoint %d %s: %w", id, what, err), c.Name
		}
	}
	if failed != nil {
		Fail(failedOp, failed)
	}
}

// takeCheckpoint takes checkpoint opts.ID now: pre-barrier, barrier on
// every output, snapshot, report.
func (t *Task) takeCheckpoint(opts CheckpointOptions) {
	if snap, taken, err := t.snapshotNow(opts); taken {
		t.report(opts.ID, snap, err)
	}
}

// snapshotUnaligned takes unaligned checkpoint opts.ID now, for a gate
// that reports it once its input channel state is complete; a failure is
// reported here (ok false).
func (t *Task) snapshotUnaligned(opts CheckpointOptions) (TaskSnapshot, bool) {
	snap, taken, err := t.snapshotNow(opts)
	if taken && err != nil {
		t.report(opts.ID, snap, err)
	}
	return snap, taken && err == nil
}

// snapshotNow is a checkpoint's synchronous part: pre-barrier, barrier on
// every output (unaligned: in the priority lane, keeping what it
// overtook), snapshot. taken is false if the pre-barrier failed: the
// checkpoint was aborted and reported.
func (t *Task) snapshotNow(opts CheckpointOptions) (snap TaskSnapshot, taken bool, err error) {
	start := time.Now()
	defer func() { snap.SyncDuration = time.Since(start) }()
	if err := t.prepareSnapshot(opts.ID); err != nil {
		// No barrier follows: downstream must not wait for it.
		t.abortedCheckpoint(opts.ID, err)
		return TaskSnapshot{}, false, nil
	}
	var out []ChannelRecords
	var outErr error
	if !t.inputEnded {
		// After the end of partition no consumer reads a barrier: the
		// ended channel counts as aligned downstream.
		b := opts.barrier()
		for _, w := range t.Writers {
			w.EmitBarrier(opts.ID, b)
		}
		if opts.Mode == network.Unaligned {
			out, outErr = t.overtaken()
		}
	}
	snap, err = t.snapshotOperators(opts.ID, opts.Kind == network.Checkpoint)
	snap.Options = opts
	if err == nil {
		err = outErr
	}
	if err == nil {
		t.lastTaken = max(t.lastTaken, opts.ID)
	}
	if len(out) > 0 {
		snap.Channel = &ChannelState{Output: out}
	}
	if err == nil && t.inputEnded && t.finalFrom == 0 {
		t.finalFrom = opts.ID
	}
	return snap, true, err
}

// overtakenOutput is a writer that keeps the records its last unaligned
// barrier overtook (Writer).
type overtakenOutput interface {
	takeOvertaken(writer int) ([]ChannelRecords, error)
}

// overtaken collects the output channel state of the unaligned barrier
// just sent.
func (t *Task) overtaken() ([]ChannelRecords, error) {
	var out []ChannelRecords
	for k, w := range t.Writers {
		o, ok := w.(overtakenOutput)
		if !ok {
			continue
		}
		rs, err := o.takeOvertaken(k)
		if err != nil {
			return nil, fmt.Errorf("output channel state of writer %d: %w", k, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// wake wakes the task loop (an alignment timeout is due).
func (t *Task) wake() { t.Notify.Notify() }

// abortedCheckpoint sends a cancel marker for id downstream and reports
// err.
func (t *Task) abortedCheckpoint(id int64, err error) {
	if !t.inputEnded {
		for _, w := range t.Writers {
			w.EmitCancelBarrier(id)
		}
	}
	t.report(id, TaskSnapshot{}, err)
}

// report hands a checkpoint's result to OnCheckpoint. The callback is the
// TaskManager's, not an operator's: a panic there is not attributed to one.
func (t *Task) report(id int64, snap TaskSnapshot, err error) {
	if t.OnCheckpoint == nil {
		return
	}
	t.current = -1
	t.OnCheckpoint(id, snap, err)
}

// gate is the task's input gate, nil for a source task.
func (t *Task) gate() *Gate {
	if g, ok := t.Input.(interface{ Gate() *Gate }); ok {
		return g.Gate()
	}
	return nil
}

// barrierHandler is what a gate's alignment drives: the task.
type barrierHandler interface {
	takeCheckpoint(opts CheckpointOptions)
	snapshotUnaligned(opts CheckpointOptions) (TaskSnapshot, bool)
	abortedCheckpoint(id int64, err error)
	report(id int64, snap TaskSnapshot, err error)
	wake()
}

// aligner is a gate's barrier state.
type aligner struct {
	h barrierHandler
	// latest is the newest checkpoint id seen; aligning says it is being
	// aligned (not yet taken or aborted), with opts and the channels whose
	// barrier has arrived.
	latest   int64
	aligning bool
	opts     CheckpointOptions
	arrived  []bool
	// unaligned says the checkpoint being aligned was taken unaligned:
	// snap waits for the channels still recording[j] to deliver their
	// barrier; recorded[j] is what channel j delivered meanwhile.
	unaligned bool
	snap      TaskSnapshot
	recording []bool
	recorded  []recorder
	// deadline is when an aligned checkpoint switches to unaligned (zero:
	// never); timer wakes the task then.
	deadline time.Time
	timer    *time.Timer
}

// setBarrierHandler makes the gate align barriers for h. Without a handler
// (an input processor driven outside a task) barriers and cancel markers
// are dropped.
func (g *Gate) setBarrierHandler(h barrierHandler) {
	g.align.h = h
	if g.align.arrived == nil {
		g.align.arrived = make([]bool, len(g.skip))
		g.align.recording = make([]bool, len(g.skip))
		g.align.recorded = make([]recorder, len(g.skip))
	}
}

// barrier handles barrier id from channel i.
func (g *Gate) barrier(i int, id int64, b network.BarrierOptions) { g.barrierThen(i, id, b, nil) }

// barrierThen is barrier, calling then (if set) once the barrier is
// counted and before the checkpoint may complete: overtakeTimedOut adds
// the records its barrier overtook to the input channel state there.
func (g *Gate) barrierThen(i int, id int64, b network.BarrierOptions, then func()) {
	a := &g.align
	if id <= 0 {
		Fail("", fmt.Errorf("%w: checkpoint barrier with id %d on input channel %d", ErrUnexpectedEvent, id, i))
	}
	if a.h == nil || id < a.latest || (id == a.latest && !a.aligning) {
		return
	}
	if id > a.latest {
		if a.aligning {
			g.abortAlignment(fmt.Errorf("%w: checkpoint %d superseded by barrier %d on input channel %d", ErrCheckpointAborted, a.latest, id, i))
		}
		a.latest, a.aligning = id, true
		a.opts = CheckpointOptions{ID: id, Mode: b.Mode, Kind: b.Kind, Timestamp: b.Timestamp, AlignedTimeout: b.AlignedTimeout}
		clear(a.arrived)
		if b.Mode == network.ExactlyOnce && b.AlignedTimeout > 0 {
			// Flink measures the timeout from the checkpoint's start.
			d := time.Duration(b.AlignedTimeout) * time.Millisecond
			if b.Timestamp > 0 {
				d = time.Until(time.UnixMilli(b.Timestamp + b.AlignedTimeout))
			}
			g.armAlignmentTimeout(d)
		}
	}
	if a.arrived[i] {
		// A producer sends each barrier once per channel: a second one
		// means the stream is corrupt.
		Fail("", fmt.Errorf("%w: second checkpoint barrier %d on input channel %d", ErrUnexpectedEvent, id, i))
	}
	a.arrived[i] = true
	switch {
	case a.unaligned:
		// Everything channel i delivered before its barrier is recorded.
		a.recording[i] = false
	case b.Mode == network.Unaligned:
		// The first unaligned barrier of the checkpoint (perhaps from an
		// upstream task whose alignment timed out): take it now.
		if !g.startUnaligned() {
			return
		}
	case a.opts.Mode == network.ExactlyOnce:
		g.Block(i)
	}
	if then != nil {
		then()
	}
	g.checkAligned()
}

// startUnaligned takes the checkpoint being aligned now, unaligned: the
// barrier goes out ahead of the output, channels held back go on (what is
// behind their barrier is after the snapshot), and every channel whose
// barrier has not arrived is recorded until it does. It reports false if
// the checkpoint failed (reported, alignment over).
func (g *Gate) startUnaligned() bool {
	a := &g.align
	g.stopAlignmentTimeout()
	a.opts.Mode = network.Unaligned
	for j := range a.recording {
		a.recording[j] = !a.arrived[j] && !g.valve.ended[j]
		a.recorded[j] = nil
	}
	g.unblockAll()
	snap, ok := a.h.snapshotUnaligned(a.opts)
	if !ok {
		a.aligning = false
		clear(a.recording)
		return false
	}
	a.unaligned, a.snap = true, snap
	return true
}

// finishUnaligned reports the unaligned checkpoint being recorded, with
// its input channel state, once every channel delivered its barrier.
func (g *Gate) finishUnaligned() {
	a := &g.align
	snap := a.snap
	a.unaligned, a.snap = false, TaskSnapshot{}
	clear(a.recording)
	var err error
	var in []ChannelRecords
	for j, r := range a.recorded {
		if r == nil {
			continue
		}
		data, n, eerr := r.encode()
		if eerr != nil && err == nil {
			err = fmt.Errorf("checkpoint %d: input channel state of channel %d: %w", a.latest, j, eerr)
		}
		in = append(in, ChannelRecords{Channel: j, Count: n, Data: data})
	}
	clear(a.recorded)
	if len(in) > 0 {
		if snap.Channel == nil {
			snap.Channel = &ChannelState{}
		}
		snap.Channel.Input = in
	}
	a.h.report(a.latest, snap, err)
}

// armAlignmentTimeout makes the checkpoint being aligned switch to
// unaligned after d (checkAlignmentTimeout), waking the task then.
func (g *Gate) armAlignmentTimeout(d time.Duration) {
	a := &g.align
	g.stopAlignmentTimeout()
	a.deadline = time.Now().Add(d)
	a.timer = time.AfterFunc(d, a.h.wake)
}

func (g *Gate) stopAlignmentTimeout() {
	a := &g.align
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	a.deadline = time.Time{}
}

// checkAlignmentTimeout switches the aligned checkpoint being aligned to
// unaligned once its alignment timeout has passed.
func (g *Gate) checkAlignmentTimeout() {
	a := &g.align
	if !a.aligning || a.unaligned || a.deadline.IsZero() || time.Now().Before(a.deadline) {
		return
	}
	if g.startUnaligned() {
		g.checkAligned()
	}
}

// checkAligned takes the checkpoint being aligned once every channel has
// delivered its barrier or ended.
func (g *Gate) checkAligned() {
	a := &g.align
	if !a.aligning {
		return
	}
	for j, arrived := range a.arrived {
		if !arrived && !g.valve.ended[j] {
			return
		}
	}
	a.aligning = false
	if a.unaligned {
		g.finishUnaligned()
		return
	}
	g.stopAlignmentTimeout()
	// The snapshot comes before the unblocking: nothing behind a barrier
	// reaches the operators before it.
	a.h.takeCheckpoint(a.opts)
	g.unblockAll()
}

func (g *Gate) unblockAll() {
	for j := range g.blocked {
		if g.blocked[j] {
			g.Unblock(j)
		}
	}
}

// abortAlignment aborts the checkpoint being aligned.
func (g *Gate) abortAlignment(err error) {
	a := &g.align
	a.aligning = false
	g.stopAlignmentTimeout()
	if a.unaligned {
		// The barrier went out already; the cancel marker follows it.
		// The snapshot is never uploaded: its incremental links end here.
		a.snap.AbandonLinks(err)
		a.unaligned, a.snap = false, TaskSnapshot{}
		clear(a.recording)
		clear(a.recorded)
	}
	g.unblockAll()
	a.h.abortedCheckpoint(a.latest, err)
}

// cancelCheckpoint aborts checkpoint id (a cancel marker or
// AbortCheckpoint): the one being aligned, or a newer one not seen yet,
// whose barriers will then be ignored.
func (g *Gate) cancelCheckpoint(id int64, err error) {
	a := &g.align
	if a.h == nil {
		return
	}
	switch {
	case id == a.latest && a.aligning:
		g.abortAlignment(err)
	case id > a.latest:
		if a.aligning {
			g.abortAlignment(fmt.Errorf("%w: checkpoint %d superseded by the abort of checkpoint %d", ErrCheckpointAborted, a.latest, id))
		}
		a.latest = id
		a.h.abortedCheckpoint(id, err)
	}
}
