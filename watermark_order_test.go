package strom_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// exactPunctuated emits a watermark equal to every record's timestamp: the
// record itself is the last one at or before that time.
type exactPunctuated struct{}

func (exactPunctuated) OnEvent(ts int64, out strom.WatermarkOutput) { out.EmitWatermark(ts) }
func (exactPunctuated) OnPeriodicEmit(strom.WatermarkOutput)        {}

type tsRec struct {
	Key string
	TS  int64
}

// A watermark a generator emits in OnEvent follows the record that caused
// it (as in Flink), so a record at a window's last millisecond is on time.
func TestPunctuatedWatermarkFollowsItsRecord(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := newEnv(p)
		recs := []tsRec{{"a", 1000}, {"a", 5000}, {"a", 9999}, {"a", 10000}, {"a", 15000}, {"a", 19999}}
		src := strom.AssignTimestamps(strom.FromSlice(env, recs).Parallelism(1),
			strom.CustomWatermarks[tsRec](func() strom.WatermarkGenerator { return exactPunctuated{} }).
				WithTimestamps(func(r tsRec) int64 { return r.TS }))
		late := strom.NewOutputTag[tsRec]("late")
		counts := strom.WindowAggregate(
			strom.Window(strom.KeyBy(src, func(r tsRec) string { return r.Key }), window.Tumbling(10*time.Second)).
				SideOutputLateData(late),
			state.Aggregator[tsRec, int64, int64]{
				Create: func() int64 { return 0 },
				Add:    func(n int64, _ tsRec) int64 { return n + 1 },
				Result: func(n int64) int64 { return n },
			})
		out := strom.Collect(counts)
		lateOut := strom.Collect(strom.SideOutput(counts, late))
		mustRun(t, env, "punctuated")
		require.ElementsMatch(t, []int64{3, 3}, out.Values(), "p=%d", p)
		require.Empty(t, lateOut.Values(), "p=%d: no record is late behind its own watermark", p)
	}
}

type firedAt struct {
	What      string
	At        int64
	Watermark int64
}

// behindTimer registers, at the record with timestamp 20, a timer behind the
// current watermark: it must fire with the next watermark advance (20),
// before the record with timestamp 30.
type behindTimer struct{}

func (behindTimer) ProcessElement(ctx *strom.KeyedContext[int, firedAt], v int) error {
	ts, _ := ctx.Timestamp()
	ctx.Collect(firedAt{"record", ts, ctx.CurrentWatermark()})
	if ts == 20 {
		ctx.RegisterEventTimeTimer(5)
	}
	return nil
}

func (behindTimer) OnTimer(ctx *strom.KeyedContext[int, firedAt], ts int64) error {
	ctx.Collect(firedAt{"timer", ts, ctx.CurrentWatermark()})
	return nil
}

func TestTimerBehindWatermarkFiresWithNextAdvance(t *testing.T) {
	env := newEnv(1)
	src := strom.AssignTimestamps(strom.FromSlice(env, []int{10, 20, 30}),
		strom.CustomWatermarks[int](func() strom.WatermarkGenerator { return exactPunctuated{} }).
			WithTimestamps(func(v int) int64 { return int64(v) }))
	out := strom.Collect(strom.KeyedProcess(strom.KeyBy(src, func(int) int { return 0 }),
		func() strom.KeyedProcessFunction[int, int, firedAt] { return behindTimer{} }))
	mustRun(t, env, "behind timer")
	require.Equal(t, []firedAt{
		{"record", 10, strom.NoTimestamp},
		{"record", 20, 10},
		{"timer", 5, 20},
		{"record", 30, 20},
	}, out.Values())
}

// AssignTimestamps takes its input's parallelism, so it chains into the
// source's task instead of silently becoming a rebalance with more
// generators than readers.
func TestAssignTimestampsInheritsParallelism(t *testing.T) {
	env := newEnv(4)
	src := strom.FromSlice(env, rangeSlice(10)).Parallelism(1).Name("src")
	timed := strom.AssignTimestamps(src, strom.Monotonous[int]().WithTimestamps(func(v int) int64 { return int64(v) })).Name("ts")
	out := strom.Collect(timed)
	res := mustRun(t, env, "inherit")
	op, ok := res.Operator("ts")
	require.True(t, ok)
	require.Equal(t, 1, op.Parallelism)
	require.ElementsMatch(t, rangeSlice(10), out.Values())

	// An explicit parallelism still wins.
	env = newEnv(1)
	timed = strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(10)), strom.Monotonous[int]()).Parallelism(2).Name("ts")
	strom.Discard(timed)
	res = mustRun(t, env, "explicit")
	op, _ = res.Operator("ts")
	require.Equal(t, 2, op.Parallelism)
}

// EmitPerRecord makes a periodic strategy follow the data: on a small
// bounded input a record behind the watermark is late, deterministically,
// instead of every record waiting for the final watermark.
func TestEmitPerRecord(t *testing.T) {
	env := newEnv(1)
	recs := []tsRec{{"a", 1000}, {"a", 12_000}, {"a", 2000}, {"a", 13_000}}
	src := strom.AssignTimestamps(strom.FromSlice(env, recs),
		strom.BoundedOutOfOrderness[tsRec](time.Second).EmitPerRecord().WithTimestamps(func(r tsRec) int64 { return r.TS }))
	late := strom.NewOutputTag[tsRec]("late")
	sums := strom.WindowReduce(strom.Window(strom.KeyBy(src, func(r tsRec) string { return r.Key }), window.Tumbling(10*time.Second)).
		SideOutputLateData(late), func(a, b tsRec) tsRec { return tsRec{a.Key, a.TS + b.TS} })
	out := strom.Collect(sums)
	lateOut := strom.Collect(strom.SideOutput(sums, late))
	mustRun(t, env, "per record")
	require.Equal(t, []tsRec{{"a", 2000}}, lateOut.Values(), "2000 arrived after the watermark 10999")
	require.ElementsMatch(t, []tsRec{{"a", 1000}, {"a", 25_000}}, out.Values())
}
