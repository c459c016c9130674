package strom_test

// The final checkpoint of bounded jobs (FLIP-147) in the embedded cluster:
// with checkpointing on, a two-phase-commit sink commits the tail of its
// output (what followed the last periodic checkpoint) only on the
// notification of a checkpoint taken after its end of input, which the
// tasks wait for before they finish.

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
)

// finalJob runs FromSlice(0..n-1) → rebalance → map (calling inject, if
// set, with how many records its subtasks have seen) → exactly-once file
// sink into dir. The rebalance puts the sink in a task with inputs, which
// no barrier reaches once its input has ended: the final checkpoint must
// be triggered at it directly.
func finalJob(t *testing.T, cfg strom.Config, n int, dir string, inject func(seen int)) (*strom.JobResult, error) {
	t.Helper()
	env := strom.NewEnvironment(cfg)
	src := strom.FromSource(env, strom.SliceSource(rangeSlice(n)), "numbers").UID("numbers")
	var seen atomic.Int64
	mapped := strom.Map(strom.Rebalance(src), func(v int) int {
		s := seen.Add(1)
		if inject != nil {
			inject(int(s))
		}
		if s%20 == 0 {
			time.Sleep(time.Millisecond) // long enough for several checkpoints
		}
		return v
	}).UID("map")
	file.WriteLinesExactlyOnce(mapped, dir, nil).UID("sink")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return env.Execute(ctx, t.Name())
}

// With only the final checkpoint (the interval is far longer than the
// job), every record is committed once and nothing is left in progress:
// without the final checkpoint the sink's whole output would stay in
// progress, since it never commits at its end of input with checkpointing
// on.
func TestFinalCheckpointCommitsBoundedOutput(t *testing.T) {
	url, _ := memStore(t)
	dir := filepath.Join(t.TempDir(), "out")
	const n = 1000
	r, err := finalJob(t, strom.Config{Parallelism: 2, CheckpointInterval: time.Hour, CheckpointDir: url}, n, dir, nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.CheckpointsCompleted, 1, "the final checkpoint completed")
	require.Zero(t, r.Restarts)
	visible, hidden, lines := dirFiles(t, dir)
	require.Empty(t, hidden, "nothing left in progress")
	require.Equal(t, rangeSlice(n), lines, "every record committed exactly once")
	for _, name := range visible {
		require.Regexp(t, `^part-[01]-0-9223372036854775807$`, name, "the end of input's transactions, committed by the final checkpoint")
	}
}

// Periodic checkpoints, a failure once one exists, a restore from it, and
// the final checkpoint at the end: the committed files hold every record
// exactly once — what was committed before the failure is not written
// again, what followed the restored checkpoint is, and the tail is
// committed by the final checkpoint.
func TestFinalCheckpointExactlyOnceAcrossRestore(t *testing.T) {
	url, store := memStore(t)
	dir := filepath.Join(t.TempDir(), "out")
	const n = 4000
	var failed atomic.Bool
	cfg := strom.Config{
		Parallelism: 2, BatchSize: 8, BuffersPerChannel: 2,
		CheckpointInterval: 30 * time.Millisecond, CheckpointDir: url,
		RestartStrategy: strom.FixedDelayRestart(3, 10*time.Millisecond),
	}
	r, err := finalJob(t, cfg, n, dir, func(seen int) {
		if failed.Load() || seen < 300 || seen%10 != 0 {
			return
		}
		if _, id, notified := latestRetained(t, store); id > 0 && notified && !failed.Swap(true) {
			panic("injected failure after a checkpoint")
		}
	})
	require.NoError(t, err)
	require.True(t, failed.Load(), "the failure was injected (the job ran %v)", r.Duration)
	require.GreaterOrEqual(t, r.Restarts, 1)
	require.Positive(t, r.RestoredCheckpoint, "restored from a checkpoint, not from scratch")
	require.GreaterOrEqual(t, r.CheckpointsCompleted, 2)
	visible, hidden, lines := dirFiles(t, dir)
	require.Empty(t, hidden, "nothing left in progress")
	require.Equal(t, rangeSlice(n), lines, "every record committed exactly once: none lost, none twice")
	restarted := false
	for _, name := range visible {
		require.Regexp(t, `^part-[01]-\d+-\d+$`, name)
		restarted = restarted || name[len("part-0-")] != '0'
	}
	require.True(t, restarted, "the restarted attempt committed the rest: %v", visible)
}
