package strom_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/window"
)

// stopSPJob is numbers → (slow) map → two-phase-commit sink into store,
// started asynchronously; name goes into the committables' ids, so the
// writes of two runs never share one.
func stopSPJob(t *testing.T, cfg strom.Config, n int, name string, store *fakeStore) (*strom.JobClient, *atomic.Int64) {
	t.Helper()
	data := make([]int, n)
	for i := range data {
		data[i] = i
	}
	env := strom.NewEnvironment(cfg)
	src := strom.FromSource(env, strom.SliceSource(data), "numbers").UID("numbers")
	seen := new(atomic.Int64)
	slow := strom.Map(src, func(v int) int {
		if seen.Add(1)%4 == 0 {
			time.Sleep(time.Millisecond)
		}
		return v
	}).UID("slow")
	strom.SinkToCommitting(slow, "2pc",
		func(c strom.SinkContext) (strom.CommittingSinkWriter[int, fakeCommittable], error) {
			return &fakeWriter{job: name + "-" + itoa(int64(c.Attempt)), subtask: c.Subtask}, nil
		},
		func(strom.SinkContext) (strom.Committer[fakeCommittable], error) { return store, nil }, nil).UID("sink")
	jc, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	t.Cleanup(jc.Close)
	return jc, seen
}

// Stop-with-savepoint without drain (Flink's "stop"): the job ends
// FINISHED with its sink committed up to the savepoint and nothing after
// it; a job resumed from the savepoint — at another parallelism — commits
// the rest, so together every record is committed exactly once.
func TestStopWithSavepointThenResume(t *testing.T) {
	const n = 3000
	url, _ := memStore(t)
	spDir := "file://" + t.TempDir()
	store := newFakeStore()
	cfg := ckConfig(url)
	jc, seen := stopSPJob(t, cfg, n, "first", store)
	require.Eventually(t, func() bool { return seen.Load() > n/5 }, 30*time.Second, time.Millisecond)

	path, err := jc.StopWithSavepoint(context.Background(), spDir, false)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(path, spDir+"/savepoint-"), path)
	res, err := jc.Wait(context.Background())
	require.NoError(t, err, "a stopped job ends FINISHED")
	require.Equal(t, "FINISHED", jc.Status())
	first := store.values()
	require.NotEmpty(t, first, "the stopped job committed what its savepoint covers")
	require.Less(t, len(first), n, "the job was stopped mid-run")
	require.Less(t, seen.Load(), int64(n), "the sources did not read on to the end")
	md, _, err := checkpoint.LoadSavepoint(context.Background(), path)
	require.NoError(t, err)
	require.Equal(t, checkpoint.KindSavepoint, md.Kind)
	_ = res

	cfg2 := ckConfig(url)
	cfg2.Parallelism = 3
	cfg2.FromSavepoint = path
	jc2, _ := stopSPJob(t, cfg2, n, "second", store)
	res2, err := jc2.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, path, res2.RestoredFrom)
	require.Equal(t, rangeSlice(n), store.values(), "every record committed once over both runs")
	store.requireCommittedOnce(t)
}

// A stop-with-savepoint to a place that cannot be written fails with a
// clear error and the job keeps running: its sources read on and it
// finishes with every record.
func TestStopWithSavepointFailureKeepsTheJobRunning(t *testing.T) {
	const n = 1500
	url, _ := memStore(t)
	notADir := t.TempDir() + "/file"
	require.NoError(t, os.WriteFile(notADir, []byte("x"), 0o644))
	store := newFakeStore()
	jc, seen := stopSPJob(t, ckConfig(url), n, "job", store)
	require.Eventually(t, func() bool { return seen.Load() > n/5 }, 30*time.Second, time.Millisecond)
	_, err := jc.StopWithSavepoint(context.Background(), "file://"+notADir, false)
	require.Error(t, err)
	require.Contains(t, err.Error(), "savepoint")
	_, err = jc.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, rangeSlice(n), store.values(), "the job read on after the failed stop and finished")
	store.requireCommittedOnce(t)
}

// With drain the sources end their input first: the maximum watermark
// fires every event-time window (also the last, open ones), and the
// savepoint is the job's final snapshot.
func TestStopWithSavepointDrainFiresWindows(t *testing.T) {
	url, _ := memStore(t)
	data := winData(100_000) // far more than the job reads before the stop
	env := strom.NewEnvironment(ckConfig(url))
	var read atomic.Int64
	src := strom.Map(strom.FromSource(env, strom.SliceSource(data), "records"), func(r winIn) winIn {
		if read.Add(1)%4 == 0 {
			time.Sleep(time.Millisecond)
		}
		return r
	})
	timed := strom.AssignTimestamps(src, strom.Monotonous[winIn]().WithTimestamps(func(r winIn) int64 { return r.Ts }))
	counts := strom.WindowReduce(strom.Window(strom.KeyBy(strom.Map(timed, func(r winIn) winSum { return winSum{Key: r.Key, N: 1, Sum: r.V} }),
		func(w winSum) int64 { return w.Key }), window.Tumbling(time.Hour)),
		func(a, b winSum) winSum { return winSum{Key: a.Key, N: a.N + b.N, Sum: a.Sum + b.Sum} })
	out := strom.Collect(counts)
	jc, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	defer jc.Close()
	require.Eventually(t, func() bool { return read.Load() > 500 }, 30*time.Second, time.Millisecond)
	path, err := jc.StopWithSavepoint(context.Background(), "file://"+t.TempDir(), true)
	require.NoError(t, err)
	_, err = jc.Wait(context.Background())
	require.NoError(t, err)
	var total int64
	for _, w := range out.Values() {
		total += w.N
	}
	require.Positive(t, total, "the hour-long windows fired at the drain")
	require.Less(t, total, int64(len(data)), "stopped mid-run")
	require.Equal(t, read.Load(), total, "every record read is in a fired window")
	md, _, err := checkpoint.LoadSavepoint(context.Background(), path)
	require.NoError(t, err)
	require.Equal(t, checkpoint.KindSavepoint, md.Kind)
}
