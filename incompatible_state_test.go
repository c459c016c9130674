package strom_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

// typedCountFn keeps a per-key ValueState named "count" of type V.
type typedCountFn[V any] struct {
	s    state.ValueState[V]
	next func(V) V
}

func (f *typedCountFn[V]) Open(ctx *strom.KeyedContext[int64, int64]) error {
	var err error
	f.s, err = state.GetValue(ctx, state.ValueDescriptor[V]{Name: "count"})
	return err
}

func (f *typedCountFn[V]) ProcessElement(ctx *strom.KeyedContext[int64, int64], v int64) error {
	cur, _ := f.s.Value()
	f.s.Update(f.next(cur))
	ctx.Collect(v)
	return nil
}

func typedCountJob[V any](t *testing.T, cfg strom.Config, next func(V) V) (*strom.JobClient, *atomic.Int64) {
	t.Helper()
	data := make([]int64, 20000)
	for i := range data {
		data[i] = int64(i % 16)
	}
	env := strom.NewEnvironment(cfg)
	var seen atomic.Int64
	src := strom.Map(strom.FromSource(env, strom.SliceSource(data), "numbers").UID("numbers"), func(v int64) int64 {
		if seen.Add(1)%8 == 0 {
			time.Sleep(time.Millisecond)
		}
		return v
	}).UID("slow")
	out := strom.KeyedProcess(strom.KeyBy(src, func(v int64) int64 { return v }),
		func() strom.KeyedProcessFunction[int64, int64, int64] { return &typedCountFn[V]{next: next} }).UID("count")
	strom.SinkFunc(out, func(int64) error { return nil }).UID("sink")
	jc, err := env.ExecuteAsync(context.Background(), t.Name())
	require.NoError(t, err)
	t.Cleanup(jc.Close)
	return jc, &seen
}

// A job resumed from a savepoint whose state has another type than the
// job's (ValueState[int64] saved, ValueState[string] registered) fails
// at once with a clear error — it does not restart into the same failure
// over and over under its (unlimited, by default) restart strategy.
func TestResumeWithIncompatibleStateFailsWithoutRestarting(t *testing.T) {
	url, _ := memStore(t)
	jc, seen := typedCountJob(t, ckConfig(url), func(n int64) int64 { return n + 1 })
	require.Eventually(t, func() bool { return seen.Load() > 500 }, 30*time.Second, time.Millisecond)
	path, err := jc.TriggerSavepoint(context.Background(), "file://"+t.TempDir())
	require.NoError(t, err)
	jc.Cancel()
	_, _ = jc.Wait(context.Background())

	cfg := strom.Config{Parallelism: 2, CheckpointInterval: time.Second, CheckpointDir: url, FromSavepoint: path}
	jc2, _ := typedCountJob(t, cfg, func(s string) string { return s + "x" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := jc2.Wait(ctx)
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorIs(t, err, statebackend.ErrIncompatibleState)
	require.Contains(t, err.Error(), "count")
	require.Zero(t, res.Restarts, "no restart: it could only fail again")
}
