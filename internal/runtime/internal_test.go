package runtime

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Tests of unexported pieces: the watermark valve, the processing-time
// service and timer firing.

func TestValveMinimumOverChannels(t *testing.T) {
	v := newValve(3)
	_, ok := v.onWatermark(0, 10)
	require.False(t, ok, "channels 1 and 2 have no watermark yet")
	_, ok = v.onWatermark(1, 20)
	require.False(t, ok)
	wm, ok := v.onWatermark(2, 5)
	require.True(t, ok)
	require.Equal(t, int64(5), wm)

	wm, ok = v.onWatermark(2, 30)
	require.True(t, ok)
	require.Equal(t, int64(10), wm, "the minimum moves to channel 0")

	// A channel's watermark never goes back, and neither does the output.
	_, ok = v.onWatermark(0, 8)
	require.False(t, ok)
	require.Equal(t, int64(10), v.wm[0])
	_, ok = v.onWatermark(0, 10)
	require.False(t, ok, "an unchanged minimum is not emitted again")

	wm, ok = v.onWatermark(0, 25)
	require.True(t, ok)
	require.Equal(t, int64(20), wm)
}

func TestValveIdleChannelsExcluded(t *testing.T) {
	v := newValve(3)
	v.onWatermark(0, 100)
	v.onWatermark(1, 50)
	v.onWatermark(2, 10)
	require.Equal(t, int64(10), v.last)

	// Channel 2 goes idle: the minimum of the others is released.
	wm, emit, idle := v.onIdle(2)
	require.True(t, emit)
	require.Equal(t, int64(50), wm)
	require.False(t, idle)

	_, emit, idle = v.onIdle(1)
	require.True(t, emit, "only channel 0 is active")
	require.False(t, idle)
	require.Equal(t, int64(100), v.last)

	// All idle: the output becomes idle, once.
	_, emit, idle = v.onIdle(0)
	require.False(t, emit)
	require.True(t, idle)
	_, emit, idle = v.onIdle(0)
	require.False(t, emit)
	require.False(t, idle, "already idle")

	// A record reactivates its channel; a lower watermark there holds the
	// output back but never moves it backwards.
	require.True(t, v.onRecord(2))
	require.False(t, v.onRecord(2), "already active")
	require.False(t, v.outIdle)
	_, ok := v.onWatermark(2, 60)
	require.False(t, ok, "60 < 100 already emitted")
	wm, ok = v.onWatermark(2, 120)
	require.True(t, ok)
	require.Equal(t, int64(120), wm, "channels 0 and 1 are still idle")

	// A watermark reactivates an idle channel too.
	_, ok = v.onWatermark(1, 110)
	require.False(t, ok, "channel 1 is back at 110 < 120")
	require.False(t, v.idle[1])
	_, ok = v.onWatermark(1, 200)
	require.False(t, ok, "the minimum is still channel 2's 120")
	wm, ok = v.onWatermark(2, 150)
	require.True(t, ok)
	require.Equal(t, int64(150), wm, "channel 0 is still idle")
}

func TestValveEndedChannels(t *testing.T) {
	v := newValve(2)
	v.onWatermark(0, 5)
	v.onWatermark(1, 7)
	require.Equal(t, int64(5), v.last)
	require.False(t, v.allEnded())

	// An ended channel no longer holds the watermark back.
	wm, ok := v.onEnd(0)
	require.True(t, ok)
	require.Equal(t, int64(7), wm)
	require.False(t, v.allEnded())

	// The last channel ending emits nothing new: MaxWatermark, if any, came
	// in band before the end.
	_, ok = v.onEnd(1)
	require.False(t, ok)
	require.True(t, v.allEnded())

	// Idle plus ended: the live channels decide idleness.
	v = newValve(2)
	v.onEnd(0)
	_, _, idle := v.onIdle(1)
	require.True(t, idle)
}

type manualClock struct{ ms atomic.Int64 }

func (c *manualClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }
func (c *manualClock) set(ms int64)   { c.ms.Store(ms) }

func TestProcessingTimeService(t *testing.T) {
	clk := &manualClock{}
	clk.set(1000)
	pt := newProcessingTime(clk)
	require.Equal(t, int64(1000), pt.Now())
	_, ok := pt.next()
	require.False(t, ok)

	var fired []string
	pt.Register(1005, func(ts int64) { fired = append(fired, "b1005") })
	pt.Register(1003, func(ts int64) { fired = append(fired, "a1003") })
	pt.Register(1005, func(ts int64) {
		fired = append(fired, "c1005")
		// Due now: runs in the same fire.
		pt.Register(ts, func(int64) { fired = append(fired, "d1005") })
		pt.Register(ts+10, func(int64) { fired = append(fired, "e1015") })
	})
	next, ok := pt.next()
	require.True(t, ok)
	require.Equal(t, int64(1003), next)

	require.Zero(t, pt.fire(), "nothing due at 1000")
	clk.set(1004)
	require.Equal(t, 1, pt.fire())
	require.Equal(t, []string{"a1003"}, fired)

	clk.set(1010)
	require.Equal(t, 3, pt.fire())
	require.Equal(t, []string{"a1003", "b1005", "c1005", "d1005"}, fired, "time order, then registration order")
	next, _ = pt.next()
	require.Equal(t, int64(1015), next)
	clk.set(2000)
	require.Equal(t, 1, pt.fire())
	require.Equal(t, "e1015", fired[len(fired)-1])
	_, ok = pt.next()
	require.False(t, ok)

	require.NotNil(t, newProcessingTime(nil).clock, "nil clock means the wall clock")
}

type firedTimer struct {
	key string
	ts  int64
}

func newTestTimers(t *testing.T, clk Clock) (*statebackend.Keyed[string], *ProcessingTime, *Timers[string, struct{}], *[]firedTimer, *[]firedTimer) {
	h, err := keygroup.HasherFor[string](nil)
	require.NoError(t, err)
	b := statebackend.NewKeyed(h, 128, keygroup.RangeFor(128, 1, 0))
	pt := newProcessingTime(clk)
	tm := NewTimers[string, struct{}](b, pt)
	var ev, proc []firedTimer
	tm.OnEventTime = func(x Timer[string, struct{}]) {
		require.Equal(t, x.Key, b.CurrentKey(), "the timer's key is current while it fires")
		ev = append(ev, firedTimer{x.Key, x.TS})
	}
	tm.OnProcessingTime = func(x Timer[string, struct{}]) {
		require.Equal(t, x.Key, b.CurrentKey())
		proc = append(proc, firedTimer{x.Key, x.TS})
	}
	return b, pt, tm, &ev, &proc
}

func TestEventTimeTimers(t *testing.T) {
	b, _, tm, fired, _ := newTestTimers(t, &manualClock{})
	require.Equal(t, int64(MinWatermark), tm.CurrentWatermark())
	b.SetCurrentKey("a")
	tm.RegisterEventTime(struct{}{}, 10)
	tm.RegisterEventTime(struct{}{}, 10) // deduplicated
	tm.RegisterEventTime(struct{}{}, 20)
	b.SetCurrentKey("b")
	tm.RegisterEventTime(struct{}{}, 5)
	tm.RegisterEventTime(struct{}{}, 10) // same time, other key: a separate timer
	b.SetCurrentKey("c")
	tm.RegisterEventTime(struct{}{}, 15)
	tm.DeleteEventTime(struct{}{}, 15)
	tm.DeleteEventTime(struct{}{}, 99) // deleting a missing timer is a no-op
	require.Equal(t, 4, tm.NumEventTimers())

	tm.AdvanceWatermark(12)
	require.Equal(t, int64(12), tm.CurrentWatermark())
	require.Len(t, *fired, 3)
	require.Equal(t, firedTimer{"b", 5}, (*fired)[0])
	require.ElementsMatch(t, []firedTimer{{"a", 10}, {"b", 10}}, (*fired)[1:])
	require.Equal(t, 1, tm.NumEventTimers())

	// A deleted timer registered again fires once.
	b.SetCurrentKey("c")
	tm.RegisterEventTime(struct{}{}, 15)
	tm.DeleteEventTime(struct{}{}, 15)
	tm.RegisterEventTime(struct{}{}, 15)

	// Timers registered while firing at or before the watermark fire in the
	// same advance; later ones wait.
	*fired = nil
	tm.OnEventTime = func(x Timer[string, struct{}]) {
		*fired = append(*fired, firedTimer{x.Key, x.TS})
		if x.Key == "a" && x.TS == 20 {
			b.SetCurrentKey("x")
			tm.RegisterEventTime(struct{}{}, 18)
			tm.RegisterEventTime(struct{}{}, 30)
		}
	}
	tm.AdvanceWatermark(25)
	require.Equal(t, []firedTimer{{"c", 15}, {"a", 20}, {"x", 18}}, *fired)
	require.Equal(t, 1, tm.NumEventTimers())

	// A lower watermark fires nothing and does not move time back.
	tm.AdvanceWatermark(3)
	require.Equal(t, int64(25), tm.CurrentWatermark())
	require.Len(t, *fired, 3)

	tm.AdvanceWatermark(MaxWatermark)
	require.Equal(t, firedTimer{"x", 30}, (*fired)[3])
	require.Zero(t, tm.NumEventTimers())
}

func TestEventTimersFireInTimeOrder(t *testing.T) {
	b, _, tm, fired, _ := newTestTimers(t, &manualClock{})
	keys := []string{"k1", "k2", "k3", "k4"}
	for i := range 200 {
		b.SetCurrentKey(keys[i%4])
		tm.RegisterEventTime(struct{}{}, int64((i*7919)%1000))
	}
	tm.AdvanceWatermark(MaxWatermark)
	require.NotEmpty(t, *fired)
	for i := 1; i < len(*fired); i++ {
		require.LessOrEqual(t, (*fired)[i-1].ts, (*fired)[i].ts)
	}
}

func TestProcessingTimeTimers(t *testing.T) {
	clk := &manualClock{}
	clk.set(1000)
	b, pt, tm, _, fired := newTestTimers(t, clk)
	b.SetCurrentKey("a")
	tm.RegisterProcessingTime(struct{}{}, 1010)
	b.SetCurrentKey("b")
	tm.RegisterProcessingTime(struct{}{}, 1005)
	tm.RegisterProcessingTime(struct{}{}, 1005)
	require.Equal(t, 2, tm.NumProcessingTimers())
	next, ok := pt.next()
	require.True(t, ok)
	require.Equal(t, int64(1005), next, "the task wakes for the earliest timer")

	clk.set(1004)
	pt.fire()
	require.Empty(t, *fired)

	clk.set(1007)
	pt.fire()
	require.Equal(t, []firedTimer{{"b", 1005}}, *fired)
	next, ok = pt.next()
	require.True(t, ok)
	require.Equal(t, int64(1010), next)

	// Delete a's timer; c's fires, a's does not.
	b.SetCurrentKey("a")
	tm.DeleteProcessingTime(struct{}{}, 1010)
	b.SetCurrentKey("c")
	tm.RegisterProcessingTime(struct{}{}, 1020)
	clk.set(1030)
	for {
		if n := pt.fire(); n == 0 {
			break
		}
	}
	require.Equal(t, []firedTimer{{"b", 1005}, {"c", 1020}}, *fired)
	require.Zero(t, tm.NumProcessingTimers())

	// A timer registered by a firing timer for a time already passed fires
	// in the same round; one in the future is scheduled.
	*fired = nil
	tm.OnProcessingTime = func(x Timer[string, struct{}]) {
		*fired = append(*fired, firedTimer{x.Key, x.TS})
		if x.Key == "d" {
			b.SetCurrentKey("e")
			tm.RegisterProcessingTime(struct{}{}, 1030)
			tm.RegisterProcessingTime(struct{}{}, 1100)
		}
	}
	b.SetCurrentKey("d")
	tm.RegisterProcessingTime(struct{}{}, 1030)
	pt.fire()
	require.Equal(t, []firedTimer{{"d", 1030}, {"e", 1030}}, *fired)
	next, ok = pt.next()
	require.True(t, ok)
	require.Equal(t, int64(1100), next)
	clk.set(1100)
	pt.fire()
	require.Equal(t, firedTimer{"e", 1100}, (*fired)[2])
	require.Zero(t, tm.NumProcessingTimers())
}

// Cancelled registrations never run, and a timeout cancelled and
// re-registered over and over keeps the heap small.
func TestProcessingTimeCancel(t *testing.T) {
	clk := &manualClock{}
	pt := newProcessingTime(clk)
	var ran []int64
	keep := pt.Register(10, func(ts int64) { ran = append(ran, ts) })
	drop := pt.Register(5, func(ts int64) { ran = append(ran, -ts) })
	pt.Cancel(drop)
	next, ok := pt.next()
	require.True(t, ok)
	require.Equal(t, int64(10), next, "a cancelled registration is not the next time")
	var last uint64
	for i := range 10_000 {
		if last != 0 {
			pt.Cancel(last)
		}
		last = pt.Register(int64(1_000_000+i), func(ts int64) { ran = append(ran, ts) })
	}
	require.Less(t, len(pt.h), 200, "cancelled entries are compacted away")
	require.Equal(t, 2, pt.Pending())
	clk.set(2_000_000)
	require.Equal(t, 2, pt.fire())
	require.Equal(t, []int64{10, 1_000_000 + 9_999}, ran)
	require.Equal(t, 0, pt.Pending())
	_ = keep
}

// A cancelled task stops between two timers: a watermark or a processing
// time that makes thousands due does not run them all first.
func TestTimersStopBetweenFiringsOnCancel(t *testing.T) {
	clk := &manualClock{}
	b, pt, tm, fired, procFired := newTestTimers(t, clk)
	for i := range 10 {
		b.SetCurrentKey(string(rune('a' + i)))
		tm.RegisterEventTime(struct{}{}, int64(i))
		tm.RegisterProcessingTime(struct{}{}, int64(i))
	}
	cancelAfter := func(fired *[]firedTimer, n int, fn func(Timer[string, struct{}])) func(Timer[string, struct{}]) {
		return func(x Timer[string, struct{}]) {
			fn(x)
			if len(*fired) == n {
				pt.cancel.Set()
			}
		}
	}
	tm.OnEventTime = cancelAfter(fired, 3, tm.OnEventTime)
	require.Equal(t, canceled{}, recoverPanic(func() { tm.AdvanceWatermark(100) }))
	require.Len(t, *fired, 3, "the cancellation is seen before the fourth timer")

	pt.cancel = new(CancelFlag)
	tm.OnProcessingTime = cancelAfter(procFired, 2, tm.OnProcessingTime)
	clk.set(100)
	require.Equal(t, canceled{}, recoverPanic(func() { pt.fire() }))
	require.Len(t, *procFired, 2)
}

func recoverPanic(fn func()) (r any) {
	defer func() { r = recover() }()
	fn()
	return nil
}

// An input processor driven outside a task has no one to take a
// checkpoint: it drops barriers and cancel markers and reads on. Malformed
// events still fail it: an unknown kind, a barrier without a valid id.
func TestBarrierWithoutHandlerDroppedMalformedEventFails(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](2, 4, notify)
	p := NewOneInputProcessor([]*network.Channel[int]{ch}, OneInput[int](&nopOp{}))
	send := func(kind network.EventKind, value int64) {
		b, ok := ch.TryEvent()
		require.True(t, ok)
		b.Kind, b.Value = kind, value
		ch.Send(b)
	}
	send(network.Barrier, 7)
	send(network.CancelBarrier, 7)
	for range 2 {
		progress, done := p.Poll()
		require.True(t, progress)
		require.False(t, done)
	}
	require.False(t, p.Gate().Blocked(0))

	for _, c := range []struct {
		kind  network.EventKind
		value int64
		msg   string
	}{
		{network.EventKind(99), 0, "event kind 99"},
		{network.Barrier, 0, "checkpoint barrier with id 0"},
		{network.CancelBarrier, -1, "checkpoint cancel marker with id -1"},
	} {
		send(c.kind, c.value)
		r := recoverPanic(func() { p.Poll() })
		f, ok := r.(failure)
		require.True(t, ok, "panicked with %v", r)
		require.ErrorIs(t, f.err, ErrUnexpectedEvent)
		require.ErrorContains(t, f.err, c.msg)
	}
}

type nopOp struct{}

func (nopOp) Open(*Context) error       { return nil }
func (nopOp) Finish() error             { return nil }
func (nopOp) Close() error              { return nil }
func (nopOp) ProcessElement(int, int64) {}
func (nopOp) ProcessWatermark(int64)    {}
func (nopOp) ProcessIdle()              {}
