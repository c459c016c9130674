package strom_test

// Watermarks survive failures (issue 11.4): a checkpoint stores every
// operator's watermark and a restore starts the operator from it, so a
// record that was late before a failure is late after it and the recovered
// output is that of a failure-free run, late data included.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/window"
)

// wmRecord is one record of the late-data stream; Win is the start of its
// tumbling window (so a window result names its window), N counts the
// records a window result sums.
type wmRecord struct {
	ID, Key, Ts, Win, Sum, N int64
}

const wmWindow = 10 // ms

// lateData builds n records at 1 ms per position, out of order within the
// watermark bound, keys 0..3. Every read batch of the slice source starts
// with a record 40 ms behind (late: its window was cleaned up), so each
// checkpoint, taken between two reads, is followed by a late record, which
// a restore replays first: late only if the restored operator starts at
// its checkpointed watermark. A few more late records lie at random.
func lateData(seed uint64, n int) []wmRecord {
	rng := rand.New(rand.NewPCG(seed, 7))
	data := make([]wmRecord, n)
	for i := range n {
		ts := int64(i) - rng.Int64N(5)
		if (i > 0 && i%strom.ReadBatch == 0) || rng.IntN(50) == 0 {
			ts = int64(i) - 40
		}
		ts = max(ts, 0)
		data[i] = wmRecord{ID: int64(i), Key: int64(i % 4), Ts: ts, Win: ts / wmWindow * wmWindow, Sum: int64(i), N: 1}
	}
	return data
}

// wmFailer fails the map after the source when the records processed (over
// every attempt) reach the next threshold, once a checkpoint newer than
// the last failure's is retained. It slows the source a little, so
// checkpoints complete between failures.
type wmFailer struct {
	store      blob.Store
	thresholds []int64
	processed  atomic.Int64
	injected   atomic.Int64
	lastID     atomic.Int64
}

// process is the map's function.
func (f *wmFailer) process(ctx *strom.ProcessContext[wmRecord], r wmRecord) error {
	n := f.processed.Add(1)
	if n%64 == 0 {
		time.Sleep(time.Millisecond)
	}
	i := f.injected.Load()
	if i < int64(len(f.thresholds)) && n >= f.thresholds[i] {
		if _, id, _ := latestRetained(nil, f.store); id > f.lastID.Load() && f.injected.CompareAndSwap(i, i+1) {
			f.lastID.Store(id)
			panic(fmt.Sprintf("injected failure %d after checkpoint %d", i+1, id))
		}
	}
	ctx.Collect(r)
	return nil
}

type wmOutput struct {
	mu      sync.Mutex
	windows map[[2]int64]wmRecord // (key, window start) → result
	late    map[int64]bool        // ids on the late side output
}

// runLateJob runs source → timestamps (per-record watermarks, 5 ms bound)
// → failing map → keyBy → 10 ms tumbling windows (allowed lateness 0,
// late side output) → sinks, at parallelism 1 so event time follows the
// data exactly. The sinks are idempotent (a window result per key and
// window, the late ids as a set): a restore replays what followed its
// checkpoint, and identical replays leave them unchanged, while a window
// fired again, or a late record taken into a window, changes them.
func runLateJob(t *testing.T, data []wmRecord, url string, f *wmFailer, attempts int) (*strom.JobResult, *wmOutput) {
	t.Helper()
	env := strom.NewEnvironment(strom.Config{
		Parallelism: 1, BatchSize: 8, BuffersPerChannel: 2,
		CheckpointInterval: 10 * time.Millisecond, CheckpointDir: url,
		RestartStrategy: strom.FixedDelayRestart(attempts, time.Millisecond),
	})
	src := strom.FromSource(env, strom.SliceSource(data), "late data")
	stamped := strom.AssignTimestamps(src, strom.BoundedOutOfOrderness[wmRecord](5*time.Millisecond).
		WithTimestamps(func(r wmRecord) int64 { return r.Ts }).EmitPerRecord())
	failing := strom.ProcessFunc(stamped, f.process)
	lateTag := strom.NewOutputTag[wmRecord]("late")
	sums := strom.WindowReduce(strom.Window(strom.KeyBy(failing, func(r wmRecord) int64 { return r.Key }), window.Tumbling(wmWindow*time.Millisecond)).
		AllowedLateness(0).SideOutputLateData(lateTag),
		func(a, b wmRecord) wmRecord { a.Sum += b.Sum; a.N += b.N; return a })
	out := &wmOutput{windows: map[[2]int64]wmRecord{}, late: map[int64]bool{}}
	strom.SinkFunc(sums, func(r wmRecord) error {
		out.mu.Lock()
		defer out.mu.Unlock()
		out.windows[[2]int64{r.Key, r.Win}] = r
		return nil
	})
	strom.SinkFunc(strom.SideOutput(sums, lateTag), func(r wmRecord) error {
		out.mu.Lock()
		defer out.mu.Unlock()
		out.late[r.ID] = true
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, "late data")
	require.NoError(t, err)
	return res, out
}

// Failures after some checkpoints: the window results and the late side
// output are exactly those of a failure-free run. Without restoring the
// watermarks this fails (checked by disabling Task.restoreWatermarks): the
// late record a restore replays first is taken into a new window, which
// fires again, and misses the side output.
func TestLateDataAfterRecoveryAsWithoutFailure(t *testing.T) {
	data := lateData(1, 12000)
	url, store := memStore(t)
	want, wantOut := runLateJob(t, data, url, &wmFailer{store: store}, 1)
	require.Zero(t, want.Restarts)
	require.NotEmpty(t, wantOut.late, "the stream has late data")
	require.GreaterOrEqual(t, len(wantOut.late), len(data)/strom.ReadBatch-1)

	for _, thresholds := range [][]int64{{3000}, {2500, 6000, 9000}} {
		t.Run(fmt.Sprint(len(thresholds), "failures"), func(t *testing.T) {
			url, store := memStore(t)
			f := &wmFailer{store: store, thresholds: thresholds}
			res, out := runLateJob(t, data, url, f, len(thresholds)+2)
			require.Equal(t, int64(len(thresholds)), f.injected.Load(), "every failure was injected")
			require.Equal(t, len(thresholds), res.Restarts)
			require.Positive(t, res.RestoredCheckpoint, "restored from a checkpoint")
			require.Equal(t, wantOut.late, out.late, "the same records are late")
			require.Equal(t, wantOut.windows, out.windows, "the same window results")
		})
	}
}
