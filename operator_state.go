package strom

import (
	"errors"
	"fmt"

	"github.com/strom-dev/strom/internal/minicluster"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

// How the operators of this package take part in the state seam (see
// internal/runtime/state_seam.go): process functions, source readers and
// sink writers reach their operator state through their contexts
// (state.GetOperatorList, state.GetUnionList), run a hook just before each
// snapshot, and sources store their readers' split positions as operator
// list state, so a restored source resumes where it was and a rescaled one
// deals its splits out over the new subtasks.

// ProcessSnapshotHook is implemented by process functions that must act
// just before a snapshot of their state is taken: a pre-aggregating
// function (Nexmark q5, q7) emits its partial results there — what it
// collects precedes the snapshot downstream — or stores them in its
// operator state. It runs on the subtask's goroutine, between records; an
// error fails the snapshot.
type ProcessSnapshotHook[OUT any] interface {
	PrepareSnapshot(ctx *ProcessContext[OUT]) error
}

// SnapshotHook is implemented by source readers and sink writers that must
// act just before a snapshot of their state is taken: write what they
// buffer into their operator state, or flush it. checkpointID identifies
// the snapshot. An error fails the snapshot.
type SnapshotHook interface {
	PrepareSnapshot(checkpointID int64) error
}

// SplitCodec is implemented by sources whose splits can be stored in a
// snapshot: it encodes a split with its reader's position and decodes it
// again, in a later run of the program (perhaps at another parallelism).
// A source without it cannot be snapshotted.
type SplitCodec interface {
	EncodeSplit(s Split) ([]byte, error)
	DecodeSplit(b []byte) (Split, error)
}

// notReplayable is implemented by sources that can never resume from a
// position; the reason goes into the snapshot error.
type notReplayable interface{ notReplayable() string }

// sourceSplitsState is the operator list state a source stores its
// reader's unfinished splits in (Flink's SourceReaderState), one encoded
// split per element, so a rescale deals the splits out round robin.
const sourceSplitsState = "_source_splits"

// operatorStore is the public view of an operator's operator-state store
// (nil when the task has not set one up).
func operatorStore(ctx *runtime.Context) *state.OperatorStore {
	s := ctx.OperatorStateStore()
	if s == nil {
		return nil
	}
	return statebackend.WrapOperatorStore(s).(*state.OperatorStore)
}

// OperatorStateStore is the subtask's operator state, for
// state.GetOperatorList and state.GetUnionList.
func (c *ProcessContext[OUT]) OperatorStateStore() *state.OperatorStore {
	if c.opState == nil {
		c.opState = operatorStore(c.rt)
	}
	return c.opState
}

// OperatorStateStore is the reader's operator state (nil in a context not
// made by a running job), for state.GetOperatorList and
// state.GetUnionList.
func (c SourceContext) OperatorStateStore() *state.OperatorStore { return c.opState }

// OperatorStateStore is the writer's operator state (nil in a context not
// made by a running job), for state.GetOperatorList and
// state.GetUnionList.
func (c SinkContext) OperatorStateStore() *state.OperatorStore { return c.opState }

// PrepareSnapshotPreBarrier runs the function's ProcessSnapshotHook.
func (o *streamProcessOp[IN, OUT]) PrepareSnapshotPreBarrier(int64) error {
	h, ok := o.fn.(ProcessSnapshotHook[OUT])
	if !ok {
		return nil
	}
	o.ctx.ts = runtime.NoTimestamp
	return h.PrepareSnapshot(&o.ctx)
}

// PrepareSnapshotPreBarrier runs the writer's SnapshotHook.
func (o *sinkOp[T]) PrepareSnapshotPreBarrier(id int64) error {
	if h, ok := o.w.(SnapshotHook); ok {
		return h.PrepareSnapshot(id)
	}
	return nil
}

// PrepareSnapshotPreBarrier runs the reader's SnapshotHook.
func (o *sourceOp[T]) PrepareSnapshotPreBarrier(id int64) error {
	if h, ok := o.reader.(SnapshotHook); ok {
		return h.PrepareSnapshot(id)
	}
	return nil
}

// splitCodec is the source's split codec, or an error saying why its
// position cannot be stored.
func (o *sourceOp[T]) splitCodec() (SplitCodec, error) {
	if nr, ok := o.src.(notReplayable); ok {
		return nil, fmt.Errorf("source %q cannot be snapshotted: %s", o.name, nr.notReplayable())
	}
	c, ok := o.src.(SplitCodec)
	if !ok {
		return nil, fmt.Errorf("source %q cannot be snapshotted: its source (%T) does not implement SplitCodec, so its reader's position cannot be stored", o.name, o.src)
	}
	return c, nil
}

func (o *sourceOp[T]) splitsState(ctx *runtime.Context) (*statebackend.OperatorList[[]byte], error) {
	st := ctx.OperatorStateStore()
	if st == nil {
		return nil, errors.New("no operator state store")
	}
	return statebackend.GetOperatorList[[]byte](st, sourceSplitsState, statebackend.SplitDistribute, nil)
}

// assignSplits returns the splits of this subtask: on a fresh start split
// i of Splits(p) goes to subtask i mod p; on a restore the subtask resumes
// the splits it was dealt from the snapshot.
func (o *sourceOp[T]) assignSplits(ctx *runtime.Context) ([]Split, error) {
	p := ctx.Task.Parallelism
	if st := ctx.OperatorStateStore(); st != nil && st.IsRestored() {
		l, err := o.splitsState(ctx)
		if err != nil {
			return nil, fmt.Errorf("source %q: restoring splits: %w", o.name, err)
		}
		enc := l.Get()
		if len(enc) == 0 {
			return nil, nil
		}
		c, err := o.splitCodec()
		if err != nil {
			return nil, fmt.Errorf("restoring splits: %w", err)
		}
		mine := make([]Split, 0, len(enc))
		for i, b := range enc {
			s, err := c.DecodeSplit(b)
			if err != nil {
				return nil, fmt.Errorf("source %q: restoring split %d of %d: %w", o.name, i+1, len(enc), err)
			}
			mine = append(mine, s)
		}
		return mine, nil
	}
	splits, err := o.src.Splits(p)
	if err != nil {
		return nil, fmt.Errorf("source %q: listing splits: %w", o.name, err)
	}
	var mine []Split
	for i, s := range splits {
		if i%p == ctx.Task.Subtask {
			mine = append(mine, s)
		}
	}
	return mine, nil
}

// SnapshotState stores the reader's unfinished splits, with their
// positions, in the source's operator state, then snapshots that.
func (o *sourceOp[T]) SnapshotState(id int64) (runtime.OperatorSnapshot, error) {
	c, err := o.splitCodec()
	if err != nil {
		return runtime.OperatorSnapshot{}, err
	}
	var splits []Split
	if o.reader != nil {
		if splits, err = o.reader.Snapshot(); err != nil {
			return runtime.OperatorSnapshot{}, fmt.Errorf("source %q: reader snapshot: %w", o.name, err)
		}
	}
	enc := make([][]byte, 0, len(splits))
	for _, s := range splits {
		b, err := c.EncodeSplit(s)
		if err != nil {
			return runtime.OperatorSnapshot{}, fmt.Errorf("source %q: encoding split %q: %w", o.name, s.SplitID(), err)
		}
		enc = append(enc, b)
	}
	l, err := o.splitsState(o.ctx)
	if err != nil {
		return runtime.OperatorSnapshot{}, fmt.Errorf("source %q: %w", o.name, err)
	}
	l.Update(enc)
	return o.ctx.SnapshotState(id)
}

// stateSeam is how tests drive the state seam without checkpoints: the
// job starts from restore, and onTask sees every task before it runs (to
// snapshot it with runtime.Task.TriggerSnapshot).
type stateSeam struct {
	restore runtime.JobRestore
	onTask  func(*runtime.Task)
	// dropMessage loses messages between the cluster's roles (tests).
	dropMessage func(to string, m rpc.Message) bool
	// cluster, if set, adjusts the embedded cluster's configuration
	// (heartbeat settings of failure-detection tests).
	cluster func(*minicluster.Config)
}
