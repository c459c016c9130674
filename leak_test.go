package strom_test

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

// cancelAfter runs the job with a context cancelled once the job has run
// for a while, and checks that Execute returns ErrJobCanceled and that
// nothing of the job is left running. (How promptly is measured by counting
// calls of slow user code in cancel_latency_test.go, not by the clock.)
func cancelAfter(t *testing.T, env *strom.Environment, name string, running func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res *strom.JobResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := env.Execute(ctx, name)
		done <- result{res, err}
	}()
	require.Eventually(t, running, 30*time.Second, time.Millisecond, "job %q never got going", name)
	cancel()
	select {
	case r := <-done:
		require.ErrorIs(t, r.err, strom.ErrJobCanceled)
		require.ErrorIs(t, r.err, context.Canceled, "the context's error is kept")
		require.NotErrorIs(t, r.err, strom.ErrJobFailed)
		require.NotNil(t, r.res)
	case <-time.After(30 * time.Second):
		t.Fatalf("job %q did not stop after cancel", name)
	}
	goleak.VerifyNone(t)
}

func TestCancelUnboundedJob(t *testing.T) {
	for _, p := range []int{1, 4} {
		env := newEnv(p)
		gen := datagen.FromGenerator(env, func(i int64) int64 { return i })
		keyed := strom.KeyBy(strom.Map(gen, func(v int64) int64 { return v * 3 }), func(v int64) int64 { return v % 100 })
		sink := &liveSink[int64]{}
		strom.SinkFunc(strom.Reduce(keyed, func(a, b int64) int64 { return a + b }), func(v int64) error {
			if len(sink.values()) < 10 {
				return sink.add(v)
			}
			return nil
		})
		cancelAfter(t, env, "unbounded", func() bool { return len(sink.values()) >= 10 })
	}
}

// A job whose tasks are all blocked on full output channels stops on
// cancel: no task may wait for a credit forever.
func TestCancelBackpressuredJob(t *testing.T) {
	env := newEnv(2, func(c *strom.Config) { c.BuffersPerChannel = 1; c.BatchSize = 4; c.DisableChaining = true })
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i })
	started := make(chan struct{})
	var once bool
	strom.SinkFunc(strom.Rebalance(strom.Map(gen, func(v int64) int64 { return v })), func(int64) error {
		if !once {
			once = true
			close(started)
		}
		time.Sleep(100 * time.Microsecond)
		return nil
	}).Parallelism(1)
	cancelAfter(t, env, "backpressured", func() bool {
		select {
		case <-started:
			return true
		default:
			return false
		}
	})
}

// Cancelling a job reading an endless iterator stops the iterator's
// goroutine too.
func TestCancelIteratorSource(t *testing.T) {
	var stopped = make(chan struct{})
	seq := iter.Seq[int](func(yield func(int) bool) {
		defer close(stopped)
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	})
	env := newEnv(1)
	sink := &liveSink[int]{}
	strom.SinkFunc(strom.FromIterator(env, seq), func(v int) error {
		if v < 5 {
			return sink.add(v)
		}
		return nil
	})
	cancelAfter(t, env, "iterator", func() bool { return len(sink.values()) == 5 })
	select {
	case <-stopped:
	default:
		t.Fatal("the iterator was not stopped")
	}
}

// A failing job tears down every task, also those far from the failure.
func TestFailedJobLeavesNoGoroutines(t *testing.T) {
	env := newEnv(4)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i })
	keyed := strom.KeyBy(gen, func(v int64) int64 { return v % 16 })
	strom.Discard(strom.KeyedProcessFunc(keyed, func(ctx *strom.KeyedContext[int64, int64], v int64) error {
		if v == 50000 {
			return errors.New("fatal record")
		}
		ctx.Collect(v)
		return nil
	}))
	_, err := run(t, env, "failing")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "fatal record")
	goleak.VerifyNone(t)
}

// Closing a client of a running job cancels it and stops the cluster.
func TestJobClientCloseStopsRunningJob(t *testing.T) {
	env := newEnv(2)
	strom.Discard(datagen.FromGenerator(env, func(i int64) int64 { return i }))
	jc, err := env.ExecuteAsync(context.Background(), "closed")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return jc.Status() == "RUNNING" }, 10*time.Second, time.Millisecond)
	jc.Close()
	require.Equal(t, "CANCELED", jc.Status())
	goleak.VerifyNone(t)
}

// A context that ends before the job does is reported as cancellation,
// with the context's error.
func TestDeadlineCancelsJob(t *testing.T) {
	env := newEnv(1)
	strom.Discard(datagen.FromGenerator(env, func(i int64) int64 { return i }))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := env.Execute(ctx, "deadline")
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	goleak.VerifyNone(t)
}
