package nexmark_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/nexmark"
)

// q5 and q7 pre-aggregate in the source task (strom.Process) and emit what they
// buffer just before each checkpoint's barrier (PrepareSnapshot), so a restored job
// loses no bid only that phase had seen. With checkpoints every few milliseconds the
// rows are still exactly the reference's, and the local phase emitted more partial
// records than without checkpoints: the hook ran mid-run and its partial results were
// combined correctly downstream.
func TestPreAggregationSurvivesCheckpoints(t *testing.T) {
	c := refCases()[0]
	for _, q := range []string{"q5", "q7"} {
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/p%d", q, p), func(t *testing.T) {
				local := map[string]string{"q5": "q5: bids per pane and subtask", "q7": "q7: highest bids per subtask"}[q]
				run := func(interval time.Duration) (int64, int) {
					out, lines := nexmark.CollectLines()
					// At 200 000 events per second the run lasts ~0.1 s, so
					// checkpoints every 5 ms fall in the middle of it.
					res, err := nexmark.Run(t.Context(), nexmark.RunConfig{Query: q, Generator: c.cfg, Events: c.events, Parallelism: p, Output: out,
						TPS: 200_000,
						Configure: func(cfg *strom.Config) {
							cfg.CheckpointInterval = interval
							cfg.CheckpointDir = fmt.Sprintf("mem://%s", t.Name())
						}})
					require.NoError(t, err)
					checkRows(t, q, c, lines())
					op, ok := res.Job.Operator(local)
					require.True(t, ok, "operator %q", local)
					return op.RecordsOut, res.Job.CheckpointsCompleted
				}
				plain, n0 := run(0)
				require.Zero(t, n0)
				withCk, n := run(5 * time.Millisecond)
				t.Logf("%d checkpoints; local phase emitted %d records, %d without checkpoints", n, withCk, plain)
				require.Positive(t, n, "no checkpoint completed")
				require.Greater(t, withCk, plain, "no partial result was emitted before a barrier")
			})
		}
	}
}

// FailEvery needs checkpointing: without it a restart would run the query over from
// the start, so Run refuses it before anything runs.
func TestFailEveryNeedsCheckpoints(t *testing.T) {
	_, err := nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q0", Events: 10, FailEvery: time.Second})
	require.ErrorContains(t, err, "needs checkpointing")
	_, err = nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q0", Events: 10, FailEvery: -time.Second})
	require.ErrorContains(t, err, "must not be negative")
}

// A run stopped with a savepoint (not drained) emits nothing after it, and a run
// resumed from it at another parallelism continues from the generator positions
// and state it holds: even with a sink that is not transactional, the two runs'
// rows together are the reference's, and their events add up to the stream.
func TestStopWithSavepointAndResume(t *testing.T) {
	c := refCases()[0]
	dir := t.TempDir()
	stopOut, stopLines := nexmark.CollectLines()
	// At 20 000 events per second the 30k events take 1.5 s: the stop falls
	// in the middle.
	stopped, err := nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q5", Generator: c.cfg, Events: c.events,
		Parallelism: 2, Output: stopOut, TPS: 20_000, StopWithSavepointAfter: 400 * time.Millisecond, SavepointDir: dir})
	require.NoError(t, err)
	require.NotEmpty(t, stopped.SavepointPath)
	require.Positive(t, stopped.Events)
	require.Less(t, stopped.Events, c.events, "the run was not stopped mid-way")

	resOut, resLines := nexmark.CollectLines()
	resumed, err := nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q5", Generator: c.cfg, Events: c.events,
		Parallelism: 3, Output: resOut, FromSavepoint: stopped.SavepointPath})
	require.NoError(t, err)
	require.Empty(t, resumed.SavepointPath)
	require.Equal(t, c.events, stopped.Events+resumed.Events, "the resumed sources continue where the stopped ones stopped")
	require.Equal(t, stopped.SavepointPath, resumed.Job.RestoredFrom)
	checkRows(t, "q5", c, append(stopLines(), resLines()...))
}

// Stopping with a savepoint needs a directory for it, and a positive delay.
func TestStopWithSavepointErrors(t *testing.T) {
	_, err := nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q0", Events: 10, StopWithSavepointAfter: time.Second})
	require.ErrorContains(t, err, "needs a savepoint directory")
	_, err = nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q0", Events: 10, StopWithSavepointAfter: -time.Second, SavepointDir: t.TempDir()})
	require.ErrorContains(t, err, "must not be negative")
	_, err = nexmark.Run(t.Context(), nexmark.RunConfig{Query: "q0", Events: 10, FromSavepoint: t.TempDir()})
	require.ErrorContains(t, err, "not a savepoint")
}
