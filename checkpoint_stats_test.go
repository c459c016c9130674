package strom_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A checkpointed job reports its last checkpoint's numbers (issue 11.7 and
// 11.12): how long it took, the bytes of state it wrote, and the longest
// synchronous pause a task took for it — a part of the whole.
func TestLastCheckpointNumbers(t *testing.T) {
	url, _ := memStore(t)
	r, sink, err := runCounting(t, ckConfig(url), nil)
	require.NoError(t, err)
	requireExactCounts(t, sink)
	require.Positive(t, r.CheckpointsCompleted)
	require.Positive(t, r.LastCheckpointDuration)
	require.Positive(t, r.LastCheckpointSize, "the counts' keyed state and the source's splits were written")
	require.Positive(t, r.LastCheckpointSyncPause)
	require.Less(t, r.LastCheckpointSyncPause, r.LastCheckpointDuration, "the synchronous pause is a part of the checkpoint")
}
