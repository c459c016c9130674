package strom_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/state"
)

// requireTaskFailure checks that err is a job failure naming the job, the
// operator and a subtask.
func requireTaskFailure(t *testing.T, err error, job, operator string) {
	t.Helper()
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.NotErrorIs(t, err, strom.ErrJobCanceled)
	msg := err.Error()
	require.Contains(t, msg, fmt.Sprintf("job %q", job))
	require.Contains(t, msg, fmt.Sprintf("operator %q", operator))
	require.Contains(t, msg, "subtask")
}

func TestPanicInMapFailsJob(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := newEnv(p)
		m := strom.Map(strom.FromSlice(env, rangeSlice(1000)), func(v int) int {
			if v == 777 {
				panic("cannot map 777")
			}
			return v
		}).Name("Explode")
		strom.Discard(strom.Filter(m, func(int) bool { return true }))
		_, err := run(t, env, "panicky")
		requireTaskFailure(t, err, "panicky", "Explode")
		require.ErrorContains(t, err, "panic: cannot map 777")
	}
}

func TestPanicAttributedInsideAChain(t *testing.T) {
	env := newEnv(1)
	a := strom.Map(strom.FromSlice(env, rangeSlice(10)), func(v int) int { return v }).Name("First")
	b := strom.Map(a, func(v int) int {
		var m map[int]int
		m[v] = v // nil map write: a runtime error
		return v
	}).Name("Second")
	strom.Discard(strom.Map(b, func(v int) int { return v }).Name("Third"))
	_, err := run(t, env, "chain")
	requireTaskFailure(t, err, "chain", "Second")
	require.ErrorContains(t, err, "assignment to entry in nil map")
}

func TestUserErrorFromProcessElement(t *testing.T) {
	errBad := errors.New("record 13 is unlucky")
	env := newEnv(2)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(100)), func(v int) int { return v % 5 })
	strom.Discard(strom.KeyedProcessFunc(keyed, func(ctx *strom.KeyedContext[int, int], v int) error {
		if v == 13 {
			return errBad
		}
		return nil
	}).Name("Unlucky"))
	_, err := run(t, env, "user error")
	requireTaskFailure(t, err, "user error", "Unlucky")
	require.ErrorIs(t, err, errBad, "the user's error is wrapped, not flattened")
}

type failingOpen struct {
	err    error
	closed *atomic.Int32
}

func (f failingOpen) Open(*strom.KeyedContext[int, int]) error { return f.err }
func (f failingOpen) Close() error {
	f.closed.Add(1)
	return nil
}
func (f failingOpen) ProcessElement(*strom.KeyedContext[int, int], int) error {
	return errors.New("not reached")
}

func TestErrorInOpen(t *testing.T) {
	errOpen := errors.New("database unreachable")
	env := newEnv(2)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(100)), func(v int) int { return v })
	var closed atomic.Int32
	strom.Discard(strom.KeyedProcess(keyed, func() strom.KeyedProcessFunction[int, int, int] { return failingOpen{errOpen, &closed} }).Name("Opener"))
	_, err := run(t, env, "open error")
	requireTaskFailure(t, err, "open error", "Opener")
	require.ErrorIs(t, err, errOpen)
	require.ErrorContains(t, err, "open: database unreachable")
	// Close is always called, also when Open failed (it may have acquired
	// something before failing): once per subtask that opened.
	require.Positive(t, closed.Load())
	require.LessOrEqual(t, closed.Load(), int32(2))
}

type timerError struct{}

func (timerError) ProcessElement(ctx *strom.KeyedContext[int, int], v int) error {
	ctx.RegisterEventTimeTimer(0)
	return nil
}

func (timerError) OnTimer(*strom.KeyedContext[int, int], int64) error {
	return errors.New("timer broke")
}

func TestErrorInOnTimer(t *testing.T) {
	env := newEnv(1)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(3)), func(v int) int { return v })
	strom.Discard(strom.KeyedProcess(keyed, func() strom.KeyedProcessFunction[int, int, int] { return timerError{} }).Name("Timers"))
	_, err := run(t, env, "timer error")
	requireTaskFailure(t, err, "timer error", "Timers")
	require.ErrorContains(t, err, "OnTimer: timer broke")
}

// A panic in a watermark generator's periodic callback runs from the task's
// processing-time service, not from a record; it must still name the
// operator that owns the generator, not the head of the chain.
type panickyGenerator struct{}

func (panickyGenerator) OnEvent(int64, strom.WatermarkOutput) {}
func (panickyGenerator) OnPeriodicEmit(strom.WatermarkOutput) { panic("generator broke") }

func TestPanicInPeriodicWatermarkGenerator(t *testing.T) {
	env := newEnv(1)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }) // unbounded: only the panic ends it
	strom.Discard(strom.AssignTimestamps(gen, strom.CustomWatermarks[int64](func() strom.WatermarkGenerator { return panickyGenerator{} })).Name("Stamper"))
	_, err := run(t, env, "generator")
	requireTaskFailure(t, err, "generator", "Stamper")
	require.ErrorContains(t, err, "generator broke")
}

// A panic in a processing-time OnTimer names the keyed operator.
type procTimerPanic struct{}

func (procTimerPanic) ProcessElement(ctx *strom.KeyedContext[int64, int64], v int64) error {
	ctx.RegisterProcessingTimeTimer(ctx.CurrentProcessingTime())
	return nil
}

func (procTimerPanic) OnTimer(*strom.KeyedContext[int64, int64], int64) error {
	panic("processing timer broke")
}

func TestPanicInProcessingTimeTimer(t *testing.T) {
	env := newEnv(1)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i % 3 }, datagen.RatePerSecond(1000))
	strom.Discard(strom.KeyedProcess(strom.KeyBy(gen, func(v int64) int64 { return v }),
		func() strom.KeyedProcessFunction[int64, int64, int64] { return procTimerPanic{} }).Name("PT"))
	_, err := run(t, env, "pt panic")
	requireTaskFailure(t, err, "pt panic", "PT")
	require.ErrorContains(t, err, "panic: processing timer broke")
}

func TestStateRegisteredTwiceWithDifferentTypes(t *testing.T) {
	env := newEnv(1)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(5)), func(v int) int { return v })
	strom.Discard(strom.KeyedProcessFunc(keyed, func(ctx *strom.KeyedContext[int, int], v int) error {
		if _, err := state.GetValue(ctx, state.ValueDescriptor[int]{Name: "x"}); err != nil {
			return err
		}
		_, err := state.GetList(ctx, state.ListDescriptor[string]{Name: "x"})
		return err
	}).Name("Twice"))
	_, err := run(t, env, "state twice")
	requireTaskFailure(t, err, "state twice", "Twice")
	require.ErrorContains(t, err, `state "x" is already registered as`)
}

func TestConfigurationErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(env *strom.Environment)
		cfg   strom.Config
		want  string
	}{
		{name: "parallelism above maxParallelism", cfg: strom.Config{Parallelism: 200},
			build: func(env *strom.Environment) { strom.Discard(strom.FromElements(env, 1)) },
			want:  "parallelism 200 exceeds maxParallelism 128"},
		{name: "operator parallelism above maxParallelism", cfg: strom.Config{MaxParallelism: 8},
			build: func(env *strom.Environment) { strom.Discard(strom.FromElements(env, 1).Parallelism(9)) },
			want:  `parallelism 9 exceeds maxParallelism 8`},
		{name: "maxParallelism too large", cfg: strom.Config{MaxParallelism: 1 << 16},
			build: func(env *strom.Environment) { strom.Discard(strom.FromElements(env, 1)) },
			want:  "maxParallelism 65536 out of range"},
		{name: "parallelism 0", build: func(env *strom.Environment) {
			strom.Discard(strom.Map(strom.FromElements(env, 1), func(v int) int { return v }).Name("Zero").Parallelism(0))
		}, want: `operator "Zero": parallelism 0 must be at least 1`},
		{name: "sink parallelism -1", build: func(env *strom.Environment) {
			strom.Discard(strom.FromElements(env, 1)).Parallelism(-1)
		}, want: `sink "Discard": parallelism -1 must be at least 1`},
		{name: "empty job", build: func(*strom.Environment) {}, want: `job "empty job" has no operators`},
		{name: "configuring a union", build: func(env *strom.Environment) {
			a := strom.FromElements(env, 1)
			strom.Discard(strom.Union(a, a).Name("u"))
		}, want: "Name: set it on the operators before the union"},
		{name: "side output of a union", build: func(env *strom.Environment) {
			a := strom.FromElements(env, 1)
			strom.Discard(strom.SideOutput(strom.Union(a, a), strom.NewOutputTag[int]("t")))
		}, want: `SideOutput "t": take side outputs from an operator`},
		{name: "union across environments", build: func(env *strom.Environment) {
			other := strom.NewEnvironment()
			strom.Discard(strom.Union(strom.FromElements(env, 1), strom.FromElements(other, 2)))
		}, want: "Union: streams belong to different environments"},
		{name: "duplicate UIDs", build: func(env *strom.Environment) {
			strom.Discard(strom.FromElements(env, 1).UID("same"))
			strom.Discard(strom.FromElements(env, 2).UID("same"))
		}, want: `have the same UID "same"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			env := strom.NewEnvironment(cfg)
			tc.build(env)
			_, err := run(t, env, tc.name)
			require.ErrorContains(t, err, tc.want)
			require.Contains(t, err.Error(), "strom:")
			require.NotErrorIs(t, err, strom.ErrJobFailed, "a job that cannot be built never runs")
		})
	}
}

func TestTooFewSlotsFailsClearly(t *testing.T) {
	env := newEnv(4, func(c *strom.Config) { c.TaskManagers = 1; c.SlotsPerTaskManager = 2 })
	strom.Discard(strom.FromSlice(env, rangeSlice(10)))
	_, err := run(t, env, "slots")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "job needs 4 slots but the cluster has 2")
}
