package strom_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/internal/blob"
	inject "github.com/strom-dev/strom/internal/chaos"
	"github.com/strom-dev/strom/state"
)

// firstOfAttempt records when the sink first saw a record of each attempt.
type firstOfAttempt struct {
	mu    sync.Mutex
	first map[int]time.Time
	seen  chan int // attempt numbers, once each
}

func (f *firstOfAttempt) writer(sc strom.SinkContext) (strom.SinkWriter[int64], error) {
	return &attemptWriter{f: f, attempt: sc.Attempt}, nil
}

type attemptWriter struct {
	f       *firstOfAttempt
	attempt int
	done    bool
}

func (w *attemptWriter) Write(int64, int64) error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if _, ok := w.f.first[w.attempt]; !ok {
		w.f.first[w.attempt] = time.Now()
		select {
		case w.f.seen <- w.attempt:
		default:
		}
	}
	return nil
}

func (w *attemptWriter) Flush() error { return nil }
func (w *attemptWriter) Close() error { return nil }

// runningCount is a keyed running count, so a restore has keyed state to
// load.
type runningCount struct{ n state.ValueState[int64] }

func (f *runningCount) Open(ctx *strom.KeyedContext[int64, int64]) (err error) {
	f.n, err = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "n"})
	return err
}

func (f *runningCount) ProcessElement(ctx *strom.KeyedContext[int64, int64], v int64) error {
	n, _ := f.n.Value()
	f.n.Update(n + 1)
	ctx.Collect(n + 1)
	return nil
}

// recoveryCase is one configuration of BenchmarkRecoveryTime.
type recoveryCase struct {
	delay time.Duration // fixed restart delay
	keys  int64         // keys of the running counts
	rate  float64       // records per second
	// minCheckpoint is the checkpoint id that must be retained before the
	// failure: 1, or more to let the keyed state grow first.
	minCheckpoint int64
}

// measureRecovery runs an unbounded, rate-limited keyed job (running
// counts) at parallelism 2 with checkpoints every 100 ms and a fixed
// restart delay, fails one task chosen from seed (a panic on its
// goroutine, internal/chaos) once output flows and checkpoint
// minCheckpoint (or a later one) is retained, and returns the time from the failure to the first record
// of the restarted attempt at the sink: detection, cancelling the failed
// attempt, the restart delay, loading the checkpoint, deploying, restoring
// state and source positions, and the first records through the pipeline.
func measureRecovery(tb testing.TB, seed uint64, c recoveryCase) time.Duration {
	url := fmt.Sprintf("mem://recovery-%d-%d", seed, time.Now().UnixNano())
	store, err := blob.Open(context.Background(), url)
	require.NoError(tb, err)
	defer store.Close()
	env := strom.NewEnvironment(strom.Config{
		Parallelism: 2, Logger: slog.New(slog.DiscardHandler),
		CheckpointInterval: 100 * time.Millisecond, CheckpointDir: url,
		RestartStrategy: strom.FixedDelayRestart(1, c.delay),
	})
	src := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.RatePerSecond(c.rate))
	counted := strom.KeyedProcess(strom.KeyBy(src, func(v int64) int64 { return v % c.keys }),
		func() strom.KeyedProcessFunction[int64, int64, int64] { return &runningCount{} })
	seen := &firstOfAttempt{first: map[int]time.Time{}, seen: make(chan int, 4)}
	strom.SinkTo(counted, "first of attempt", seen.writer)

	inj := inject.NewInjector(seed, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jc, err := env.ExecuteAsync(inject.WithTaskHook(ctx, inj.Hook), "recovery time")
	require.NoError(tb, err)
	defer jc.Close()
	// Output flows and a checkpoint is retained: the failure restores it.
	require.Equal(tb, 0, <-seen.seen)
	for {
		if _, id, _ := latestRetained(nil, store); id >= c.minCheckpoint {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, ok := inj.FailOne()
	require.True(tb, ok, "a task to fail")
	failed := time.Now()
	select {
	case a := <-seen.seen:
		require.Equal(tb, 1, a)
	case <-ctx.Done():
		tb.Fatalf("no output from the restarted attempt: %v", ctx.Err())
	}
	seen.mu.Lock()
	d := seen.first[1].Sub(failed)
	seen.mu.Unlock()
	jc.Cancel()
	_, _ = jc.Wait(context.Background())
	return d
}

// BenchmarkRecoveryTime measures, per iteration, the time from an injected
// failure to output flowing again (see measureRecovery) and reports the
// median and the largest over the iterations: with the 10 ms restart delay
// of strom nexmark --fail-every (nexmark.FailRestartDelay), with none (the
// framework's own cost), and with up to 100 000 keys' state to restore
// (record i counts key i mod 100 000; 1.5 s at 100 000 records/s before
// the failure).
// BENCHMARKS.md has figures:
//
//	go test -run '^$' -bench BenchmarkRecoveryTime -benchtime 10x -count 5 .
func BenchmarkRecoveryTime(b *testing.B) {
	for _, c := range []recoveryCase{
		{delay: 10 * time.Millisecond, keys: 1000, rate: 50_000, minCheckpoint: 1},
		{delay: 0, keys: 1000, rate: 50_000, minCheckpoint: 1},
		{delay: 10 * time.Millisecond, keys: 100_000, rate: 100_000, minCheckpoint: 15},
	} {
		b.Run(fmt.Sprintf("delay=%v/keys=%d/checkpoint=%d", c.delay, c.keys, c.minCheckpoint), func(b *testing.B) {
			var ds []time.Duration
			for i := 0; b.Loop(); i++ {
				ds = append(ds, measureRecovery(b, uint64(i+1), c))
			}
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2])/float64(time.Millisecond), "median-recovery-ms")
			b.ReportMetric(float64(ds[len(ds)-1])/float64(time.Millisecond), "max-recovery-ms")
		})
	}
}
