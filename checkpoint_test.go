package strom_test

// End-to-end tests of checkpoints and recovery in the embedded cluster: a
// keyed running count per key, checkpointed periodically into an in-memory
// blob store, with failures injected once a checkpoint has completed.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/internal/blob"
	"github.com/strom-dev/strom/internal/checkpoint"
	"github.com/strom-dev/strom/state"
)

const (
	ckKeys    = 20
	ckRecords = 4000
)

// ckCountFn keeps a running count per key in ValueState and emits it with
// every record. It sleeps now and then so the job runs long enough for
// several checkpoints, with small buffers keeping the sources backpressured
// (so they are still reading when a failure is injected).
type ckCountFn struct {
	n    state.ValueState[int64]
	seen int
}

type keyCount struct{ Key, Count int64 }

func (f *ckCountFn) Open(ctx *strom.KeyedContext[int64, keyCount]) error {
	var err error
	f.n, err = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "count"})
	return err
}

func (f *ckCountFn) ProcessElement(ctx *strom.KeyedContext[int64, keyCount], v int64) error {
	n, _ := f.n.Value()
	n++
	f.n.Update(n)
	ctx.Collect(keyCount{Key: ctx.Key(), Count: n})
	if f.seen++; f.seen%20 == 0 {
		time.Sleep(time.Millisecond)
	}
	return nil
}

// lastCounts is the test sink: the last count seen per key. The sink is not
// exactly-once (a restore replays what followed the checkpoint), but the
// last value per key is the final state.
//
// rewound records, per key, the count the key went back to when a restart
// replayed: the restored count + 1 after a restore from a checkpoint, 1
// after a fresh start — which tells the two apart, since both end with the
// same final counts.
type lastCounts struct {
	mu      sync.Mutex
	last    map[int64]int64
	rewound map[int64]int64
}

func (l *lastCounts) put(kc keyCount) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.last[kc.Key]; ok && kc.Count <= prev {
		l.rewound[kc.Key] = kc.Count
	}
	l.last[kc.Key] = kc.Count
	return nil
}

func memStore(t *testing.T) (string, blob.Store) {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	url := "mem://ckpt-" + hex.EncodeToString(b[:])
	s, err := blob.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return url, s
}

// latestRetained returns the key of the newest retained checkpoint's
// metadata and its id, by listing the store's pointers.
func latestRetained(t *testing.T, s blob.Store) (key string, id int64, notified bool) {
	objs, err := s.List(context.Background(), "")
	if err != nil {
		return "", 0, false
	}
	for _, o := range objs {
		i := strings.Index(o.Key, "/retained/chk-")
		if i < 0 {
			continue
		}
		var n int64
		for _, c := range o.Key[i+len("/retained/chk-"):] {
			n = n*10 + int64(c-'0')
		}
		if n > id {
			job := o.Key[:i]
			key, id = checkpoint.MetadataKey(job, checkpoint.KindCheckpoint, checkpoint.ID(n)), n
			ok, _ := s.Exists(context.Background(), job+"/chk-"+o.Key[i+len("/retained/chk-"):]+"/_notified")
			notified = ok
		}
	}
	return key, id, notified
}

// runCounting runs the counting job; inject, if set, is called by a map
// before each record with how many records that subtask has seen, and may
// panic.
func runCounting(t *testing.T, cfg strom.Config, inject func(seen int)) (*strom.JobResult, *lastCounts, error) {
	t.Helper()
	data := make([]int64, ckRecords)
	for i := range data {
		data[i] = int64(i % ckKeys)
	}
	env := strom.NewEnvironment(cfg)
	src := strom.FromSource(env, strom.SliceSource(data), "numbers")
	mapped := strom.Map(src, func(v int64) int64 { return v })
	if inject != nil {
		var seen atomic.Int64
		mapped = strom.Map(src, func(v int64) int64 {
			inject(int(seen.Add(1)))
			return v
		})
	}
	counts := strom.KeyedProcess(strom.KeyBy(mapped, func(v int64) int64 { return v }),
		func() strom.KeyedProcessFunction[int64, int64, keyCount] { return &ckCountFn{} })
	sink := &lastCounts{last: map[int64]int64{}, rewound: map[int64]int64{}}
	strom.SinkFunc(counts, sink.put)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := env.Execute(ctx, "checkpointed count")
	return r, sink, err // the job has ended: no more writes to sink
}

func ckConfig(url string) strom.Config {
	return strom.Config{
		Parallelism: 2, BatchSize: 8, BuffersPerChannel: 2,
		CheckpointInterval: 30 * time.Millisecond, CheckpointDir: url,
		RestartStrategy: strom.FixedDelayRestart(3, 10*time.Millisecond),
	}
}

func requireExactCounts(t *testing.T, sink *lastCounts) {
	t.Helper()
	require.Len(t, sink.last, ckKeys)
	for k, n := range sink.last {
		require.Equal(t, int64(ckRecords/ckKeys), n, "final count of key %d", k)
	}
}

// Periodic checkpoints complete while the job runs, and the latest one's
// metadata is in storage, naming the keyed state files, which exist.
func TestCheckpointsCompleteEndToEnd(t *testing.T) {
	url, store := memStore(t)
	r, sink, err := runCounting(t, ckConfig(url), nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, r.CheckpointsCompleted, 1, "the job ran %v", r.Duration)
	require.Zero(t, r.Restarts)
	require.Empty(t, sink.rewound)
	requireExactCounts(t, sink)

	key, id, _ := latestRetained(t, store)
	require.NotEmpty(t, key, "a retained checkpoint in storage")
	data, err := store.Read(context.Background(), key)
	require.NoError(t, err)
	md, err := checkpoint.DecodeMetadata(key, data)
	require.NoError(t, err)
	require.Equal(t, r.JobID, md.JobID)
	require.Equal(t, checkpoint.ID(id), md.ID)
	keyed := 0
	for _, op := range md.Operators {
		for _, st := range op.Subtasks {
			for _, h := range st.Keyed {
				ok, err := store.Exists(context.Background(), h.Path)
				require.NoError(t, err)
				require.True(t, ok, "state file %s", h.Path)
				require.Positive(t, h.Size)
				keyed++
			}
		}
	}
	if !allFinished(md) {
		require.Positive(t, keyed, "the latest checkpoint holds keyed state: %+v", md.Operators)
	}
}

// allFinished says every subtask had finished when md was taken (then it
// holds no state: everything was already emitted).
func allFinished(md *checkpoint.Metadata) bool {
	for _, op := range md.Operators {
		for _, st := range op.Subtasks {
			if !st.Finished {
				return false
			}
		}
	}
	return true
}

// A failure after a checkpoint restarts the job from it: the keyed counts
// and the sources' positions come back together, so every key's final
// count is exact (too low if the state were lost, too high if the sources
// replayed from the start).
func TestRecoveryFromLatestCheckpointKeepsExactCounts(t *testing.T) {
	url, store := memStore(t)
	var failed atomic.Bool
	var failedAfter atomic.Int64
	r, sink, err := runCounting(t, ckConfig(url), func(seen int) {
		if failed.Load() || seen < 300 || seen%10 != 0 {
			return
		}
		if _, id, _ := latestRetained(t, store); id > 0 && !failed.Swap(true) {
			failedAfter.Store(id)
			panic("injected failure after a checkpoint")
		}
	})
	require.NoError(t, err)
	require.True(t, failed.Load(), "the failure was injected (the job ran %v)", r.Duration)
	require.GreaterOrEqual(t, r.Restarts, 1)
	require.GreaterOrEqual(t, r.RestoredCheckpoint, failedAfter.Load(), "restored from the checkpoint retained at the failure, or a later one")
	require.Positive(t, r.RestoredCheckpoint)
	requireExactCounts(t, sink)
	// The restored state reached the tasks: keys went back to their
	// checkpointed counts, not to zero (a fresh start would also end with
	// exact counts, replaying every record).
	require.NotEmpty(t, sink.rewound, "the restart replayed records after the checkpoint")
	for k, n := range sink.rewound {
		require.Greater(t, n, int64(1), "key %d restarted from its checkpointed count, not from zero", k)
	}
}

// A latest checkpoint whose metadata is corrupt, and whose completion the
// tasks were notified of, must not be skipped for an older one: recovery
// fails, naming it.
func TestRecoveryFailsOnCorruptNotifiedCheckpoint(t *testing.T) {
	url, store := memStore(t)
	var failed atomic.Bool
	var corrupted atomic.Int64
	_, _, err := runCounting(t, ckConfig(url), func(seen int) {
		if failed.Load() || seen < 300 || seen%10 != 0 {
			return
		}
		key, id, notified := latestRetained(t, store)
		if id == 0 || !notified || failed.Swap(true) {
			return
		}
		require.NoError(t, store.Write(context.Background(), key, []byte("STROMCKP garbage"), blob.WriteOptions{}))
		corrupted.Store(id)
		panic("injected failure after corrupting the latest checkpoint")
	})
	require.True(t, failed.Load(), "the failure was injected")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "checkpoint "+itoa(corrupted.Load()))
	require.ErrorContains(t, err, "corrupt checkpoint metadata")
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// A latest checkpoint whose metadata is corrupt but that was never
// notified complete (its marker is gone) cannot have been committed by any
// sink: recovery falls back to the retained one before it, and the counts
// are still exact.
func TestRecoveryFallsBackPastCorruptUnnotifiedCheckpoint(t *testing.T) {
	url, store := memStore(t)
	cfg := ckConfig(url)
	cfg.RetainedCheckpoints = 2
	var failed atomic.Bool
	var corrupted atomic.Int64
	r, sink, err := runCounting(t, cfg, func(seen int) {
		if failed.Load() || seen < 300 || seen%10 != 0 || retainedCount(store) < 2 {
			return
		}
		key, id, notified := latestRetained(t, store)
		if !notified || failed.Swap(true) {
			return
		}
		ctx := context.Background()
		job := strings.TrimSuffix(key, "/chk-"+itoa(id)+"/_metadata")
		require.NoError(t, store.Delete(ctx, checkpoint.NotifiedKey(job, checkpoint.KindCheckpoint, checkpoint.ID(id))))
		require.NoError(t, store.Write(ctx, key, []byte("STROMCKP garbage"), blob.WriteOptions{}))
		corrupted.Store(id)
		panic("injected failure after corrupting the latest, unnotified checkpoint")
	})
	require.NoError(t, err)
	require.True(t, failed.Load(), "the failure was injected")
	require.GreaterOrEqual(t, r.Restarts, 1)
	require.Positive(t, r.RestoredCheckpoint)
	require.NotEqual(t, corrupted.Load(), r.RestoredCheckpoint, "not restored from the corrupt checkpoint")
	requireExactCounts(t, sink)
}

func retainedCount(s blob.Store) int {
	objs, err := s.List(context.Background(), "")
	if err != nil {
		return 0
	}
	n := 0
	for _, o := range objs {
		if strings.Contains(o.Key, "/retained/chk-") {
			n++
		}
	}
	return n
}
