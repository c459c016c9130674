package runtime

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/statebackend"
)

// TestRedistributeKeyedStreams: a new subtask gets exactly the old keyed
// streams whose key-group ranges overlap its own, and the operator lists
// dealt out for it.
func TestRedistributeKeyedStreams(t *testing.T) {
	const maxPar = 12
	var snaps []TaskSnapshot
	for i := range 2 {
		s := newSnapTimers(t, nil, maxPar, 2, i)
		var buf bytes.Buffer
		require.NoError(t, s.b.Snapshot(&buf))
		snaps = append(snaps, TaskSnapshot{
			Task: TaskInfo{Subtask: i, Parallelism: 2, MaxParallelism: maxPar},
			Operators: []OperatorSnapshot{
				{UID: "keyed", Keyed: buf.Bytes()},
				{UID: "list", Operator: []statebackend.OperatorState{{Name: "l", Elements: [][]byte{{byte(i)}}}}},
			},
		})
	}
	// Old ranges [0..5] and [6..11]; new [0..3], [4..7], [8..11].
	jr, err := Redistribute(snaps, func(uid string) int { return 3 })
	require.NoError(t, err)
	require.Len(t, jr["keyed"], 3)
	require.Len(t, jr["keyed"][0].Keyed, 1)
	require.Len(t, jr["keyed"][1].Keyed, 2)
	require.Len(t, jr["keyed"][2].Keyed, 1)
	for i, r := range jr["keyed"] {
		mine := keygroup.RangeFor(maxPar, 3, i)
		for _, k := range r.Keyed {
			info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(k))
			require.NoError(t, err)
			require.True(t, info.Range.Start <= mine.End && mine.Start <= info.Range.End)
		}
	}
	require.Equal(t, [][]byte{{0}}, jr["list"][0].Operator[0].Elements)
	require.Equal(t, [][]byte{{1}}, jr["list"][1].Operator[0].Elements)
	require.Empty(t, jr["list"][2].Operator[0].Elements)

	tr, err := jr.ForSubtask([]string{"keyed", "new"}, 1, 3)
	require.NoError(t, err)
	require.Same(t, jr["keyed"][1], tr["keyed"])
	require.NotContains(t, tr, "new")
	_, err = jr.ForSubtask([]string{"keyed"}, 0, 4)
	require.EqualError(t, err, `restore of operator "keyed" is for 3 subtasks, the operator runs with 4`)

	_, err = Redistribute(snaps[:1], nil)
	require.EqualError(t, err, `operator "keyed": snapshots of 1 of its 2 subtasks`)
}

// panicky panics in its snapshot.
type panicky struct{ Operator }

func (panicky) SnapshotState(int64) (OperatorSnapshot, error) { panic("boom") }

// TestSnapshotPanicFailsTask: a panic in an operator's snapshot fails the
// task, attributed to that operator, like a panic anywhere else in it.
func TestSnapshotPanicFailsTask(t *testing.T) {
	task := NewTask(TaskInfo{JobName: "j", VertexName: "v", Parallelism: 1}, network.NewNotifier(), nil, nil)
	src := &blockingSource{}
	task.Chain = []ChainedOperator{{Name: "src", Op: src}, {Name: "bad", Op: panicky{nopOperator{}}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	_, err := task.TriggerSnapshot(ctx, 1)
	require.ErrorIs(t, err, ErrTaskStopped)
	var te *TaskError
	require.ErrorAs(t, <-done, &te)
	require.Equal(t, "bad", te.Operator)
	require.ErrorContains(t, te, "boom")
}

type nopOperator struct{}

func (nopOperator) Open(*Context) error { return nil }
func (nopOperator) Finish() error       { return nil }
func (nopOperator) Close() error        { return nil }

// blockingSource never ends and never emits.
type blockingSource struct{ nopOperator }

func (*blockingSource) Step() SourceStep {
	return SourceStep{Status: NothingAvailable, WakeAt: time.Now().Add(time.Millisecond)}
}
func (*blockingSource) EndInput() {}

// An incremental chain restores as its base then its deltas; files out of
// that shape (a delta first, a base after the first, a delta of other key
// groups) are refused with a clear error instead of silently restoring
// part of the state.
func TestRedistributeChecksIncrementalChains(t *testing.T) {
	const maxPar = 12
	stream := func(b *statebackend.Keyed[string], mode statebackend.SnapshotMode) []byte {
		w, _, err := b.SnapshotAsyncMode(mode)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, w(&buf))
		return buf.Bytes()
	}
	s := newSnapTimers(t, nil, maxPar, 1, 0)
	base := stream(s.b, statebackend.SnapshotBase)
	delta := stream(s.b, statebackend.SnapshotDelta)
	other := newSnapTimers(t, nil, maxPar, 2, 0)
	stream(other.b, statebackend.SnapshotBase)
	otherDelta := stream(other.b, statebackend.SnapshotDelta)
	snap := func(keyed []byte, deltas ...[]byte) []TaskSnapshot {
		return []TaskSnapshot{{Task: TaskInfo{Subtask: 0, Parallelism: 1, MaxParallelism: maxPar},
			Operators: []OperatorSnapshot{{UID: "keyed", Keyed: keyed, KeyedDeltas: deltas}}}}
	}
	jr, err := Redistribute(snap(base, delta, delta), nil)
	require.NoError(t, err)
	require.Len(t, jr["keyed"][0].Keyed, 3, "the base, then its deltas")
	require.Equal(t, base, jr["keyed"][0].Keyed[0])

	_, err = Redistribute(snap(delta), nil)
	require.ErrorContains(t, err, "the first file of an incremental chain is a delta")
	_, err = Redistribute(snap(base, delta, base), nil)
	require.ErrorContains(t, err, "file 3 of an incremental chain is a base")
	_, err = Redistribute(snap(base, otherDelta), nil)
	require.ErrorContains(t, err, "delta 1 covers key groups")
}
