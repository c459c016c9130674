package operator

import (
	"fmt"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
)

// KeyedFunction is what keyed process and co-process operators share: the
// timers of the subtask's keyed backend, timer dispatch to the user's
// OnTimer, and watermarks and idleness forwarded to the main and consumed
// side outputs. The API's operators embed it and add the context their
// functions see.
type KeyedFunction[K comparable, OUT any] struct {
	Out    runtime.Output[OUT]
	Name   string
	Timers *runtime.Timers[K, struct{}]
	// OnTimer, if set, runs the user's OnTimer for the timer at `at`; ts
	// is the timestamp the function's context shows (NoTimestamp for
	// processing time) and eventTime the timer's clock.
	OnTimer func(at, ts int64, eventTime bool) error
	// sides are the consumed side outputs: watermarks reach them too, so
	// event time advances for operators downstream of a side output.
	sides []eventOutput
}

// Setup creates the timers of backend b and registers them as its state,
// so they are snapshotted with it.
func (o *KeyedFunction[K, OUT]) Setup(ctx *runtime.Context, b *statebackend.Keyed[K]) error {
	o.Name = ctx.OperatorName
	o.sides = consumedSides(ctx, o.sides[:0])
	t := runtime.NewTimers[K, struct{}](b, ctx.Time)
	o.Timers = t
	t.OnEventTime = func(tm runtime.Timer[K, struct{}]) { o.fire(tm.TS, tm.TS, true) }
	t.OnProcessingTime = func(tm runtime.Timer[K, struct{}]) { o.fire(tm.TS, runtime.NoTimestamp, false) }
	_, err := b.Register(runtime.TimersStateName, t.State())
	return err
}

func (o *KeyedFunction[K, OUT]) fire(at, ts int64, eventTime bool) {
	if o.OnTimer == nil {
		return
	}
	// Processing-time timers fire from the task's timer service, outside
	// any guarded call: name this operator if OnTimer panics.
	defer runtime.Guard(o.Name)
	if err := o.OnTimer(at, ts, eventTime); err != nil {
		runtime.Fail(o.Name, fmt.Errorf("OnTimer: %w", err))
	}
}

func (o *KeyedFunction[K, OUT]) ProcessWatermark(wm int64) {
	o.Timers.AdvanceWatermark(wm)
	o.Out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *KeyedFunction[K, OUT]) ProcessIdle() {
	o.Out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *KeyedFunction[K, OUT]) Finish() error { return nil }
