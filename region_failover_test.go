package strom_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// countingOpens is ckCountFn that counts how often a subtask of it opened:
// once per subtask, plus once per restart of its task.
type countingOpens struct {
	ckCountFn
	opens *atomic.Int64
}

func (f *countingOpens) Open(ctx *strom.KeyedContext[int64, keyCount]) error {
	f.opens.Add(1)
	return f.ckCountFn.Open(ctx)
}

// Region failover (issue 11.9): a job of two independent pipelines is two
// pipelined regions. A failure in one restarts only that region, from the
// latest checkpoint; the other's tasks run on untouched (they open once),
// and both end with exact counts.
func TestRegionFailoverRestartsOnlyTheFailedRegion(t *testing.T) {
	url, store := memStore(t)
	cfg := ckConfig(url)
	env := strom.NewEnvironment(cfg)

	pipeline := func(name string, n int, inject func(seen int64)) (*lastCounts, *atomic.Int64) {
		data := make([]int64, n)
		for i := range data {
			data[i] = int64(i % ckKeys)
		}
		src := strom.FromSource(env, strom.SliceSource(data), name+" numbers")
		var seen atomic.Int64
		mapped := strom.Map(src, func(v int64) int64 {
			if inject != nil {
				inject(seen.Add(1))
			}
			return v
		}).Name(name + " map")
		opens := new(atomic.Int64)
		counts := strom.KeyedProcess(strom.KeyBy(mapped, func(v int64) int64 { return v }),
			func() strom.KeyedProcessFunction[int64, int64, keyCount] { return &countingOpens{opens: opens} }).Name(name + " count")
		sink := &lastCounts{last: map[int64]int64{}, rewound: map[int64]int64{}}
		strom.SinkFunc(counts, sink.put).Name(name + " sink")
		return sink, opens
	}
	var failed atomic.Bool
	// The failure comes after a checkpoint completed, so the restart has
	// one to restore from.
	sinkA, opensA := pipeline("a", ckRecords, func(seen int64) {
		if failed.Load() || seen < 300 || seen%10 != 0 {
			return
		}
		if _, id, _ := latestRetained(t, store); id > 0 && failed.CompareAndSwap(false, true) {
			panic(errors.New("injected failure in region a"))
		}
	})
	// Region b is longer, so that it still runs when region a fails.
	sinkB, opensB := pipeline("b", 3*ckRecords, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, "two regions")
	require.NoError(t, err)
	require.True(t, failed.Load(), "the failure was injected")
	require.Equal(t, 1, res.Restarts)
	require.Positive(t, res.RestoredCheckpoint, "region a restarted from a checkpoint, not from scratch")

	p := int64(cfg.Parallelism)
	require.Greater(t, opensA.Load(), p, "region a's counting tasks opened again after the restart")
	require.Equal(t, p, opensB.Load(), "region b's tasks were never restarted")

	require.Len(t, sinkA.last, ckKeys)
	for k, n := range sinkA.last {
		require.Equal(t, int64(ckRecords/ckKeys), n, "region a: final count of key %d", k)
	}
	require.Len(t, sinkB.last, ckKeys)
	for k, n := range sinkB.last {
		require.Equal(t, int64(3*ckRecords/ckKeys), n, "region b: final count of key %d", k)
	}
	require.Empty(t, sinkB.rewound, "region b never went back")
}
