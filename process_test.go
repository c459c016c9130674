package strom_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/state"
)

// punctuated emits a watermark just behind every record, so watermarks move
// in step with the data and timer firing is deterministic.
type punctuated struct{}

func (punctuated) OnEvent(ts int64, out strom.WatermarkOutput) { out.EmitWatermark(ts - 1) }
func (punctuated) OnPeriodicEmit(strom.WatermarkOutput)        {}

type firing struct {
	Key       int
	Timer     int64
	Watermark int64
	Ts        int64
	HasTs     bool
	Domain    strom.TimeDomain
}

type timerFn struct{}

func (timerFn) ProcessElement(ctx *strom.KeyedContext[int, firing], v int) error {
	ts, ok := ctx.Timestamp()
	if !ok || ts != int64(v) {
		return fmt.Errorf("record %d has timestamp %d (%v)", v, ts, ok)
	}
	ctx.RegisterEventTimeTimer(ts + 10)
	ctx.RegisterEventTimeTimer(1000) // the same for every record of a key: fires once
	if v%7 == 0 {
		ctx.DeleteEventTimeTimer(ts + 10)
	}
	return nil
}

func (timerFn) OnTimer(ctx *strom.KeyedContext[int, firing], ts int64) error {
	t, ok := ctx.Timestamp()
	ctx.Collect(firing{Key: ctx.Key(), Timer: ts, Watermark: ctx.CurrentWatermark(), Ts: t, HasTs: ok, Domain: ctx.TimeDomain()})
	return nil
}

func TestEventTimeTimersFireOnWatermarkAndAtEnd(t *testing.T) {
	env := newEnv(1)
	src := strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(100)),
		strom.CustomWatermarks[int](func() strom.WatermarkGenerator { return punctuated{} }).
			WithTimestamps(func(v int) int64 { return int64(v) }))
	out := strom.Collect(strom.KeyedProcess(strom.KeyBy(src, func(v int) int { return v % 3 }),
		func() strom.KeyedProcessFunction[int, int, firing] { return timerFn{} }))
	mustRun(t, env, "event timers")

	got := out.Values()
	byTimer := map[[2]int64]firing{}
	for _, f := range got {
		k := [2]int64{int64(f.Key), f.Timer}
		_, dup := byTimer[k]
		require.False(t, dup, "timer %v fired twice", k)
		byTimer[k] = f
		require.Equal(t, strom.EventTime, f.Domain)
		require.True(t, f.HasTs)
		require.Equal(t, f.Timer, f.Ts, "an event-time timer's timestamp is its time")
		require.GreaterOrEqual(t, f.Watermark, f.Timer, "a timer fires only once the watermark passes it")
	}
	want := 3 // the shared timer at 1000, once per key
	for v := range 100 {
		k := [2]int64{int64(v % 3), int64(v + 10)}
		f, ok := byTimer[k]
		if v%7 == 0 {
			require.False(t, ok, "deleted timer %v fired", k)
			continue
		}
		want++
		require.True(t, ok, "timer %v did not fire", k)
		if v+10 <= 97 {
			// Watermark v+10 follows record v+11 and precedes record v+12
			// (coalescing keeps a channel's order). The last, 98, has no
			// record after it: it collapses into the final watermark.
			require.Equal(t, int64(v+10), f.Watermark, "timer %v fired late", k)
		} else {
			require.Equal(t, int64(strom.MaxWatermark), f.Watermark, "timer %v fires at the end of input", k)
		}
	}
	for k := range 3 {
		require.Equal(t, int64(strom.MaxWatermark), byTimer[[2]int64{int64(k), 1000}].Watermark)
	}
	require.Len(t, got, want)
	// Timers fire in time order.
	for i := 1; i < len(got); i++ {
		require.LessOrEqual(t, got[i-1].Timer, got[i].Timer)
	}
}

func TestPeriodicWatermarksDriveTimers(t *testing.T) {
	env := newEnv(2, func(c *strom.Config) { c.AutoWatermarkInterval = time.Millisecond })
	gen := datagen.FromGenerator(env, func(i int64) int { return int(i) }, datagen.Count(1500), datagen.RatePerSecond(10000))
	src := strom.AssignTimestamps(gen, strom.BoundedOutOfOrderness[int](5*time.Millisecond).WithTimestamps(func(v int) int64 { return int64(v) }))
	fired := strom.Collect(strom.KeyedProcess(strom.KeyBy(src, func(v int) int { return v % 5 }),
		func() strom.KeyedProcessFunction[int, int, firing] { return watermarkTimer{} }))
	mustRun(t, env, "periodic")
	got := fired.Values()
	require.Len(t, got, 1500)
	before := 0
	for _, f := range got {
		require.GreaterOrEqual(t, f.Watermark, f.Timer)
		if f.Watermark < strom.MaxWatermark {
			before++
			require.Less(t, f.Watermark, int64(1500-6), "the watermark trails the highest timestamp by the bound + 1ms")
		}
	}
	require.Positive(t, before, "over ~150ms with a 1ms interval, periodic watermarks fire timers before the end")
}

func TestTimersWithoutOnTimerAreDropped(t *testing.T) {
	env := newEnv(1)
	out := strom.Collect(strom.KeyedProcessFunc(strom.KeyBy(strom.FromSlice(env, rangeSlice(10)), func(v int) int { return v }),
		func(ctx *strom.KeyedContext[int, int], v int) error {
			ctx.RegisterEventTimeTimer(int64(v))
			ctx.Collect(v)
			return nil
		}))
	mustRun(t, env, "no OnTimer")
	require.ElementsMatch(t, rangeSlice(10), out.Values())
}

type watermarkTimer struct{}

func (watermarkTimer) ProcessElement(ctx *strom.KeyedContext[int, firing], v int) error {
	ctx.RegisterEventTimeTimer(int64(v))
	return nil
}

func (watermarkTimer) OnTimer(ctx *strom.KeyedContext[int, firing], ts int64) error {
	ctx.Collect(firing{Key: ctx.Key(), Timer: ts, Watermark: ctx.CurrentWatermark()})
	return nil
}

// liveSink collects records of a running (unbounded) job.
type liveSink[T any] struct {
	mu   sync.Mutex
	vals []T
}

func (l *liveSink[T]) add(v T) error {
	l.mu.Lock()
	l.vals = append(l.vals, v)
	l.mu.Unlock()
	return nil
}

func (l *liveSink[T]) values() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.vals...)
}

// runUntil runs an unbounded job until cond holds, then cancels it.
func runUntil(t *testing.T, env *strom.Environment, name string, cond func() bool) {
	t.Helper()
	jc, err := env.ExecuteAsync(context.Background(), name)
	require.NoError(t, err)
	defer jc.Close()
	require.Eventually(t, func() bool {
		select {
		case <-jc.Done():
			return true
		default:
		}
		return cond()
	}, 30*time.Second, time.Millisecond)
	jc.Cancel()
	_, err = jc.Wait(context.Background())
	require.ErrorIs(t, err, strom.ErrJobCanceled)
}

type procTimerReport struct {
	Key             int64
	Timer, Now      int64
	HasTs           bool
	Domain          strom.TimeDomain
	TTLGone, Plain  bool
	SecondTimerSeen bool
}

// procTimers registers a processing-time timer on each key's first record;
// when it fires it sleeps 20× the TTL of a state written with the record
// and checks that state has expired.
type procTimers struct {
	short state.ValueState[int64]
	plain state.ValueState[int64]
	fired state.ValueState[int]
}

func (f *procTimers) Open(ctx *strom.KeyedContext[int64, procTimerReport]) error {
	var err1, err2, err3 error
	f.short, err1 = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "short", TTL: state.TTL{TTL: time.Millisecond}})
	f.plain, err2 = state.GetValue(ctx, state.ValueDescriptor[int64]{Name: "plain"})
	f.fired, err3 = state.GetValue(ctx, state.ValueDescriptor[int]{Name: "fired"})
	return errors.Join(err1, err2, err3)
}

func (f *procTimers) ProcessElement(ctx *strom.KeyedContext[int64, procTimerReport], v int64) error {
	if _, seen := f.plain.Value(); seen {
		return nil
	}
	f.plain.Update(v)
	f.short.Update(v)
	now := ctx.CurrentProcessingTime()
	ctx.RegisterProcessingTimeTimer(now + 2)
	ctx.RegisterProcessingTimeTimer(now + 2) // deduplicated
	ctx.RegisterProcessingTimeTimer(now + 1000000)
	ctx.DeleteProcessingTimeTimer(now + 1000000) // never fires
	return nil
}

func (f *procTimers) OnTimer(ctx *strom.KeyedContext[int64, procTimerReport], ts int64) error {
	n, _ := f.fired.Value()
	f.fired.Update(n + 1)
	time.Sleep(20 * time.Millisecond)
	_, short := f.short.Value()
	_, plain := f.plain.Value()
	_, hasTs := ctx.Timestamp()
	ctx.Collect(procTimerReport{Key: ctx.Key(), Timer: ts, Now: ctx.CurrentProcessingTime(), HasTs: hasTs, Domain: ctx.TimeDomain(),
		TTLGone: !short, Plain: plain, SecondTimerSeen: n > 0})
	return nil
}

func TestProcessingTimeTimersAndTTL(t *testing.T) {
	env := newEnv(2)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i % 4 }, datagen.RatePerSecond(500))
	out := &liveSink[procTimerReport]{}
	strom.SinkFunc(strom.KeyedProcess(strom.KeyBy(gen, func(v int64) int64 { return v }),
		func() strom.KeyedProcessFunction[int64, int64, procTimerReport] { return &procTimers{} }), out.add)
	runUntil(t, env, "processing timers", func() bool { return len(out.values()) >= 4 })
	got := out.values()
	sort.Slice(got, func(i, j int) bool { return got[i].Key < got[j].Key })
	require.Len(t, got, 4, "one timer per key fires, once")
	for i, r := range got {
		require.Equal(t, int64(i), r.Key)
		require.Equal(t, strom.ProcessingTime, r.Domain)
		require.False(t, r.HasTs, "a processing-time timer has no event timestamp")
		require.GreaterOrEqual(t, r.Now, r.Timer+20, "it fired after its time (and slept 20ms)")
		require.True(t, r.TTLGone, "state with a 1ms TTL expired")
		require.True(t, r.Plain, "state without TTL remains")
		require.False(t, r.SecondTimerSeen)
	}
}

var oddTag = strom.NewOutputTag[string]("odd")
var unusedTag = strom.NewOutputTag[int]("unused")

func TestSideOutputs(t *testing.T) {
	for _, p := range []int{1, 3} {
		env := newEnv(p)
		keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(500)), func(v int) int { return v % 11 })
		main := strom.KeyedProcessFunc(keyed, func(ctx *strom.KeyedContext[int, int], v int) error {
			if v%2 == 1 {
				oddTag.EmitAt(ctx, fmt.Sprint(v), int64(v))
				unusedTag.EmitAt(ctx, v, 0) // no stream takes it: dropped
				return nil
			}
			ctx.CollectAt(v, int64(v))
			return nil
		})
		evens := strom.Collect(main)
		odds := strom.Collect(strom.Map(strom.SideOutput(main, oddTag), func(s string) string { return "odd:" + s }).Parallelism(2))
		mustRun(t, env, "side outputs")
		var wantEven, wantOdd []int
		var wantOddS []string
		for v := range 500 {
			if v%2 == 0 {
				wantEven = append(wantEven, v)
			} else {
				wantOdd = append(wantOdd, v)
				wantOddS = append(wantOddS, fmt.Sprint("odd:", v))
			}
		}
		require.ElementsMatch(t, wantEven, evens.Values())
		require.ElementsMatch(t, wantOddS, odds.Values())
		ts := odds.Timestamps()
		vals := odds.Values()
		for i := range vals {
			require.Equal(t, "odd:"+fmt.Sprint(ts[i]), vals[i], "side outputs carry the emitted timestamp")
		}
		_ = wantOdd
	}
	require.Equal(t, "odd", oddTag.ID())
}

type order struct {
	ID     int
	Amount int
}

type payment struct {
	OrderID int
	Paid    int
}

type matched struct {
	ID, Amount, Paid int
}

// matcher pairs orders with payments, whichever arrives first: both inputs
// share the key's state.
type matcher struct {
	pendingOrder   state.ValueState[order]
	pendingPayment state.ValueState[payment]
}

func (m *matcher) Open(ctx *strom.KeyedContext[int, matched]) error {
	var err1, err2 error
	m.pendingOrder, err1 = state.GetValue(ctx, state.ValueDescriptor[order]{Name: "order"})
	m.pendingPayment, err2 = state.GetValue(ctx, state.ValueDescriptor[payment]{Name: "payment"})
	return errors.Join(err1, err2)
}

func (m *matcher) ProcessElement1(ctx *strom.KeyedContext[int, matched], o order) error {
	if ctx.Key() != o.ID {
		return fmt.Errorf("order %d under key %d", o.ID, ctx.Key())
	}
	if p, ok := m.pendingPayment.Value(); ok {
		m.pendingPayment.Clear()
		ctx.Collect(matched{o.ID, o.Amount, p.Paid})
		return nil
	}
	m.pendingOrder.Update(o)
	return nil
}

func (m *matcher) ProcessElement2(ctx *strom.KeyedContext[int, matched], p payment) error {
	if o, ok := m.pendingOrder.Value(); ok {
		m.pendingOrder.Clear()
		ctx.Collect(matched{o.ID, o.Amount, p.Paid})
		return nil
	}
	m.pendingPayment.Update(p)
	return nil
}

func TestCoProcessSharesKeyedState(t *testing.T) {
	const n = 2000
	var orders []order
	var payments []payment
	for i := range n {
		orders = append(orders, order{ID: i, Amount: i * 10})
		// Payments arrive in another order: some before their order.
		j := (i * 7) % n
		payments = append(payments, payment{OrderID: j, Paid: j * 10})
	}
	var want []matched
	for i := range n {
		want = append(want, matched{i, i * 10, i * 10})
	}
	for _, p := range []int{1, 2, 4} {
		env := newEnv(p)
		o := strom.KeyBy(strom.FromSlice(env, orders), func(o order) int { return o.ID })
		pay := strom.KeyBy(strom.FromSlice(env, payments).Parallelism(1), func(p payment) int { return p.OrderID })
		out := strom.Collect(strom.KeyedCoProcess(strom.Connect(o, pay), func() strom.KeyedCoProcessFunction[int, order, payment, matched] { return &matcher{} }))
		res := mustRun(t, env, "coprocess")
		got := out.Values()
		slices.SortFunc(got, func(a, b matched) int { return a.ID - b.ID })
		require.Equal(t, want, got, "parallelism %d", p)
		co, ok := res.Operator("KeyedCoProcess")
		require.True(t, ok)
		require.Equal(t, int64(2*n), co.RecordsIn)
		require.Equal(t, p, co.Parallelism)
	}
}

// coTimers checks that KeyedCoProcess has timers too, and takes the minimum
// watermark of both inputs.
type coTimers struct{}

func (coTimers) ProcessElement1(ctx *strom.KeyedContext[int, firing], v int) error {
	if v < 5 {
		// Only before the timer's time: a timer registered once the
		// watermark has passed it fires again on the next watermark.
		ctx.RegisterEventTimeTimer(5)
	}
	return nil
}
func (coTimers) ProcessElement2(ctx *strom.KeyedContext[int, firing], v string) error { return nil }
func (coTimers) OnTimer(ctx *strom.KeyedContext[int, firing], ts int64) error {
	ctx.Collect(firing{Key: ctx.Key(), Timer: ts, Watermark: ctx.CurrentWatermark()})
	return nil
}

func TestCoProcessTimers(t *testing.T) {
	env := newEnv(1)
	a := strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(100)),
		strom.CustomWatermarks[int](func() strom.WatermarkGenerator { return punctuated{} }).WithTimestamps(func(v int) int64 { return int64(v) }))
	b := strom.FromElements(env, "x") // no watermarks until its end
	out := strom.Collect(strom.KeyedCoProcess(strom.Connect(strom.KeyBy(a, func(v int) int { return v % 2 }), strom.KeyBy(b, func(string) int { return 0 })),
		func() strom.KeyedCoProcessFunction[int, int, string, firing] { return coTimers{} }))
	mustRun(t, env, "co timers")
	got := out.Values()
	require.Len(t, got, 2)
	for _, f := range got {
		require.Equal(t, int64(5), f.Timer)
		require.GreaterOrEqual(t, f.Watermark, int64(5))
	}
}
