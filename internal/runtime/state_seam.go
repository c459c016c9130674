package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// The state seam: how a task finds, restores and snapshots every piece of
// state of its chained operators (Flink's StreamOperatorStateHandler).
//
// Before any operator opens, the task gives each operator's Context the
// operator's restore (found by operator UID in Task.Restore; none on a
// fresh start) and an operator-state store filled from it. Then, tail
// first, it calls InitializeState (operators that implement
// StateInitializer) and Open. An operator with keyed state hands its keyed
// backend to Context.RegisterKeyedBackend when it creates it (in Open); the
// backend is restored from the operator's keyed-state streams right there,
// before the operator sees a record. Timers, window and join contents are
// states registered in that backend, so they travel with it.
//
// Task.SnapshotState, on the task goroutine between two batches, first
// calls PrepareSnapshotPreBarrier on every operator head first (an
// operator may still emit there, and what the head emits reaches the rest
// of the chain before they snapshot), then takes every operator's
// OperatorSnapshot: SnapshotState for operators that implement
// StateSnapshotter (sources add their split positions, functions run their
// pre-snapshot hooks), else the Context's default, which is the keyed
// backend's stream and the operator-state store's lists. Checkpoints take
// it in two halves, with the barrier sent between them (barrier.go); tests
// also call it whole, through Task.TriggerSnapshot.

// StateInitializer is implemented by operators that restore state of their
// own before Open (a source decoding its restored splits). The Context's
// Restore and OperatorStateStore are set when it is called.
type StateInitializer interface {
	InitializeState(ctx *Context) error
}

// PreBarrierPreparer is implemented by operators that flush before a
// snapshot: records emitted in PrepareSnapshotPreBarrier precede the
// snapshot's barrier downstream (a pre-aggregating function emits its
// partial results here).
type PreBarrierPreparer interface {
	PrepareSnapshotPreBarrier(checkpointID int64) error
}

// StateSnapshotter is implemented by operators that put state of their own
// into a snapshot: they update their operator state (or run user hooks)
// and return ctx.SnapshotState(checkpointID)'s result, possibly amended.
type StateSnapshotter interface {
	SnapshotState(checkpointID int64) (OperatorSnapshot, error)
}

// KeyedBackend is what the seam needs of a keyed state backend (a
// *statebackend.Keyed[K] of any K).
type KeyedBackend interface {
	Snapshot(w io.Writer) error
	// SnapshotAsync captures the state now and returns what writes that
	// capture later, possibly on another goroutine (statebackend.Keyed).
	SnapshotAsync() (func(w io.Writer) error, error)
	Restore(r io.Reader) error
	Range() keygroup.Range
}

// IncrementalBackend is a keyed backend that takes incremental snapshots
// (statebackend.Keyed).
type IncrementalBackend interface {
	SnapshotAsyncMode(mode statebackend.SnapshotMode) (write func(w io.Writer) error, delta bool, err error)
	// Entries counts the state's entries, if every state can
	// (statebackend.Keyed.Entries): the chain's estimate of the live size.
	Entries() (n int, ok bool)
}

// OperatorSnapshot is the state of one operator subtask.
type OperatorSnapshot struct {
	UID  string
	Name string
	// Keyed is the keyed backend's snapshot stream (statebackend format,
	// key groups of the subtask's range); nil without keyed state.
	Keyed []byte
	// KeyedLater, when set instead of Keyed, encodes the keyed stream: a
	// checkpoint's asynchronous part, which the uploader runs on its own
	// goroutine while the task goes on (see Materialize).
	KeyedLater func() ([]byte, error)
	// KeyedLink, set for an incremental checkpoint, is Keyed's place in the
	// operator's chain (keyed_chain.go): the uploader finishes it and
	// acknowledges its Files. Keyed is then a delta when KeyedLink.Delta.
	KeyedLink *KeyedLink
	// KeyedDeltas are, on restore, the deltas of an incremental chain to
	// apply after Keyed (its base), in order.
	KeyedDeltas [][]byte
	// Operator is the operator state: every list of the operator-state
	// store, source split positions among them.
	Operator []statebackend.OperatorState
	// Watermark is the operator's watermark when the snapshot was taken
	// (MinWatermark: none yet): see operatorWatermark. The task sets it;
	// a StateSnapshotter need not.
	Watermark int64
}

// TaskSnapshot is the state of every operator of a task's chain, head
// first.
type TaskSnapshot struct {
	CheckpointID int64
	// Options are the checkpoint's, as its trigger or barrier carried them
	// (a savepoint is written in its own format); zero from SnapshotState.
	Options   CheckpointOptions
	Task      TaskInfo
	Operators []OperatorSnapshot
	// Channel is the in-flight data of an unaligned checkpoint (nil:
	// none); see channelstate.go.
	Channel *ChannelState
	// SyncDuration is how long the task stopped processing to take the
	// snapshot: pre-barrier hooks, barriers out, operators' state encoded
	// into memory (the synchronous part; the upload is not in it).
	SyncDuration time.Duration
}

// OperatorRestore is what one operator subtask restores from.
type OperatorRestore struct {
	// Keyed are keyed-state streams of old subtasks. After a rescale there
	// are several: the backend takes the key groups of its own range from
	// each and skips the rest.
	Keyed [][]byte
	// Operator is the operator state, already redistributed for this
	// subtask (see Redistribute).
	Operator []statebackend.OperatorState
	// Watermark is the operator's watermark to start from: the minimum of
	// the old subtasks' (after a rescale any of them may have fed this
	// subtask's keys), MinWatermark for none. See Task.restoreWatermarks.
	Watermark int64
}

// TaskRestore maps operator UIDs to their restores. An operator with no
// entry starts empty (a new operator in a restored job).
type TaskRestore map[string]*OperatorRestore

// JobRestore is the restore of a whole job: per operator UID, one restore
// per subtask of the new parallelism.
type JobRestore map[string][]*OperatorRestore

// ForSubtask picks subtask's restores of the operators in uids (a task's
// chain), checking that each was redistributed to the parallelism the
// operator runs with.
func (j JobRestore) ForSubtask(uids []string, subtask, parallelism int) (TaskRestore, error) {
	if len(j) == 0 {
		return nil, nil
	}
	tr := TaskRestore{}
	for _, uid := range uids {
		rs, ok := j[uid]
		if !ok {
			continue
		}
		if len(rs) != parallelism {
			return nil, fmt.Errorf("restore of operator %q is for %d subtasks, the operator runs with %d", uid, len(rs), parallelism)
		}
		tr[uid] = rs[subtask]
	}
	return tr, nil
}

// Redistribute turns the snapshots of every subtask of a job (any order)
// into the restore of the job at new parallelisms: parallelism(uid) is an
// operator's new parallelism (0: keep the old one). Keyed streams go to
// every new subtask whose key-group range overlaps theirs; operator state
// is redistributed by statebackend.RedistributeOperatorState (round robin
// for lists, everything everywhere for union lists).
func Redistribute(snaps []TaskSnapshot, parallelism func(uid string) int) (JobRestore, error) {
	type old struct {
		maxPar int
		subs   map[int]OperatorSnapshot
		par    int
	}
	byUID := map[string]*old{}
	var uids []string
	for _, ts := range snaps {
		for _, os := range ts.Operators {
			o, ok := byUID[os.UID]
			if !ok {
				o = &old{maxPar: ts.Task.MaxParallelism, subs: map[int]OperatorSnapshot{}, par: ts.Task.Parallelism}
				byUID[os.UID] = o
				uids = append(uids, os.UID)
			}
			if _, dup := o.subs[ts.Task.Subtask]; dup {
				return nil, fmt.Errorf("operator %q: two snapshots of subtask %d", os.UID, ts.Task.Subtask)
			}
			o.subs[ts.Task.Subtask] = os
		}
	}
	jr := JobRestore{}
	for _, uid := range uids {
		o := byUID[uid]
		if len(o.subs) != o.par {
			return nil, fmt.Errorf("operator %q: snapshots of %d of its %d subtasks", uid, len(o.subs), o.par)
		}
		n := o.par
		if parallelism != nil && parallelism(uid) > 0 {
			n = parallelism(uid)
		}
		opState := make([][]statebackend.OperatorState, o.par)
		for i := range o.par {
			opState[i] = o.subs[i].Operator
		}
		per, err := statebackend.RedistributeOperatorState(opState, n)
		if err != nil {
			return nil, fmt.Errorf("operator %q: %w", uid, err)
		}
		rs := make([]*OperatorRestore, n)
		for i := range n {
			r := &OperatorRestore{Operator: per[i], Watermark: minWatermark(o.subs)}
			mine := keygroup.RangeFor(o.maxPar, n, i)
			for j := range o.par {
				k := o.subs[j].Keyed
				if k == nil {
					continue
				}
				info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(k))
				if err != nil {
					return nil, fmt.Errorf("operator %q, old subtask %d: %w", uid, j, err)
				}
				if err := checkChain(info, o.subs[j].KeyedDeltas); err != nil {
					return nil, fmt.Errorf("operator %q, old subtask %d: %w", uid, j, err)
				}
				if info.Range.Start <= mine.End && mine.Start <= info.Range.End {
					// A chain's deltas follow their base, in order.
					r.Keyed = append(r.Keyed, k)
					r.Keyed = append(r.Keyed, o.subs[j].KeyedDeltas...)
				}
			}
			rs[i] = r
		}
		jr[uid] = rs
	}
	return jr, nil
}

// minWatermark is the minimum watermark of an operator's old subtasks: the
// restored watermark must not make late a record that was on time for any
// of them.
func minWatermark(subs map[int]OperatorSnapshot) int64 {
	wm := int64(MaxWatermark)
	for _, s := range subs {
		wm = min(wm, s.Watermark)
	}
	if len(subs) == 0 {
		return MinWatermark
	}
	return wm
}

// Watermarks: a checkpoint stores each operator's watermark and a restore
// starts the operator from it, so a record that was late before a failure
// is late after it (issue 11.4; Flink restarts every operator at
// MinWatermark). An operator's watermark is its input watermark: for the
// head of a task with inputs the gate's combined one, for a chained
// operator the newest its predecessor emitted to it. A source at the head
// has no input: its watermark is its output's, the successor's input
// watermark if it has one, else the lowest its writers emitted.

// operatorWatermark is chain operator i's watermark (see above).
func (t *Task) operatorWatermark(i int) int64 {
	if i > 0 {
		return t.Chain[i].In.watermark()
	}
	if g := t.gate(); g != nil {
		return g.valve.last
	}
	if t.Input != nil {
		return MinWatermark // an input processor without a gate: unknown
	}
	if len(t.Chain) > 1 {
		return t.Chain[1].In.watermark()
	}
	wm, found := int64(MaxWatermark), false
	for _, w := range t.Writers {
		if ww, ok := w.(interface{ currentWatermark() int64 }); ok {
			wm, found = min(wm, ww.currentWatermark()), true
		}
	}
	if !found {
		return MinWatermark
	}
	return wm
}

// restoreWatermarks starts each operator at its restored watermark, after
// Open and before any input: the head of a task with inputs gets it as a
// watermark (its gate will not emit a lower one), each chained operator
// whose restored watermark is ahead of what reached it gets it too, in
// chain order; a source alone in its chain makes it its writers' last
// watermark, so what its generator emits is max(restored, generated).
// Timers at or before the watermark that were still pending in the
// snapshot fire now rather than at the next watermark.
func (t *Task) restoreWatermarks() {
	if len(t.Restore) == 0 {
		return
	}
	for i, c := range t.Chain {
		r := t.Restore[c.UID]
		if r == nil || r.Watermark == MinWatermark {
			continue
		}
		wm := r.Watermark
		switch {
		case i == 0 && t.Input == nil:
			if len(t.Chain) == 1 {
				for _, w := range t.Writers {
					if rw, ok := w.(interface{ restoreWatermark(int64) }); ok {
						rw.restoreWatermark(wm)
					}
				}
			}
		case i == 0:
			g := t.gate()
			if g == nil {
				continue
			}
			if wm > g.valve.last {
				g.valve.last = wm
				t.current = 0
				g.op.ProcessWatermark(wm)
			}
		default:
			tr, ok := c.Op.(timeReceiver)
			if !ok || wm <= c.In.watermark() {
				continue
			}
			if c.In != nil {
				c.In.noteWatermark(wm)
			}
			t.current = i
			tr.ProcessWatermark(wm)
		}
	}
	t.current = -1
}

// operatorState is an operator's part of the seam, held by its Context.
type operatorState struct {
	restore *OperatorRestore
	store   *statebackend.OperatorStore
	keyed   KeyedBackend
	// err is a keyed restore's failure; the task reports it after Open,
	// since RegisterKeyedBackend cannot return one to where it is called.
	err error
}

// Restore is the operator's restore, nil on a fresh start.
func (c *Context) Restore() *OperatorRestore {
	if c.state == nil {
		return nil
	}
	return c.state.restore
}

// OperatorStateStore is the operator's operator-state store (nil before
// the task initialised state, as in operator unit tests that build a
// Context by hand).
func (c *Context) OperatorStateStore() *statebackend.OperatorStore {
	if c.state == nil {
		return nil
	}
	return c.state.store
}

// RegisterKeyedBackend makes b the operator's keyed state: it restores the
// operator's keyed streams into b now (states registered later claim their
// data then) and snapshots b with the operator. Call it once, when the
// backend is created, before registering states.
func (c *Context) RegisterKeyedBackend(b KeyedBackend) {
	if c.state == nil {
		c.state = &operatorState{}
	}
	s := c.state
	if s.keyed != nil {
		s.err = errors.Join(s.err, fmt.Errorf("operator %q registered a second keyed state backend", c.OperatorName))
		return
	}
	s.keyed = b
	if s.restore == nil {
		return
	}
	for i, k := range s.restore.Keyed {
		if err := b.Restore(bytes.NewReader(k)); err != nil {
			s.err = errors.Join(s.err, fmt.Errorf("restoring keyed state (stream %d of %d): %w", i+1, len(s.restore.Keyed), err))
			return
		}
	}
}

// initState installs the operator's restore and builds its operator-state
// store.
func (c *Context) initState(r *OperatorRestore) error {
	var lists []statebackend.OperatorState
	if r != nil {
		lists = r.Operator
	}
	st, err := statebackend.NewOperatorStore(r != nil, lists)
	if err != nil {
		return fmt.Errorf("restoring operator state: %w", err)
	}
	c.state = &operatorState{restore: r, store: st}
	return nil
}

// stateErr is a failure of restoring state during Open.
func (c *Context) stateErr() error {
	if c == nil || c.state == nil {
		return nil
	}
	return c.state.err
}

// SnapshotState is the default snapshot of an operator: its keyed backend's
// stream and its operator-state lists.
func (c *Context) SnapshotState(checkpointID int64) (OperatorSnapshot, error) {
	snap := OperatorSnapshot{UID: c.OperatorUID, Name: c.OperatorName}
	if c.state == nil {
		return snap, nil
	}
	if c.state.keyed != nil {
		var write func(io.Writer) error
		var err error
		var hint int // the expected size of the keyed file, for its buffer
		if ib, ok := c.state.keyed.(IncrementalBackend); ok && c.incremental {
			if c.chain == nil {
				c.chain = &keyedChain{}
			}
			var delta bool
			entries, counted := ib.Entries()
			var mode statebackend.SnapshotMode
			mode, hint = c.chain.mode(entries, counted)
			write, delta, err = ib.SnapshotAsyncMode(mode)
			if err == nil {
				snap.KeyedLink = c.chain.add(delta, entries, counted)
			}
		} else {
			write, err = c.state.keyed.SnapshotAsync()
		}
		if err != nil {
			return snap, fmt.Errorf("keyed state: %w", err)
		}
		snap.KeyedLater = func() ([]byte, error) {
			var buf bytes.Buffer
			buf.Grow(hint + hint/8)
			if err := write(&buf); err != nil {
				return nil, fmt.Errorf("keyed state: %w", err)
			}
			return buf.Bytes(), nil
		}
	}
	if c.state.store != nil {
		lists, err := c.state.store.Snapshot()
		if err != nil {
			return snap, err
		}
		snap.Operator = lists
	}
	return snap, nil
}

// initState gives every chained operator its restore and operator-state
// store and calls InitializeState, tail first like Open.
func (t *Task) initState() error {
	for i := len(t.Chain) - 1; i >= 0; i-- {
		c := t.Chain[i]
		if c.Ctx == nil {
			// Only runtime tests chain operators without a Context.
			continue
		}
		if err := c.Ctx.initState(t.Restore[c.UID]); err != nil {
			return &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: err}
		}
		if si, ok := c.Op.(StateInitializer); ok {
			if err := t.call(i, func() error { return si.InitializeState(c.Ctx) }); err != nil {
				return &TaskError{Job: t.Info.JobName, Operator: c.Name, Task: t.Info, Err: fmt.Errorf("initialize state: %w", err)}
			}
		}
	}
	return nil
}

// SnapshotState snapshots every operator of the chain (see the top of this
// file). It must run on the task goroutine, between batches: from a
// mailbox action (TriggerSnapshot) or a checkpoint (barrier.go, which puts
// the barrier between the two halves).
//
// The snapshot it returns is complete (Materialize has run); a checkpoint
// leaves the encoding of frozen state to its uploader.
func (t *Task) SnapshotState(checkpointID int64) (TaskSnapshot, error) {
	if err := t.prepareSnapshot(checkpointID); err != nil {
		return TaskSnapshot{CheckpointID: checkpointID, Task: t.Info}, err
	}
	snap, err := t.snapshotOperators(checkpointID, false)
	if err != nil {
		return snap, err
	}
	return snap, snap.Materialize()
}

// Materialize runs the asynchronous part of the snapshot: every
// operator's KeyedLater, whose bytes become its Keyed. Any goroutine; at
// most once.
func (s *TaskSnapshot) Materialize() error {
	for i := range s.Operators {
		op := &s.Operators[i]
		if op.KeyedLater == nil {
			continue
		}
		b, err := op.KeyedLater()
		if err != nil {
			return fmt.Errorf("snapshot %d, operator %q: %w", s.CheckpointID, op.Name, err)
		}
		op.Keyed, op.KeyedLater = b, nil
	}
	return nil
}

// prepareSnapshot calls PrepareSnapshotPreBarrier on every operator, head
// first.
//
// A panic, or Fail, in an operator's snapshot code or in what it emits
// fails the task as anywhere else: Run recovers it, attributed through
// t.current (which the loop resets before the next mail). An error
// returned fails only this snapshot.
func (t *Task) prepareSnapshot(checkpointID int64) error {
	for i, c := range t.Chain {
		if p, ok := c.Op.(PreBarrierPreparer); ok {
			if err := t.call(i, func() error { return p.PrepareSnapshotPreBarrier(checkpointID) }); err != nil {
				return fmt.Errorf("snapshot %d, operator %q: preparing: %w", checkpointID, c.Name, err)
			}
		}
	}
	return nil
}

// snapshotOperators takes every operator's snapshot, head first;
// checkpoint says it is a checkpoint (which may be incremental), not a
// savepoint or a test's snapshot.
func (t *Task) snapshotOperators(checkpointID int64, checkpoint bool) (TaskSnapshot, error) {
	snap := TaskSnapshot{CheckpointID: checkpointID, Task: t.Info}
	for i, c := range t.Chain {
		t.current = i
		if c.Ctx != nil {
			c.Ctx.incremental = checkpoint && c.Ctx.IncrementalCheckpoints
		}
		var os OperatorSnapshot
		var err error
		switch s, ok := c.Op.(StateSnapshotter); {
		case ok:
			os, err = s.SnapshotState(checkpointID)
		case c.Ctx == nil:
			os = OperatorSnapshot{UID: c.UID, Name: c.Name}
		default:
			os, err = c.Ctx.SnapshotState(checkpointID)
		}
		if err != nil {
			return snap, fmt.Errorf("snapshot %d, operator %q: %w", checkpointID, c.Name, err)
		}
		os.Watermark = t.operatorWatermark(i)
		snap.Operators = append(snap.Operators, os)
	}
	return snap, nil
}

// TriggerSnapshot takes a snapshot on the task goroutine (through the
// mailbox) and waits for it. It fails with ErrTaskStopped once the task
// has stopped.
func (t *Task) TriggerSnapshot(ctx context.Context, checkpointID int64) (TaskSnapshot, error) {
	type result struct {
		snap TaskSnapshot
		err  error
	}
	done := make(chan result, 1)
	if err := t.Mail(ctx, func() {
		s, err := t.SnapshotState(checkpointID)
		done <- result{s, err}
	}); err != nil {
		return TaskSnapshot{}, err
	}
	select {
	case r := <-done:
		return r.snap, r.err
	case <-t.mailbox.stoppedChan():
		// The mail may have run just before the task stopped.
		select {
		case r := <-done:
			return r.snap, r.err
		default:
			return TaskSnapshot{}, ErrTaskStopped
		}
	case <-ctx.Done():
		return TaskSnapshot{}, ctx.Err()
	}
}

// checkChain refuses keyed streams that are not one base and its deltas
// (a delta restored without its base would silently miss every key it
// did not change).
func checkChain(base statebackend.SnapshotInfo, deltas [][]byte) error {
	if base.Delta {
		return errors.New("keyed state: the first file of an incremental chain is a delta, not a base")
	}
	for i, d := range deltas {
		info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(d))
		if err != nil {
			return fmt.Errorf("keyed state, delta %d of %d: %w", i+1, len(deltas), err)
		}
		if !info.Delta {
			return fmt.Errorf("keyed state: file %d of an incremental chain is a base, not a delta", i+2)
		}
		if info.Range != base.Range {
			return fmt.Errorf("keyed state: delta %d covers key groups %v, its base %v", i+1, info.Range, base.Range)
		}
	}
	return nil
}
