package runtime

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
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
