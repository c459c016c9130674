package strom_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/window"
)

// Cancellation and failure take effect within about one call of slow user
// code, at any batch size: the tests count the calls of a slow function
// that start after the job was told to stop (no timing is asserted).

// slowCall is how long each call of the slow user function takes.
const slowCall = 5 * time.Millisecond

// maxLate is how many calls may start after the stop: the stop travels
// from the client through the JobMaster and the TaskManager to the task
// while the call in flight ends (one), plus slack for a loaded machine.
const maxLate = 2

// slowCalls counts the calls of a slow user function and those that start
// after stop.
type slowCalls struct {
	started, late atomic.Int64
	stopped       atomic.Bool
}

func (s *slowCalls) call() {
	if s.stopped.Load() {
		s.late.Add(1)
	}
	s.started.Add(1)
	time.Sleep(slowCall)
}

func (s *slowCalls) stop() { s.stopped.Store(true) }

func (s *slowCalls) waitStarted(t *testing.T, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return s.started.Load() >= n }, 30*time.Second, time.Millisecond, "the slow function never ran")
}

func (s *slowCalls) requireStoppedPromptly(t *testing.T) {
	t.Helper()
	t.Logf("%d of %d calls started after the stop", s.late.Load(), s.started.Load())
	require.LessOrEqual(t, s.late.Load(), int64(maxLate), "calls started after the stop (of %d in all)", s.started.Load())
}

// bigBatches: with 4096 records per batch, a batch of slow records takes
// 20 s, so stopping between batches is not enough.
func bigBatches(c *strom.Config) { c.BatchSize = 4096 }

// cancelWhileSlow starts the job, waits until the slow function has run a
// few times, cancels and checks the job stops within a call or two.
func cancelWhileSlow(t *testing.T, env *strom.Environment, calls *slowCalls) {
	t.Helper()
	jc, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	defer jc.Close()
	calls.waitStarted(t, 3)
	jc.Cancel()
	calls.stop()
	_, err = jc.Wait(context.Background())
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.NotErrorIs(t, err, strom.ErrJobFailed)
	require.Equal(t, "CANCELED", jc.Status())
	calls.requireStoppedPromptly(t)
	jc.Close()
	goleak.VerifyNone(t)
}

func TestCancelStopsSlowUserCodeWithinARecord(t *testing.T) {
	const n = 400 // records: 2 s of slow calls, all of them in one batch
	for _, tc := range []struct {
		name  string
		build func(env *strom.Environment, calls *slowCalls)
	}{
		{"sink chained to the source", func(env *strom.Environment, calls *slowCalls) {
			gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(n))
			strom.SinkFunc(gen, func(int64) error { calls.call(); return nil })
		}},
		{"sink behind a shuffle", func(env *strom.Environment, calls *slowCalls) {
			gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(n))
			strom.SinkFunc(strom.Rebalance(gen), func(int64) error { calls.call(); return nil })
		}},
		{"keyed sink behind a shuffle", func(env *strom.Environment, calls *slowCalls) {
			gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(n))
			strom.Discard(strom.KeyedProcessFunc(strom.KeyBy(gen, func(v int64) int64 { return v % 7 }),
				func(ctx *strom.KeyedContext[int64, int64], v int64) error { calls.call(); ctx.Collect(v); return nil }))
		}},
		{"flatmap fan-out into a slow sink", func(env *strom.Environment, calls *slowCalls) {
			one := strom.FromElements(env, 1)
			many := strom.FlatMap(one, func(_ int, out strom.Collector[int]) {
				for i := range n {
					out.Collect(i)
				}
			})
			strom.SinkFunc(many, func(int) error { calls.call(); return nil })
		}},
		{"slow source", func(env *strom.Environment, calls *slowCalls) {
			gen := datagen.FromGenerator(env, func(i int64) int64 { calls.call(); return i }, datagen.Count(n))
			strom.Discard(gen)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(1, bigBatches)
			calls := &slowCalls{}
			tc.build(env, calls)
			cancelWhileSlow(t, env, calls)
		})
	}
}

// A context given to Execute that expires while slow user code runs stops
// the job as promptly as Cancel.
func TestExpiredContextStopsSlowSinkWithinARecord(t *testing.T) {
	env := newEnv(1, bigBatches)
	calls := &slowCalls{}
	// 2000 calls of 5 ms: the job would run 10 s; the deadline falls while
	// the slow sink is busy.
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(2000))
	strom.SinkFunc(strom.Rebalance(gen), func(int64) error { calls.call(); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	stop := context.AfterFunc(ctx, calls.stop)
	defer stop()
	_, err := env.Execute(ctx, t.Name())
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, calls.started.Load()-calls.late.Load(), int64(3), "the slow sink ran before the deadline")
	calls.requireStoppedPromptly(t)
	goleak.VerifyNone(t)
}

// The failure of one task stops a slow task elsewhere in the job within a
// call, and the job reports the failing operator's error, not a
// cancellation.
func TestFailureElsewhereStopsSlowSinkWithinARecord(t *testing.T) {
	errBoom := errors.New("boom")
	env := newEnv(1, bigBatches)
	calls := &slowCalls{}
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(400))
	strom.SinkFunc(strom.Rebalance(gen), func(int64) error { calls.call(); return nil }).Name("Slow")
	strom.SinkFunc(strom.Rebalance(gen), func(v int64) error {
		if v != 0 {
			return nil
		}
		// Fail once the slow sink is busy.
		deadline := time.Now().Add(30 * time.Second)
		for calls.started.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		calls.stop()
		return errBoom
	}).Name("Failing")
	_, err := run(t, env, "failing")
	requireTaskFailure(t, err, "failing", "Failing")
	require.ErrorIs(t, err, errBoom)
	require.GreaterOrEqual(t, calls.started.Load(), int64(3))
	calls.requireStoppedPromptly(t)
	goleak.VerifyNone(t)
}

// A watermark that fires thousands of windows whose function is slow:
// cancellation stops the firings within one.
func TestCancelStopsWindowFiringStorm(t *testing.T) {
	env := newEnv(1, bigBatches)
	calls := &slowCalls{}
	gen := datagen.FromGenerator(env, func(i int64) tev { return tev{Key: strconv.FormatInt(i, 10), TS: i % 10, V: 1} }, datagen.Count(400))
	stamped := strom.AssignTimestamps(gen, strom.BoundedOutOfOrderness[tev](0).WithTimestamps(func(e tev) int64 { return e.TS }))
	// One window per key, all fired by the final watermark.
	strom.Discard(strom.WindowProcess(strom.Window(keyedEvs(stamped), window.Tumbling(time.Second)),
		func(ctx *strom.WindowContext[string, winRes], es []tev) error {
			calls.call()
			ctx.Collect(winRes{Key: ctx.Key()})
			return nil
		}))
	cancelWhileSlow(t, env, calls)
}

// slowTimers registers a timer for every key and handles each slowly.
type slowTimers struct {
	calls      *slowCalls
	processing bool
}

func (f slowTimers) ProcessElement(ctx *strom.KeyedContext[int64, int64], v int64) error {
	if f.processing {
		ctx.RegisterProcessingTimeTimer(ctx.CurrentProcessingTime())
	} else {
		ctx.RegisterEventTimeTimer(1)
	}
	return nil
}

func (f slowTimers) OnTimer(ctx *strom.KeyedContext[int64, int64], ts int64) error {
	f.calls.call()
	ctx.Collect(ts)
	return nil
}

// A storm of keyed timers whose OnTimer is slow — event time (all fired by
// one watermark) or processing time (all due at once) — stops within one.
func TestCancelStopsKeyedTimerStorm(t *testing.T) {
	for _, processing := range []bool{false, true} {
		t.Run(map[bool]string{false: "event time", true: "processing time"}[processing], func(t *testing.T) {
			env := newEnv(1, bigBatches)
			calls := &slowCalls{}
			opts := []datagen.GeneratorOption{datagen.Count(400)}
			if processing {
				opts = nil // unbounded: processing timers fire while it runs
			}
			gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, opts...)
			stamped := strom.AssignTimestamps(gen, strom.BoundedOutOfOrderness[int64](0).WithTimestamps(func(int64) int64 { return 0 }))
			strom.Discard(strom.KeyedProcess(strom.KeyBy(stamped, func(v int64) int64 { return v }),
				func() strom.KeyedProcessFunction[int64, int64, int64] {
					return slowTimers{calls: calls, processing: processing}
				}))
			cancelWhileSlow(t, env, calls)
		})
	}
}

// A ProcessFunction's processing-time callbacks, many due at once and each
// slow, stop within one.
func TestCancelStopsProcessingTimerStorm(t *testing.T) {
	env := newEnv(1, bigBatches)
	calls := &slowCalls{}
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }) // unbounded
	strom.Discard(strom.Process(gen, func() strom.ProcessFunction[int64, int64] {
		return strom.ProcessElementFunc[int64, int64](func(ctx *strom.ProcessContext[int64], v int64) error {
			ctx.RegisterProcessingTimer(ctx.CurrentProcessingTime(), func(*strom.ProcessContext[int64], int64) error {
				calls.call()
				return nil
			})
			return nil
		})
	}))
	cancelWhileSlow(t, env, calls)
}
