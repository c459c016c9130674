package datagen_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/internal/stromtest"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFromGeneratorCount(t *testing.T) {
	for _, p := range []int{1, 3} {
		env := stromtest.NewEnv(p)
		got := strom.Collect(datagen.FromGenerator(env, func(i int64) int64 { return i * i }, datagen.Count(10000)))
		zero := strom.Collect(datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(0)))
		stromtest.MustRun(t, env, "generator")
		vals := got.Values()
		require.Len(t, vals, 10000)
		seen := make(map[int64]bool, len(vals))
		for _, v := range vals {
			require.False(t, seen[v], "index generated twice")
			seen[v] = true
		}
		for i := range int64(10000) {
			require.True(t, seen[i*i])
		}
		require.Zero(t, zero.Len())
	}
}

func TestFromGeneratorRate(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := stromtest.NewEnv(p)
		strom.Discard(datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.Count(200), datagen.RatePerSecond(1000)))
		start := time.Now()
		res := stromtest.MustRun(t, env, "rate")
		elapsed := time.Since(start)
		// 200 records at 1000/s take 200ms; allow for the first batch.
		require.GreaterOrEqual(t, elapsed, 150*time.Millisecond, "parallelism %d", p)
		require.Less(t, elapsed, 10*time.Second)
		d, _ := res.Operator("Discard")
		require.Equal(t, int64(200), d.RecordsIn)
	}
}

// SourceWith makes one generator function per reader.
func TestSourceWithOneFunctionPerReader(t *testing.T) {
	var made atomic.Int64
	src := datagen.SourceWith(func() func(i int64) int64 {
		made.Add(1)
		return func(i int64) int64 { return i }
	}, datagen.Count(100))
	env := stromtest.NewEnv(3)
	got := strom.Collect(strom.FromSource(env, src, "Gen"))
	stromtest.MustRun(t, env, "per reader")
	require.Equal(t, 100, got.Len())
	require.Equal(t, int64(3), made.Load())
}
