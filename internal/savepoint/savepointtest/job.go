// Package savepointtest writes real checkpoints for the tests of savepoint
// inspection: it runs a small counting job in the embedded cluster.
package savepointtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/state"
)

// Records and Keys shape the counting job: Records records spread evenly
// over Keys string keys, so every key's final count is Records/Keys.
const (
	Records = 600
	Keys    = 12
	// CountUID is the UID of the counting operator, CountState its value
	// state (ValueState[int64]).
	CountUID   = "counts"
	CountState = "count"
)

// Key is the key of record i.
func Key(i int64) string { return fmt.Sprintf("key-%02d", i%Keys) }

type countFn struct{ n state.ValueState[int64] }

func (f *countFn) Open(ctx *strom.KeyedContext[string, int64]) error {
	var err error
	f.n, err = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: CountState})
	return err
}

func (f *countFn) ProcessElement(ctx *strom.KeyedContext[string, int64], _ int64) error {
	n, _ := f.n.Value()
	f.n.Update(n + 1)
	ctx.Collect(n + 1)
	return nil
}

// CountingCheckpoint runs a job that counts Records records per Keys
// string keys, at parallelism 2, with checkpoints into root (an OS
// directory), and cancels it once a checkpoint taken after the last
// record was counted is retained. It returns that checkpoint's directory
// (root/<job id>/chk-<n>), whose count state holds every key's final
// count. Its keyed state is an incremental chain (shared files under
// root/<job id>/shared): CountingCheckpointFull writes it whole into the
// checkpoint's directory instead.
func CountingCheckpoint(t *testing.T, root string) string {
	return countingCheckpoint(t, root, false)
}

// CountingCheckpointFull is CountingCheckpoint with full checkpoints.
func CountingCheckpointFull(t *testing.T, root string) string {
	return countingCheckpoint(t, root, true)
}

func countingCheckpoint(t *testing.T, root string, full bool) string {
	t.Helper()
	cfg := strom.Config{
		Parallelism: 2, CheckpointInterval: 40 * time.Millisecond,
		CheckpointDir:       "file://" + filepath.ToSlash(root),
		RetainedCheckpoints: 1000,
		FullCheckpoints:     full,
	}
	env := strom.NewEnvironment(cfg)
	// An unbounded source whose records past Records are dropped: the job
	// keeps running, and checkpointing, with final counts.
	src := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.RatePerSecond(4000))
	kept := strom.Filter(src, func(i int64) bool { return i < Records })
	counts := strom.KeyedProcess(strom.KeyBy(kept, Key), func() strom.KeyedProcessFunction[string, int64, int64] { return &countFn{} }).UID(CountUID)
	var mu sync.Mutex
	seen := 0
	strom.SinkFunc(counts, func(int64) error {
		mu.Lock()
		seen++
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx, t.Name())
		done <- err
	}()
	// Once every record was counted, the next checkpoint triggered holds
	// the final counts; wait until one after it is retained.
	// Ids start at 1, so with none retained yet (-1) the one in flight is 1.
	after, dir := -1, ""
	for ctx.Err() == nil {
		mu.Lock()
		all := seen == Records
		mu.Unlock()
		id, d := latestRetained(root)
		if all && after < 0 {
			after = max(id, 0)
		}
		if after >= 0 && id > after+1 {
			dir = d
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done // canceled: its error says so
	require.NotEmpty(t, dir, "a checkpoint after all %d records were counted", Records)
	return dir
}

// latestRetained returns the id and directory of the newest retained
// checkpoint under root (-1 if none).
func latestRetained(root string) (int, string) {
	best, dir := -1, ""
	jobs, _ := os.ReadDir(root)
	for _, j := range jobs {
		ptrs, _ := os.ReadDir(filepath.Join(root, j.Name(), "retained"))
		for _, p := range ptrs {
			n, err := strconv.Atoi(strings.TrimPrefix(p.Name(), "chk-"))
			if err == nil && n > best {
				best, dir = n, filepath.Join(root, j.Name(), "chk-"+strconv.Itoa(n))
			}
		}
	}
	return best, dir
}
