package strom_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/window"
)

// A negative setting on the environment is an error, not silently the
// default; zero still means the default.
func TestNegativeEnvironmentSettingsAreErrors(t *testing.T) {
	for name, set := range map[string]func(*strom.Config){
		"Parallelism":           func(c *strom.Config) { c.Parallelism = -2 },
		"MaxParallelism":        func(c *strom.Config) { c.MaxParallelism = -1 },
		"TaskManagers":          func(c *strom.Config) { c.TaskManagers = -1 },
		"SlotsPerTaskManager":   func(c *strom.Config) { c.SlotsPerTaskManager = -3 },
		"BatchSize":             func(c *strom.Config) { c.BatchSize = -1 },
		"BuffersPerChannel":     func(c *strom.Config) { c.BuffersPerChannel = -1 },
		"AutoWatermarkInterval": func(c *strom.Config) { c.AutoWatermarkInterval = -time.Second },
	} {
		env := newEnv(1, set)
		strom.Discard(strom.FromElements(env, 1, 2, 3))
		_, err := env.Execute(context.Background(), "bad settings")
		require.ErrorContains(t, err, name, name)
		require.ErrorContains(t, err, "negative", name)
	}
	env := newEnv(1)
	env.SetParallelism(-1)
	strom.Discard(strom.FromElements(env, 1))
	_, err := env.Execute(context.Background(), "bad parallelism")
	require.ErrorContains(t, err, "Parallelism -1 must not be negative")

	env = newEnv(1)
	env.SetMaxParallelism(-128)
	strom.Discard(strom.FromElements(env, 1))
	_, err = env.Execute(context.Background(), "bad max parallelism")
	require.ErrorContains(t, err, "MaxParallelism -128 must not be negative")

	env = newEnv(1)
	strom.Discard(strom.FromElements(env, 1).MaxParallelism(-1))
	_, err = env.Execute(context.Background(), "bad operator max parallelism")
	require.ErrorContains(t, err, "max parallelism -1")

	// Zero means the default.
	env = strom.NewEnvironment(strom.Config{Parallelism: 0, MaxParallelism: 0})
	out := strom.Collect(strom.FromElements(env, 1, 2, 3))
	mustRun(t, env, "defaults")
	require.ElementsMatch(t, []int{1, 2, 3}, out.Values())
}

// Durations that are not whole milliseconds are errors wherever event time
// (epoch ms) is computed from them, instead of being truncated.
func TestSubMillisecondDurationsAreErrors(t *testing.T) {
	keyed := func(env *strom.Environment) strom.Keyed[tsRec, string] {
		src := strom.AssignTimestamps(strom.FromElements(env, tsRec{"a", 1}),
			strom.Monotonous[tsRec]().WithTimestamps(func(r tsRec) int64 { return r.TS }))
		return strom.KeyBy(src, func(r tsRec) string { return r.Key })
	}
	reduce := func(a, b tsRec) tsRec { return a }
	cases := map[string]struct {
		build func(env *strom.Environment)
		want  string
	}{
		"tumbling size": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Tumbling(1500*time.Microsecond)), reduce))
		}, "tumbling window size 1.5ms is not a whole number of milliseconds"},
		"tumbling offset": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Tumbling(time.Second).WithOffset(time.Microsecond)), reduce))
		}, "tumbling window offset 1µs"},
		"sliding size": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Sliding(time.Second+time.Nanosecond, time.Second)), reduce))
		}, "sliding window size"},
		"sliding slide": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.SlidingProcessingTime(time.Second, 500*time.Microsecond)), reduce))
		}, "sliding window slide 500µs"},
		"session gap": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Session(2500*time.Microsecond)), reduce))
		}, "session gap 2.5ms"},
		"allowed lateness": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Tumbling(time.Second)).AllowedLateness(time.Microsecond), reduce))
		}, "allowed lateness 1µs"},
		"interval join": {func(env *strom.Environment) {
			k := keyed(env)
			strom.Discard(strom.IntervalJoin(k, k, -time.Microsecond, time.Second, func(a, b tsRec, out strom.Collector[int]) error { return nil }))
		}, "lower bound -1µs"},
		"time evictor": {func(env *strom.Environment) {
			strom.Discard(strom.WindowReduce(strom.Window(keyed(env), window.Tumbling(time.Second)).Evictor(window.TimeEvictor(1500*time.Microsecond)), reduce))
		}, "TimeEvictor duration 1.5ms is not a whole number of milliseconds"},
		"out of orderness": {func(env *strom.Environment) {
			strom.Discard(strom.AssignTimestamps(strom.FromElements(env, 1), strom.BoundedOutOfOrderness[int](time.Millisecond+time.Microsecond)))
		}, "max delay 1.001ms is not a whole number of milliseconds"},
	}
	for name, c := range cases {
		env := newEnv(1)
		c.build(env)
		_, err := env.Execute(context.Background(), name)
		require.ErrorContains(t, err, c.want, name)
	}
}

// Defaults live in one place, EnsureDefaults; set fields are kept.
func TestConfigEnsureDefaults(t *testing.T) {
	t.Setenv(strom.ClusterEnv, "")
	d := strom.Config{}.EnsureDefaults()
	require.Equal(t, 1, d.Parallelism)
	require.Equal(t, 128, d.MaxParallelism)
	require.Equal(t, 512, d.BatchSize)
	require.Equal(t, 4, d.BuffersPerChannel)
	require.Equal(t, 200*time.Millisecond, d.AutoWatermarkInterval)
	require.NotNil(t, d.Logger)
	require.Empty(t, d.Cluster)
	require.Equal(t, strom.DefaultCheckpointDir(), d.CheckpointDir)
	require.True(t, strings.HasPrefix(d.CheckpointDir, "file://"), d.CheckpointDir)
	require.Equal(t, strom.DefaultCheckpointTimeout, d.CheckpointTimeout)
	require.Equal(t, 1, d.MaxConcurrentCheckpoints)
	require.Equal(t, 1, d.RetainedCheckpoints)
	require.Zero(t, d.CheckpointInterval, "checkpointing is off by default")
	require.Equal(t, "default", d.RestartStrategy.String())
	ck := func(c strom.Config) strom.Config {
		c.CheckpointDir, c.CheckpointTimeout, c.MaxConcurrentCheckpoints, c.RetainedCheckpoints = "mem://x", time.Minute, 2, 3
		return c
	}
	set := ck(strom.Config{Parallelism: 3, MaxParallelism: 64, BatchSize: 16, BuffersPerChannel: 2, AutoWatermarkInterval: time.Second}).EnsureDefaults()
	require.Equal(t, ck(strom.Config{Parallelism: 3, MaxParallelism: 64, BatchSize: 16, BuffersPerChannel: 2, AutoWatermarkInterval: time.Second, Logger: set.Logger}), set)
	require.Equal(t, d, newEnvDefaults().Config())
}

func newEnvDefaults() *strom.Environment { return strom.NewEnvironment() }

// Asking to run a job on a cluster submits it there (submit_test.go) and
// never falls back silently to the embedded cluster: an unreachable
// cluster is an error. A TaskManager's job worker (STROM_JOB_WORKER) serves
// tasks instead, even with a cluster set.
func TestClusterExecutionNeverFallsBackToEmbedded(t *testing.T) {
	run := func(cfg strom.Config) error {
		env := strom.NewEnvironment(cfg)
		out := strom.Collect(strom.FromElements(env, 1, 2, 3))
		_, err := env.Execute(context.Background(), "remote")
		require.Zero(t, out.Len(), "nothing ran embedded")
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	err = run(strom.Config{Cluster: dead})
	require.ErrorContains(t, err, "cannot reach the JobManager at "+dead)

	t.Setenv(strom.ClusterEnv, dead)
	err = run(strom.Config{})
	require.ErrorContains(t, err, "cannot reach the JobManager at "+dead)

	t.Setenv(strom.ClusterEnv, "")
	// A job worker whose TaskManager's instructions are garbled says so.
	t.Setenv("STROM_JOB_WORKER", "1")
	err = run(strom.Config{})
	require.ErrorContains(t, err, "job worker: $STROM_JOB_WORKER")
	// A worker runs with the program's arguments, which may set a cluster:
	// it must serve tasks, not submit the job again.
	err = run(strom.Config{Cluster: dead})
	require.ErrorContains(t, err, "job worker")
}

// Checkpoint and restart settings that cannot be meant are errors naming
// the field.
func TestBadCheckpointSettingsAreErrors(t *testing.T) {
	for want, set := range map[string]func(*strom.Config){
		"CheckpointInterval -1s must not be negative":       func(c *strom.Config) { c.CheckpointInterval = -time.Second },
		"CheckpointTimeout -1s must not be negative":        func(c *strom.Config) { c.CheckpointTimeout = -time.Second },
		"MinPauseBetweenCheckpoints -1ms must not be":       func(c *strom.Config) { c.MinPauseBetweenCheckpoints = -time.Millisecond },
		"MaxConcurrentCheckpoints -1 must not be negative":  func(c *strom.Config) { c.MaxConcurrentCheckpoints = -1 },
		"TolerableCheckpointFailures -2 must not be":        func(c *strom.Config) { c.TolerableCheckpointFailures = -2 },
		"RetainedCheckpoints -1 must not be negative":       func(c *strom.Config) { c.RetainedCheckpoints = -1 },
		"unknown CheckpointMode CheckpointMode(7)":          func(c *strom.Config) { c.CheckpointMode = 7 },
		`CheckpointDir "/tmp/ck" is not a URL: write file:`: func(c *strom.Config) { c.CheckpointDir = "/tmp/ck" },
		"config: RestartStrategy: ":                         func(c *strom.Config) { c.RestartStrategy = strom.FixedDelayRestart(0, time.Second) },
	} {
		env := newEnv(1, set)
		strom.Discard(strom.FromElements(env, 1, 2, 3))
		_, err := env.Execute(context.Background(), "bad checkpoint settings")
		require.ErrorContains(t, err, want)
	}
	require.Equal(t, "fixed-delay", strom.FixedDelayRestart(1, time.Second).String())
	require.Equal(t, "none", strom.NoRestart().String())
	require.Equal(t, "exponential-delay", strom.ExponentialDelayRestart().String())
	require.Equal(t, "failure-rate", strom.FailureRateRestart(1, time.Minute, time.Second).String())
}

// Without a restart strategy a job with checkpoints still restarts (the
// default is exponential delay); NoRestart turns that off.
func TestNoRestartFailsACheckpointedJobAtOnce(t *testing.T) {
	env := strom.NewEnvironment(strom.Config{Parallelism: 1, CheckpointInterval: 10 * time.Millisecond,
		CheckpointDir: "mem://no-restart-" + t.Name(), RestartStrategy: strom.NoRestart()})
	strom.Discard(strom.Map(strom.FromElements(env, 1, 2, 3), func(v int) int {
		if v == 2 {
			panic("no second chance")
		}
		return v
	}))
	r, err := env.Execute(context.Background(), "no restart")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "no second chance")
	require.Zero(t, r.Restarts)
}
