package strom_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/window"
)

// Reading one side output of an operator with two tags of the same id and
// different types is a build error naming the operator and the tag (it used
// to panic on a runtime goroutine and take the process down).
func TestSideOutputSameIDTwoTypesIsBuildError(t *testing.T) {
	env := newEnv(2)
	asInt := strom.NewOutputTag[int]("extra")
	asString := strom.NewOutputTag[string]("extra")
	main := strom.KeyedProcessFunc(strom.KeyBy(strom.FromSlice(env, rangeSlice(10)), func(v int) int { return v }),
		func(ctx *strom.KeyedContext[int, int], v int) error {
			asInt.Emit(ctx, v)
			asString.Emit(ctx, "x")
			return nil
		}).Name("Splitter")
	strom.Discard(strom.SideOutput(main, asInt))
	strom.Discard(strom.SideOutput(main, asString))
	_, err := env.Execute(context.Background(), "two types")
	require.Error(t, err)
	require.ErrorContains(t, err, `operator "Splitter"`)
	require.ErrorContains(t, err, `side output "extra"`)
	require.ErrorContains(t, err, "int")
	require.ErrorContains(t, err, "string")
}

// A window declares the type of its late-data side output: reading it with
// a tag of another type is a build error.
func TestLateDataTagOfAnotherTypeIsBuildError(t *testing.T) {
	env := newEnv(1)
	src := strom.AssignTimestamps(strom.FromElements(env, tsRec{"a", 1}),
		strom.Monotonous[tsRec]().WithTimestamps(func(r tsRec) int64 { return r.TS }))
	lateAsRec := strom.NewOutputTag[tsRec]("late")
	lateAsInt := strom.NewOutputTag[int]("late")
	res := strom.WindowReduce(strom.Window(strom.KeyBy(src, func(r tsRec) string { return r.Key }), window.Tumbling(time.Second)).
		SideOutputLateData(lateAsRec).Name("Windows"), func(a, b tsRec) tsRec { return a })
	strom.Discard(res)
	strom.Discard(strom.SideOutput(res, lateAsInt))
	_, err := env.Execute(context.Background(), "late type")
	require.ErrorContains(t, err, `operator "Windows": side output "late" is read with tags of different types`)
}

// Emitting with a tag whose type differs from the stream read from that id
// fails the job with an error naming the operator and the tag, instead of
// silently dropping the records.
func TestEmitWithTagOfAnotherTypeFailsJob(t *testing.T) {
	env := newEnv(1)
	emitAsInt := strom.NewOutputTag[int]("numbers")
	readAsString := strom.NewOutputTag[string]("numbers")
	main := strom.KeyedProcessFunc(strom.KeyBy(strom.FromSlice(env, rangeSlice(10)), func(v int) int { return v }),
		func(ctx *strom.KeyedContext[int, int], v int) error {
			emitAsInt.Emit(ctx, v)
			return nil
		}).Name("Emitter")
	strom.Discard(main)
	strom.Discard(strom.SideOutput(main, readAsString))
	_, err := run(t, env, "mismatch")
	requireTaskFailure(t, err, "mismatch", "Emitter")
	require.ErrorContains(t, err, `side output "numbers"`)
	require.ErrorContains(t, err, "int")
	require.ErrorContains(t, err, "string")
}

// A window join declares its late-data outputs' types too.
func TestWindowJoinLateTagsAreTyped(t *testing.T) {
	build := func(env *strom.Environment) strom.Keyed[tsRec, string] {
		src := strom.AssignTimestamps(strom.FromElements(env, tsRec{"a", 1}),
			strom.Monotonous[tsRec]().WithTimestamps(func(r tsRec) int64 { return r.TS }))
		return strom.KeyBy(src, func(r tsRec) string { return r.Key })
	}
	join := func(a, b tsRec) int { return 0 }

	env := newEnv(1)
	k := build(env)
	j := strom.WindowJoinApply(strom.WindowJoinOf(k, k, window.Tumbling(time.Second)).
		SideOutputLateData1(strom.NewOutputTag[tsRec]("late")).Name("J"), join)
	strom.Discard(j)
	strom.Discard(strom.SideOutput(j, strom.NewOutputTag[string]("late")))
	_, err := env.Execute(context.Background(), "join late type")
	require.ErrorContains(t, err, `operator "J": side output "late" is read with tags of different types`)

	env = newEnv(1)
	k = build(env)
	strom.Discard(strom.WindowJoinApply(strom.WindowJoinOf(k, strom.KeyBy(strom.FromElements(env, 1), func(int) string { return "a" }), window.Tumbling(time.Second)).
		SideOutputLateData1(strom.NewOutputTag[tsRec]("late")).
		SideOutputLateData2(strom.NewOutputTag[int]("late")).Name("J"), func(a tsRec, b int) int { return 0 }))
	_, err = env.Execute(context.Background(), "both late tags")
	require.ErrorContains(t, err, `the late-data tags of both inputs have id "late" but different types`)
}
