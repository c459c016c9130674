package strom_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// stuckCloseWriter is a sink writer of the kind that hangs a restart: its
// Close blocks (a flush to a server that never answers, without a
// timeout) and ignores cancellation — in the first attempt only.
type stuckCloseWriter struct {
	ctx     strom.SinkContext
	sink    *lastCounts
	release <-chan struct{}
	stuck   *atomic.Int64
}

func (w *stuckCloseWriter) Write(kc keyCount, _ int64) error { return w.sink.put(kc) }
func (w *stuckCloseWriter) Flush() error                     { return nil }
func (w *stuckCloseWriter) Close() error {
	if w.ctx.Attempt == 0 && w.ctx.Context.Err() != nil {
		w.stuck.Add(1)
		<-w.release // deliberately deaf to w.ctx.Context
	}
	return nil
}

// A task whose user code ignores cancellation is abandoned after
// TaskCancellationTimeout (issue 11.4): the job restarts from its
// checkpoint without it and finishes with exact counts, while the stuck
// code is still stuck; released at the end, it leaks nothing.
func TestTaskIgnoringCancellationIsAbandoned(t *testing.T) {
	url, store := memStore(t)
	cfg := ckConfig(url)
	cfg.TaskCancellationTimeout = 300 * time.Millisecond
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	var stuck atomic.Int64

	data := make([]int64, ckRecords)
	for i := range data {
		data[i] = int64(i % ckKeys)
	}
	env := strom.NewEnvironment(cfg)
	var seen atomic.Int64
	var failed atomic.Bool
	src := strom.FromSource(env, strom.SliceSource(data), "numbers")
	mapped := strom.Map(src, func(v int64) int64 {
		n := seen.Add(1)
		if !failed.Load() && n >= 300 && n%10 == 0 {
			if _, id, _ := latestRetained(t, store); id > 0 && failed.CompareAndSwap(false, true) {
				panic("injected failure after a checkpoint")
			}
		}
		return v
	})
	counts := strom.KeyedProcess(strom.KeyBy(mapped, func(v int64) int64 { return v }),
		func() strom.KeyedProcessFunction[int64, int64, keyCount] { return &ckCountFn{} })
	sink := &lastCounts{last: map[int64]int64{}, rewound: map[int64]int64{}}
	strom.SinkTo(counts, "stuck on close", func(c strom.SinkContext) (strom.SinkWriter[keyCount], error) {
		return &stuckCloseWriter{ctx: c, sink: sink, release: release, stuck: &stuck}, nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := env.Execute(ctx, "stuck sink")
	require.NoError(t, err)
	require.True(t, failed.Load(), "the failure was injected")
	require.Positive(t, stuck.Load(), "a first-attempt sink was stuck in Close when the job restarted")
	require.Equal(t, 1, res.Restarts)
	require.Positive(t, res.RestoredCheckpoint)
	requireExactCounts(t, sink)

	// The abandoned goroutines are still stuck; let them go, so that the
	// package's leak check sees them end.
	released = true
	close(release)
}
