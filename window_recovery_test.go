package strom_test

// Event-time windows with failures between a window's firing and the next
// checkpoint (issue 11.11, after Flink's EventTimeWindowCheckpointingITCase):
// a restore goes back to a checkpoint taken before the firing, so the
// window fires again — and with checkpointing, Collect is a two-phase
// commit sink, so every window result is still delivered exactly once.
// Tumbling, sliding and (merging) session windows; the oracle is the same
// job without failures, and the tumbling sums are also checked against
// the input.

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strom-dev/strom/internal/statebackend"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

type winIn struct{ Key, Ts, V int64 }

type winSum struct{ Key, Start, End, Sum, N int64 }

// winData is n records of 8 keys, 10 ms apart in event time, in bursts of
// 200 records separated by a second: a key's records are 80 ms apart
// within a burst, so a 100 ms session gap makes one session per key and
// burst.
func winData(n int) []winIn {
	data := make([]winIn, n)
	for i := range n {
		data[i] = winIn{Key: int64(i % 8), Ts: int64(i)*10 + int64(i/200)*1000, V: int64(i)}
	}
	return data
}

// winFailer fails the map after the window operator right after it saw a
// result — between a firing and the next checkpoint — once the records it
// saw reach the next threshold and a checkpoint newer than the last
// failure's is retained.
type winFailer struct {
	store      blob.Store
	thresholds []int64
	seen       atomic.Int64
	injected   atomic.Int64
	lastID     atomic.Int64
}

func (f *winFailer) apply(r winSum) winSum {
	n := f.seen.Add(1)
	i := f.injected.Load()
	if f.store != nil && i < int64(len(f.thresholds)) && n >= f.thresholds[i] {
		if _, id, _ := latestRetained(nil, f.store); id > f.lastID.Load() && f.injected.CompareAndSwap(i, i+1) {
			f.lastID.Store(id)
			panic(fmt.Sprintf("injected failure %d after a window fired, checkpoint %d retained", i+1, id))
		}
	}
	return r
}

func runWindowSums(t *testing.T, assigner window.Assigner, data []winIn, cfg strom.Config, f *winFailer) (*strom.JobResult, []winSum) {
	t.Helper()
	env := strom.NewEnvironment(cfg)
	var read atomic.Int64
	src := strom.Map(strom.FromSource(env, strom.SliceSource(data), "records"), func(r winIn) winIn {
		// Slow enough for checkpoints between firings.
		if read.Add(1)%8 == 0 {
			time.Sleep(time.Millisecond)
		}
		return r
	})
	timed := strom.AssignTimestamps(src, strom.Monotonous[winIn]().WithTimestamps(func(r winIn) int64 { return r.Ts }))
	sums := strom.WindowAggregateWith(strom.Window(strom.KeyBy(timed, func(r winIn) int64 { return r.Key }), assigner),
		state.Aggregator[winIn, [2]int64, [2]int64]{
			Create: func() [2]int64 { return [2]int64{} },
			Add:    func(a [2]int64, r winIn) [2]int64 { return [2]int64{a[0] + r.V, a[1] + 1} },
			Result: func(a [2]int64) [2]int64 { return a },
			Merge:  func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], a[1] + b[1]} },
		},
		func(ctx *strom.WindowContext[int64, winSum], a [2]int64) error {
			w := ctx.Window()
			ctx.Collect(winSum{Key: ctx.Key(), Start: w.Start, End: w.End, Sum: a[0], N: a[1]})
			return nil
		})
	out := strom.Collect(strom.Map(sums, f.apply))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, t.Name())
	require.NoError(t, err)
	got := out.Values()
	slices.SortFunc(got, func(a, b winSum) int {
		if a.Key != b.Key {
			return int(a.Key - b.Key)
		}
		return int(a.Start - b.Start)
	})
	return res, got
}

func TestWindowSumsExactWithFailuresAfterFirings(t *testing.T) {
	data := winData(8000)
	for _, tc := range []struct {
		name     string
		assigner window.Assigner
	}{
		{"tumbling", window.Tumbling(100 * time.Millisecond)},
		{"sliding", window.Sliding(200*time.Millisecond, 100*time.Millisecond)},
		{"session", window.Session(100 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, want := runWindowSums(t, tc.assigner, data, strom.Config{Parallelism: 2}, &winFailer{})
			require.NotEmpty(t, want)

			url, store := memStore(t)
			f := &winFailer{store: store, thresholds: []int64{int64(len(want) / 10), int64(len(want) * 2 / 10), int64(len(want) * 3 / 10)}}
			deltas := statebackend.DeltaSectionsApplied()
			res, got := runWindowSums(t, tc.assigner, data, ckConfig(url), f)
			if tc.name != "session" {
				// Checkpoints are incremental by default: restores
				// applied deltas of the window contents (merging
				// windows' state is rewritten whole at every checkpoint).
				require.Positive(t, statebackend.DeltaSectionsApplied()-deltas, "restores applied incremental deltas")
			}
			require.Equal(t, int64(len(f.thresholds)), f.injected.Load(), "every failure was injected")
			require.Equal(t, len(f.thresholds), res.Restarts)
			require.Positive(t, res.RestoredCheckpoint)
			require.Greater(t, f.seen.Load(), int64(len(want)), "windows fired again after restores (results replayed)")
			require.Equal(t, want, got, "each window's result exactly once, as without failures")

			if tc.name == "tumbling" {
				var total, n int64
				for _, w := range got {
					total += w.Sum
					n += w.N
				}
				require.Equal(t, int64(len(data)), n)
				require.Equal(t, int64(len(data)*(len(data)-1)/2), total)
			}
		})
	}
}
