package strom_test

// Stop-with-savepoint on a real job in the embedded cluster, driven through
// the state seam as the JobMaster will drive it (runtime, barrier.go "Stop
// with savepoint"): the test triggers the savepoint at the source task,
// gathers every task's result and notifies them. The job has no
// checkpointing of its own, so nothing else triggers or notifies.

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/window"
)

// stopJob is chanSource → timestamps (ts = value, per-record watermarks)
// → keyBy(value % 2) → 10 ms tumbling window sums → a two-phase-commit
// sink and a plain one that sees every window result as it is emitted.
type stopJob struct {
	t      *testing.T
	ch     chan int
	store  *fakeStore
	client *strom.JobClient

	mu      sync.Mutex
	tasks   []*runtime.Task
	results map[int64]int // checkpoint id → tasks that reported it
	errs    []error
	live    []int
}

func startStopJob(t *testing.T) *stopJob {
	t.Helper()
	j := &stopJob{t: t, ch: make(chan int, 100), store: newFakeStore(), results: map[int64]int{}}
	env := strom.NewEnvironment().SetParallelism(1)
	src := strom.FromSource[int](env, chanSource{j.ch}, "chan")
	stamped := strom.AssignTimestamps(src, strom.BoundedOutOfOrderness[int](0).
		WithTimestamps(func(v int) int64 { return int64(v) }).EmitPerRecord())
	sums := strom.WindowReduce(strom.Window(strom.KeyBy(stamped, func(v int) int { return v % 2 }), window.Tumbling(10*time.Millisecond)),
		func(a, b int) int { return a + b })
	strom.SinkToCommitting(sums, "2pc",
		func(c strom.SinkContext) (strom.CommittingSinkWriter[int, fakeCommittable], error) {
			return &fakeWriter{job: "stop", subtask: c.Subtask}, nil
		},
		func(strom.SinkContext) (strom.Committer[fakeCommittable], error) { return j.store, nil }, nil)
	strom.SinkFunc(sums, func(v int) error {
		j.mu.Lock()
		j.live = append(j.live, v)
		j.mu.Unlock()
		return nil
	})
	strom.SetStateSeam(env, nil, func(task *runtime.Task) {
		task.OnCheckpoint = func(id int64, _ runtime.TaskSnapshot, err error) {
			j.mu.Lock()
			defer j.mu.Unlock()
			j.results[id]++
			if err != nil {
				j.errs = append(j.errs, err)
			}
		}
		j.mu.Lock()
		j.tasks = append(j.tasks, task)
		j.mu.Unlock()
	})
	c, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	j.client = c
	t.Cleanup(c.Close)
	return j
}

// tasks waits for the job's two tasks: the source's and the window's.
func (j *stopJob) sourceAndWindow() (src, win *runtime.Task) {
	j.t.Helper()
	require.Eventually(j.t, func() bool { j.mu.Lock(); defer j.mu.Unlock(); return len(j.tasks) == 2 }, 10*time.Second, time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, task := range j.tasks {
		if task.Input == nil {
			src = task
		} else {
			win = task
		}
	}
	require.NotNil(j.t, src)
	require.NotNil(j.t, win)
	return src, win
}

func (j *stopJob) liveResults() []int {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := slices.Clone(j.live)
	slices.Sort(out)
	return out
}

func (j *stopJob) waitLive(want []int) {
	j.t.Helper()
	require.Eventually(j.t, func() bool { return slices.Equal(j.liveResults(), want) }, 10*time.Second, time.Millisecond,
		"window results %v", j.liveResults())
}

// reported waits until every task reported checkpoint id, without error.
func (j *stopJob) reported(id int64) {
	j.t.Helper()
	require.Eventually(j.t, func() bool { j.mu.Lock(); defer j.mu.Unlock(); return j.results[id] == 2 }, 10*time.Second, time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Empty(j.t, j.errs)
}

func (j *stopJob) finished() {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := j.client.Wait(ctx)
	require.NoError(j.t, err)
}

// sums0to24 are the window results of the values 0..24 once the
// watermark (23) has passed the windows [0, 10) and [10, 20): per key
// (even, odd) and window.
var sums0to24 = sorted(0+2+4+6+8, 1+3+5+7+9, 10+12+14+16+18, 11+13+15+17+19)

func sorted(v ...int) []int { slices.Sort(v); return v }

var stopOpts = runtime.CheckpointOptions{ID: 1, Kind: network.Savepoint, Stop: true}

// Without drain: the window [20, 30), still open at the savepoint, never
// fires; the sink commits the savepoint's output on its notification,
// and the job finishes.
func TestJobStopWithSavepointWithoutDrain(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t)
	src, win := j.sourceAndWindow()
	send(j.ch, 0, 25)
	j.waitLive(sums0to24)

	require.NoError(t, src.TriggerCheckpoint(ctx, stopOpts))
	j.reported(1)
	send(j.ch, 25, 40) // after the savepoint: never read
	require.Empty(t, j.store.values(), "nothing committed before the savepoint's notification")
	require.NoError(t, src.NotifyCheckpointComplete(ctx, 1))
	require.NoError(t, win.NotifyCheckpointComplete(ctx, 1))
	j.finished()

	require.Equal(t, int64(1), src.StoppedAt())
	require.Equal(t, int64(1), win.StoppedAt())
	require.Equal(t, sums0to24, j.liveResults(), "no window result at the stop")
	require.Equal(t, sums0to24, j.store.values(), "the sink committed the savepoint's output")
	j.store.requireCommittedOnce(t)
}

// With drain: EndInput ends the source's input, the maximum watermark
// fires the open window, and the job ends as a bounded one does.
func TestJobStopWithSavepointDrain(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t)
	src, win := j.sourceAndWindow()
	send(j.ch, 0, 25)
	j.waitLive(sums0to24)
	require.NoError(t, src.EndInput(ctx))
	j.finished()
	want := sorted(append(slices.Clone(sums0to24), 20+22+24, 21+23)...)
	require.Equal(t, want, j.liveResults(), "the open window fired")
	require.Equal(t, want, j.store.values())
	require.Zero(t, src.StoppedAt())
	require.Zero(t, win.StoppedAt())
}

// An aborted stop-with-savepoint: the source reads on and the job
// finishes with every record.
func TestJobStopWithSavepointAborted(t *testing.T) {
	ctx := context.Background()
	j := startStopJob(t)
	src, win := j.sourceAndWindow()
	send(j.ch, 0, 25)
	j.waitLive(sums0to24)
	require.NoError(t, src.TriggerCheckpoint(ctx, stopOpts))
	j.reported(1)
	send(j.ch, 25, 40)
	require.NoError(t, src.AbortCheckpoint(ctx, 1))
	require.NoError(t, win.NotifyCheckpointAborted(ctx, 1))
	close(j.ch)
	j.finished()
	want := sorted(append(slices.Clone(sums0to24), 20+22+24+26+28, 21+23+25+27+29, 30+32+34+36+38, 31+33+35+37+39)...)
	require.Equal(t, want, j.liveResults(), "every record after the resume")
	require.Zero(t, src.StoppedAt())
	require.Zero(t, win.StoppedAt())
}
