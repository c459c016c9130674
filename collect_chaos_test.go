package strom_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// runCollectChaos runs the chaos job of recovery_chaos_test.go (keyed
// running counts over a (key, sequence) stream, failures injected by c)
// into a Collect sink and returns the result and what was collected.
func runCollectChaos(t *testing.T, cfg strom.Config, data []seqRecord, c *chaos, bad *violations) (*strom.JobResult, error, []seqState) {
	t.Helper()
	env := strom.NewEnvironment(cfg)
	h := c.hooks()
	src := strom.FromSource(env, strom.SliceSource(data), "sequences")
	failing := strom.Process(src, h.newMap)
	counted := strom.KeyedProcess(strom.KeyBy(failing, func(r seqRecord) int64 { return r.Key }),
		func() strom.KeyedProcessFunction[int64, seqRecord, seqState] {
			return &seqCheckFn{bad: bad, fail: h.keyedFail}
		})
	got := strom.Collect(counted)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, "collect chaos")
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the job hung")
	return res, err, got.Values()
}

// requireEachRecordOnce checks that the keyed function's output for every
// input record was collected once: per key, the running counts 1..n, each
// once. A record collected twice (emitted by a failed attempt after its
// last checkpoint, and again by the restarted one) repeats a count; a lost
// one leaves a count out.
func requireEachRecordOnce(t *testing.T, got []seqState, counts map[int64]int64) {
	t.Helper()
	perKey := map[int64][]int64{}
	for _, s := range got {
		perKey[s.Key] = append(perKey[s.Key], s.Count)
	}
	require.Len(t, perKey, len(counts), "every key was collected")
	for k, n := range counts {
		cs := perKey[k]
		slices.Sort(cs)
		want := make([]int64, n)
		for i := range want {
			want[i] = int64(i + 1)
		}
		require.Equal(t, want, cs, "key %d: each record's count collected exactly once", k)
	}
}

// With checkpointing Collect publishes a record only once a checkpoint
// after it completed, so failures at seeded random points — in the map
// after the source or in the keyed function, after at least one
// checkpoint — neither repeat nor lose a collected record.
func TestCollectExactlyOnceWithRestarts(t *testing.T) {
	const records, keys = 6000, 8
	for seed := 1; seed <= 3; seed++ {
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("seed=%d/p=%d", seed, p), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(seed), 0xc011ec7))
				data, counts := seqData(uint64(seed), records, keys, p)
				failures := 1 + rng.IntN(3)
				c := seededChaos(rng, records, p, failures)
				t.Logf("failures at %v records, in subtask %d of the keyed function: %v", c.thresholds, c.subtask, c.inKeyed)
				url, store := memStore(t)
				c.store = store
				bad := &violations{}
				res, err, got := runCollectChaos(t, chaosConfig(url, p, failures+3), data, c, bad)
				require.NoError(t, err)
				require.Empty(t, bad.get())
				require.Equal(t, int64(failures), c.injected.Load(), "every planned failure was injected")
				require.Equal(t, failures, res.Restarts)
				require.Positive(t, c.firstCkpt.Load(), "a checkpoint completed before the first failure")
				require.Positive(t, res.LastCheckpointDuration, "the last checkpoint's duration is reported")
				require.Equal(t, records, len(got), "one collected value per record")
				requireEachRecordOnce(t, got, counts)
			})
		}
	}
}

// Without failures Collect still collects everything, with checkpointing
// (published at checkpoints, the last batch at the final one) and without.
func TestCollectEverythingWithoutFailures(t *testing.T) {
	const records, keys, p = 3000, 8, 2
	data, counts := seqData(5, records, keys, p)
	url, _ := memStore(t)
	for name, cfg := range map[string]strom.Config{
		"checkpointing":    chaosConfig(url, p, 1),
		"no checkpointing": {Parallelism: p, BatchSize: 8},
	} {
		t.Run(name, func(t *testing.T) {
			res, err, got := runCollectChaos(t, cfg, data, &chaos{}, &violations{})
			require.NoError(t, err)
			require.Zero(t, res.Restarts)
			if cfg.CheckpointInterval > 0 {
				require.Positive(t, res.CheckpointsCompleted)
			} else {
				require.Zero(t, res.LastCheckpointDuration)
			}
			require.Equal(t, records, len(got))
			requireEachRecordOnce(t, got, counts)
		})
	}
}
