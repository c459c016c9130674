package minicluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
	"github.com/strom-dev/strom/internal/streamgraph"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSource emits 0..n-1 per subtask (n < 0: waits forever), panicking at
// panicAt when it is not negative.
type testSource struct {
	out     runtime.Output[int]
	n, next int
	panicAt int
}

func (s *testSource) Open(*runtime.Context) error { return nil }
func (s *testSource) Finish() error               { return nil }
func (s *testSource) Close() error                { return nil }
func (s *testSource) EndInput()                   { s.out.EmitWatermark(runtime.MaxWatermark) }

func (s *testSource) Step() runtime.SourceStep {
	if s.n < 0 {
		return runtime.SourceStep{Status: runtime.NothingAvailable} // until cancelled
	}
	for range 64 {
		if s.next >= s.n {
			return runtime.SourceStep{Status: runtime.EndOfInput}
		}
		if s.next == s.panicAt {
			panic(fmt.Sprintf("source failed at %d", s.next))
		}
		s.out.Collect(s.next, runtime.NoTimestamp)
		s.next++
	}
	return runtime.SourceStep{Status: runtime.More}
}

// sum is a sink that adds what it gets to a shared total.
type sum struct{ total *atomic.Int64 }

func (s sum) Open(*runtime.Context) error { return nil }
func (s sum) Finish() error               { return nil }
func (s sum) Close() error                { return nil }
func (s sum) ProcessElement(v int, _ int64) {
	s.total.Add(int64(v))
}
func (s sum) ProcessWatermark(int64) {}
func (s sum) ProcessIdle()           {}

type jobSpec struct {
	name        string
	parallelism int
	n           int // records per source subtask; < 0: unbounded
	panicAt     int
	chain       bool
}

// newJob builds source → sink (chained, or over a rebalance edge).
func newJob(t *testing.T, spec jobSpec, total *atomic.Int64) *Job {
	t.Helper()
	g := &streamgraph.StreamGraph{}
	src := g.AddNode(&streamgraph.Node{Kind: "source", Name: "Source", Parallelism: spec.parallelism, Out: runtime.Ops[int]{},
		Build: func(_ *runtime.Context, out any) (runtime.Operator, error) {
			return &testSource{out: out.(runtime.Output[int]), n: spec.n, panicAt: spec.panicAt}, nil
		}})
	sink := g.AddNode(&streamgraph.Node{Kind: "sink", Name: "Sum", Parallelism: spec.parallelism, NumInputs: 1, Out: runtime.Ops[struct{}]{},
		Build: func(*runtime.Context, any) (runtime.Operator, error) { return sum{total}, nil },
		Input: func(ch [][]any, head runtime.Operator, name string) (runtime.InputProcessor, *runtime.Counter) {
			return runtime.Ops[int]{}.NewOneInputProcessor(ch[0], head, name)
		}})
	part := runtime.Rebalance
	if spec.chain {
		part = runtime.Forward
	}
	g.Connect(&streamgraph.Edge{From: src.ID, To: sink.ID, Partition: part, Type: runtime.Ops[int]{}})
	jg, err := streamgraph.BuildJobGraph(g, streamgraph.Options{JobName: spec.name, DefaultParallelism: 1, MaxParallelism: 128})
	require.NoError(t, err)
	return &Job{Name: spec.name, Graph: g, JobGraph: jg, Config: JobConfig{Logger: slog.New(slog.DiscardHandler), BatchSize: 16}}
}

func wait(t *testing.T, h *JobHandle) JobResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := h.Wait(ctx)
	require.NoError(t, err, "job did not end in time")
	return r
}

func gauss(n int) int64 { return int64(n) * int64(n-1) / 2 }

func TestMiniClusterRunsJob(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 2, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	require.Equal(t, 4, mc.NumSlots())

	for _, chain := range []bool{true, false} {
		var total atomic.Int64
		h, err := mc.Submit(newJob(t, jobSpec{name: "sum", parallelism: 3, n: 1000, panicAt: -1, chain: chain}, &total))
		require.NoError(t, err)
		require.Len(t, h.ID(), 32)
		r := wait(t, h)
		require.Equal(t, scheduler.JobFinished, r.State)
		require.NoError(t, r.Err)
		require.Equal(t, 3*gauss(1000), total.Load())
		require.Equal(t, "sum", r.JobName)
		require.Equal(t, h.ID(), r.JobID)
		require.Len(t, r.Operators, 2)
		require.Equal(t, OperatorTotals{Node: 0, Name: "Source", UID: r.Operators[0].UID, Parallelism: 3, RecordsOut: 3000, BackpressureWaits: r.Operators[0].BackpressureWaits}, r.Operators[0])
		require.Equal(t, int64(3000), r.Operators[1].RecordsIn)

		st, execs := h.Status()
		require.Equal(t, scheduler.JobFinished, st)
		wantExecs := 6
		if chain {
			wantExecs = 3
		}
		require.Len(t, execs, wantExecs)
		for _, e := range execs {
			require.Equal(t, scheduler.Finished, e.State, "%v", e.ID)
			require.NotEmpty(t, e.Slot.TaskManager)
		}
		select {
		case <-h.Done():
		default:
			t.Fatal("Done not closed")
		}
		require.Eventually(t, func() bool { return mc.Registry().Len() == 0 }, 5*time.Second, time.Millisecond, "a finished job releases its channels")
	}
}

func TestJobNeedingMoreSlotsThanTheClusterFails(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	h, err := mc.Submit(newJob(t, jobSpec{name: "wide", parallelism: 3, n: 10, panicAt: -1}, &total))
	require.NoError(t, err)
	r := wait(t, h)
	require.Equal(t, scheduler.JobFailed, r.State)
	require.ErrorContains(t, r.Err, "could not allocate slots: job needs 3 slots but the cluster has 2 (1 TaskManagers)")
	require.Zero(t, total.Load())
}

func TestTaskFailureFailsJobAndCancelsOthers(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	// Both source subtasks panic at their 500th record; the sink subtasks,
	// which never see the end of their input, must be cancelled.
	h, err := mc.Submit(newJob(t, jobSpec{name: "failing", parallelism: 2, n: 100000, panicAt: 500}, &total))
	require.NoError(t, err)
	r := wait(t, h)
	require.Equal(t, scheduler.JobFailed, r.State)
	var te *runtime.TaskError
	require.ErrorAs(t, r.Err, &te)
	require.Equal(t, "Source", te.Operator)
	require.ErrorContains(t, r.Err, `job "failing": operator "Source" (subtask`)
	require.ErrorContains(t, r.Err, "panic: source failed at 500")
	_, execs := h.Status()
	failed := 0
	for _, e := range execs {
		require.True(t, e.State.Terminal(), "%v is %v", e.ID, e.State)
		if e.State == scheduler.Failed {
			failed++
		}
		if e.ID.Vertex == 1 {
			require.Equal(t, scheduler.Canceled, e.State, "sink %v", e.ID)
		}
	}
	require.GreaterOrEqual(t, failed, 1)
}

func TestJobHandleStatesAndCancel(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	h, err := mc.Submit(newJob(t, jobSpec{name: "forever", parallelism: 2, n: -1, panicAt: -1}, &total))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, execs := h.Status()
		if st != scheduler.JobRunning {
			return false
		}
		for _, e := range execs {
			if e.State != scheduler.Running {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond)

	same, err := mc.Job(h.ID())
	require.NoError(t, err)
	require.Equal(t, h.ID(), same.ID())
	_, err = mc.Job("nope")
	require.ErrorIs(t, err, ErrUnknownJob)

	job2 := newJob(t, jobSpec{name: "dup", parallelism: 1, n: 1, panicAt: -1}, &total)
	job2.ID = h.ID()
	_, err = mc.Submit(job2)
	require.ErrorContains(t, err, "already submitted")

	h.Cancel()
	r := wait(t, h)
	require.Equal(t, scheduler.JobCanceled, r.State)
	require.NoError(t, r.Err)
	st, execs := h.Status()
	require.Equal(t, scheduler.JobCanceled, st)
	for _, e := range execs {
		require.Equal(t, scheduler.Canceled, e.State)
	}
	h.Cancel() // after the end: returns, does nothing
}

func TestTwoJobsShareTheCluster(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 2, SlotsPerManager: 1})
	require.NoError(t, err)
	defer mc.Close()

	// Two one-slot jobs run side by side.
	var t1, t2 atomic.Int64
	h1, err := mc.Submit(newJob(t, jobSpec{name: "a", parallelism: 1, n: -1, panicAt: -1}, &t1))
	require.NoError(t, err)
	h2, err := mc.Submit(newJob(t, jobSpec{name: "b", parallelism: 1, n: 5000, panicAt: -1}, &t2))
	require.NoError(t, err)
	r2 := wait(t, h2)
	require.Equal(t, scheduler.JobFinished, r2.State)
	require.Equal(t, gauss(5000), t2.Load())

	// A two-slot job waits for a's slot: its tasks stay SCHEDULED.
	var t3 atomic.Int64
	h3, err := mc.Submit(newJob(t, jobSpec{name: "c", parallelism: 2, n: 100, panicAt: -1}, &t3))
	require.NoError(t, err)
	st, execs := h3.Status()
	require.Equal(t, scheduler.JobCreated, st)
	require.Len(t, execs, 4, "the execution graph exists from submission")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		st, execs = h3.Status()
		if st == scheduler.JobCreated && len(execs) == 4 && execs[0].State == scheduler.Scheduled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c is not waiting for slots: job %v, executions %+v", st, execs)
		}
	}
	time.Sleep(20 * time.Millisecond)
	st, _ = h3.Status()
	require.Equal(t, scheduler.JobCreated, st, "c cannot run while a holds a slot")

	// Cancelling a frees its slot; c gets both and finishes.
	h1.Cancel()
	require.Equal(t, scheduler.JobCanceled, wait(t, h1).State)
	r3 := wait(t, h3)
	require.Equal(t, scheduler.JobFinished, r3.State)
	require.Equal(t, 2*gauss(100), t3.Load())
	slots := map[scheduler.SlotID]bool{}
	_, execs = h3.Status()
	for _, e := range execs {
		slots[e.Slot] = true
	}
	require.Len(t, slots, 2, "one subtask per slot")
}

// Cancelling a job that waits in the ResourceManager's queue must not wait
// for another job to free the slots.
func TestCancelJobWaitingForSlots(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 1})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	hog, err := mc.Submit(newJob(t, jobSpec{name: "hog", parallelism: 1, n: -1, panicAt: -1}, &total))
	require.NoError(t, err)
	require.Eventually(t, func() bool { st, _ := hog.Status(); return st == scheduler.JobRunning }, 5*time.Second, time.Millisecond)
	waiting, err := mc.Submit(newJob(t, jobSpec{name: "waiting", parallelism: 1, n: 10, panicAt: -1}, &total))
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	waiting.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := waiting.Wait(ctx)
	require.NoError(t, err, "a queued job did not cancel")
	require.Equal(t, scheduler.JobCanceled, r.State)
	require.NoError(t, r.Err)
	_, execs := waiting.Status()
	require.Equal(t, scheduler.Canceled, execs[0].State)
	require.Zero(t, total.Load())

	// The withdrawn request did not take the slot: the next job gets it.
	hog.Cancel()
	require.Equal(t, scheduler.JobCanceled, wait(t, hog).State)
	next, err := mc.Submit(newJob(t, jobSpec{name: "next", parallelism: 1, n: 10, panicAt: -1}, &total))
	require.NoError(t, err)
	require.Equal(t, scheduler.JobFinished, wait(t, next).State)
	require.Equal(t, gauss(10), total.Load())
}

func TestCloseStopsEverything(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 2, SlotsPerManager: 2})
	require.NoError(t, err)
	var total atomic.Int64
	var handles []*JobHandle
	for i := range 2 {
		h, err := mc.Submit(newJob(t, jobSpec{name: fmt.Sprint("forever-", i), parallelism: 2, n: -1, panicAt: -1}, &total))
		require.NoError(t, err)
		handles = append(handles, h)
	}
	for _, h := range handles {
		require.Eventually(t, func() bool { st, _ := h.Status(); return st == scheduler.JobRunning }, 5*time.Second, time.Millisecond)
	}
	// A third job waits for slots when the cluster closes.
	queued, err := mc.Submit(newJob(t, jobSpec{name: "queued", parallelism: 4, n: 1, panicAt: -1}, &total))
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	mc.Close()
	for _, h := range append(handles, queued) {
		r := wait(t, h)
		require.Equal(t, scheduler.JobCanceled, r.State, "%s: %v", r.JobName, r.Err)
		require.ErrorContains(t, r.Err, "cluster shut down")
	}
	_, err = mc.Submit(newJob(t, jobSpec{name: "late", parallelism: 1, n: 1}, &total))
	require.ErrorContains(t, err, "cluster is shut down")
	goleak.VerifyNone(t)
}

func TestStartValidatesConfig(t *testing.T) {
	_, err := Start(Config{TaskManagers: 0, SlotsPerManager: 1})
	require.Error(t, err)
	_, err = Start(Config{TaskManagers: 1, SlotsPerManager: 0})
	require.ErrorContains(t, err, "at least one TaskManager with one slot")
}

func TestBuildFailureFailsJob(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 1})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	job := newJob(t, jobSpec{name: "broken", parallelism: 1, n: 1, panicAt: -1}, &total)
	job.Graph.Nodes[1].Build = func(*runtime.Context, any) (runtime.Operator, error) {
		return nil, errors.New("cannot connect")
	}
	h, err := mc.Submit(job)
	require.NoError(t, err)
	r := wait(t, h)
	require.Equal(t, scheduler.JobFailed, r.State)
	require.ErrorContains(t, r.Err, `operator "Sum"`)
	require.ErrorContains(t, r.Err, "build: cannot connect")
}

// gatedSource is a testSource whose Open waits for its gate.
type gatedSource struct {
	*testSource
	gate <-chan struct{}
}

func (s gatedSource) Open(*runtime.Context) error { <-s.gate; return nil }

// A task is RUNNING once its operators are open, not once it is built:
// while an Open takes its time the execution stays INITIALIZING.
func TestTaskRunsOnlyOnceOpened(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 1})
	require.NoError(t, err)
	defer mc.Close()
	var total atomic.Int64
	job := newJob(t, jobSpec{name: "slow-open", parallelism: 1, n: -1, panicAt: -1, chain: true}, &total)
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	build := job.Graph.Nodes[0].Build
	job.Graph.Nodes[0].Build = func(ctx *runtime.Context, out any) (runtime.Operator, error) {
		op, err := build(ctx, out)
		return gatedSource{op.(*testSource), gate}, err
	}
	h, err := mc.Submit(job)
	require.NoError(t, err)
	state := func() scheduler.ExecState { _, execs := h.Status(); return execs[0].State }
	require.Eventually(t, func() bool { return state() == scheduler.Initializing }, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, scheduler.Initializing, state(), "RUNNING before the source was opened")
	open()
	require.Eventually(t, func() bool { return state() == scheduler.Running }, 10*time.Second, time.Millisecond)
	h.Cancel()
	require.Equal(t, scheduler.JobCanceled, wait(t, h).State)
}

// restartJob is source → sink over a rebalance edge (so the restarted
// attempt has channels of its own) whose sources panic at record 500 in
// attempt 0 only. The sink sums per attempt: without checkpoints a restart
// replays the input, so only the last attempt's sum is the job's result.
type restartJob struct {
	panics  atomic.Int32    // sources of attempt 0 that panicked
	sources [3]atomic.Int32 // sources built, by attempt
	sums    [3]atomic.Int64 // sink totals, by attempt
}

func (rj *restartJob) job(t *testing.T, restart scheduler.RestartStrategy) *Job {
	var unused atomic.Int64
	job := newJob(t, jobSpec{name: "restart", parallelism: 2, n: 1000, panicAt: -1}, &unused)
	job.Config.Restart = restart
	job.Graph.Nodes[0].Build = func(ctx *runtime.Context, out any) (runtime.Operator, error) {
		attempt := min(ctx.Task.Attempt, len(rj.sources)-1)
		rj.sources[attempt].Add(1)
		src := &testSource{out: out.(runtime.Output[int]), n: 1000, panicAt: -1}
		if attempt == 0 {
			return panicOnce{src, &rj.panics}, nil
		}
		return src, nil
	}
	job.Graph.Nodes[1].Build = func(ctx *runtime.Context, _ any) (runtime.Operator, error) {
		return sum{&rj.sums[min(ctx.Task.Attempt, len(rj.sums)-1)]}, nil
	}
	return job
}

// panicOnce is a testSource that counts its panic at record 500.
type panicOnce struct {
	*testSource
	panics *atomic.Int32
}

func (p panicOnce) Step() runtime.SourceStep {
	if p.next >= 500 {
		p.panics.Add(1)
		panic("source failed in attempt 0")
	}
	return p.testSource.Step()
}

// With a fixed-delay strategy a job whose sources fail in their first
// attempt restarts once, into the slots it holds, and finishes with the
// second attempt's result.
func TestJobRestartsAfterTaskFailure(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	var rj restartJob
	h, err := mc.Submit(rj.job(t, scheduler.FixedDelayRestart(2, 10*time.Millisecond)))
	require.NoError(t, err)
	r := wait(t, h)
	require.Equal(t, scheduler.JobFinished, r.State)
	require.NoError(t, r.Err)
	require.Equal(t, 1, r.Restarts, "both sources failing counts as one restart")
	require.GreaterOrEqual(t, rj.panics.Load(), int32(1), "the first attempt failed")
	require.Equal(t, int32(2), rj.sources[1].Load(), "attempt 1 ran both sources")
	require.Zero(t, rj.sources[2].Load(), "no attempt 2")
	require.Equal(t, 2*gauss(1000), rj.sums[1].Load())
	require.Less(t, rj.sums[0].Load(), 2*gauss(1000), "attempt 0 did not get to the end")
	_, execs := h.Status()
	for _, e := range execs {
		require.Equal(t, 1, e.ID.Attempt, "%v", e.ID)
		require.Equal(t, scheduler.Finished, e.State, "%v", e.ID)
	}
	require.Eventually(t, func() bool { return mc.Registry().Len() == 0 }, 5*time.Second, time.Millisecond, "both attempts' channels are released")
}

// The same job under strategy none (the default) fails at the first
// failure: no second attempt.
func TestJobWithoutRestartStrategyFailsAtOnce(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 2})
	require.NoError(t, err)
	defer mc.Close()
	var rj restartJob
	h, err := mc.Submit(rj.job(t, scheduler.RestartStrategy{}))
	require.NoError(t, err)
	r := wait(t, h)
	require.Equal(t, scheduler.JobFailed, r.State)
	require.ErrorContains(t, r.Err, "panic: source failed in attempt 0")
	require.NotContains(t, r.Err.Error(), "restart strategy", "none leaves the cause alone")
	require.Zero(t, r.Restarts)
	require.GreaterOrEqual(t, rj.panics.Load(), int32(1))
	require.Zero(t, rj.sources[1].Load(), "no attempt 1")
}
