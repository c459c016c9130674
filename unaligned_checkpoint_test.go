package strom_test

// Unaligned checkpoints (issue 11.8, after Flink's UnalignedCheckpointITCase):
// under a sink slowed on purpose they complete while aligned ones time out,
// and with failures injected they keep keyed counts exact, replaying the
// records that were in flight. The rescaling refusal is tested where it
// is decided (internal/taskmanager, TestChannelStateUploadRestoreAndRescaleRefused).

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/runtime"
)

// backpressuredRun runs the chaos job without failures, its keyed function
// sleeping 2 ms per record, so the sources are backpressured and hundreds
// of milliseconds of records wait in every channel: an aligned barrier
// needs as long to reach the keyed function, longer than the 100 ms
// checkpoint timeout.
func backpressuredRun(t *testing.T, mode strom.CheckpointMode, alignedTimeout time.Duration) *strom.JobResult {
	t.Helper()
	const records, keys, p = 1500, 16, 2
	data, counts := seqData(7, records, keys, p)
	url, _ := memStore(t)
	cfg := strom.Config{
		Parallelism: p, BatchSize: 16, BuffersPerChannel: 4,
		CheckpointInterval: 20 * time.Millisecond, CheckpointTimeout: 100 * time.Millisecond,
		TolerableCheckpointFailures: 1 << 20, CheckpointDir: url,
		CheckpointMode: mode, AlignedCheckpointTimeout: alignedTimeout,
	}
	h := chaosHooks{
		newMap:    (&chaos{thresholds: nil}).newMap,
		keyedFail: func(int) { time.Sleep(2 * time.Millisecond) },
		failures:  func() int64 { return 0 },
	}
	bad := &violations{}
	run, sink := runChaos(t, cfg, data, h, bad)
	require.NoError(t, run.err)
	require.Empty(t, bad.get())
	requireExactStates(t, sink, counts)
	return run.res
}

// Under backpressure aligned checkpoints time out (at most the final one,
// taken once the input has drained, completes), while unaligned ones, and
// aligned ones with an alignment timeout shorter than the checkpoint
// timeout (they switch to unaligned), complete throughout the run.
func TestUnalignedCheckpointsCompleteUnderBackpressure(t *testing.T) {
	aligned := backpressuredRun(t, strom.CheckpointExactlyOnce, 0)
	unaligned := backpressuredRun(t, strom.CheckpointUnaligned, 0)
	switched := backpressuredRun(t, strom.CheckpointExactlyOnce, 10*time.Millisecond)
	t.Logf("checkpoints completed: aligned %d, unaligned %d, aligned with a 10 ms alignment timeout %d",
		aligned.CheckpointsCompleted, unaligned.CheckpointsCompleted, switched.CheckpointsCompleted)
	require.LessOrEqual(t, aligned.CheckpointsCompleted, 2, "aligned checkpoints wait behind the backlog")
	require.GreaterOrEqual(t, unaligned.CheckpointsCompleted, 5, "unaligned checkpoints overtake the backlog")
	require.GreaterOrEqual(t, switched.CheckpointsCompleted, 5, "aligned checkpoints switch to unaligned after the alignment timeout")
}

// Exactly once with unaligned checkpoints and failures at seeded random
// points (TestChaosRecovery's job and checks): keyed counts exact, every
// lane's sequence without gap or repeat. Across the runs the restores
// replayed records from channel state, so the in-flight data path was
// exercised, not only the operator state.
func TestUnalignedChaosRecovery(t *testing.T) {
	before := runtime.ChannelStateReplayed()
	runSeededChaos(t, strom.CheckpointUnaligned, 3)
	require.Positive(t, runtime.ChannelStateReplayed()-before, "some restore replayed in-flight records")
}
