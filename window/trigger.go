package window

import (
	"fmt"
	"time"
)

// TriggerResult is what a trigger decides for a window.
type TriggerResult uint8

const (
	// Continue does nothing.
	Continue TriggerResult = iota
	// Fire emits the window's contents (through the window function) and
	// keeps them, so a later firing emits them again with what arrived since.
	Fire
	// Purge drops the window's contents without emitting them. The window
	// itself (its trigger state and timers) lives on until it is cleaned up.
	Purge
	// FireAndPurge emits the contents, then drops them.
	FireAndPurge
)

// IsFire reports whether the result emits the window.
func (r TriggerResult) IsFire() bool { return r == Fire || r == FireAndPurge }

// IsPurge reports whether the result drops the window's contents.
func (r TriggerResult) IsPurge() bool { return r == Purge || r == FireAndPurge }

func (r TriggerResult) String() string {
	switch r {
	case Continue:
		return "CONTINUE"
	case Fire:
		return "FIRE"
	case Purge:
		return "PURGE"
	case FireAndPurge:
		return "FIRE_AND_PURGE"
	}
	return fmt.Sprintf("TriggerResult(%d)", uint8(r))
}

// TriggerContext is what a trigger sees of the window operator, scoped to
// the current key and window. Timers registered here call the trigger's
// OnEventTime or OnProcessingTime for this key and window; registering the
// same time twice fires once.
//
// Trigger state is a set of named int64 values per key and window — enough
// for counters, pending fire times and similar bookkeeping. The window
// operator stores it in its keyed state backend; the trigger clears it in
// Clear (the operator also drops whatever is left when the window is
// cleaned up).
type TriggerContext interface {
	// CurrentWatermark is the operator's event time.
	CurrentWatermark() int64
	// CurrentProcessingTime is the wall clock in epoch ms.
	CurrentProcessingTime() int64
	RegisterEventTimeTimer(ts int64)
	DeleteEventTimeTimer(ts int64)
	RegisterProcessingTimeTimer(ts int64)
	DeleteProcessingTimeTimer(ts int64)
	// State returns the trigger state name of the current key and window.
	State(name string) (int64, bool)
	// SetState sets the trigger state name.
	SetState(name string, v int64)
	// ClearState removes the trigger state name.
	ClearState(name string)
}

// OnMergeContext is the context of Trigger.OnMerge: the window is the merge
// result, and MergeState folds the state of the windows merged into it.
type OnMergeContext interface {
	TriggerContext
	// MergeState combines the trigger state name of every merged window
	// (and of the result window, if it has some) with merge and stores it
	// on the result window.
	MergeState(name string, merge func(a, b int64) int64)
}

// Trigger decides when a window fires (Flink's Trigger). All methods run on
// the operator's task goroutine with the window's key current; triggers
// must keep per-window data in the context's state, not in fields, since one
// trigger value serves every key and window of a subtask (and of all
// subtasks: it must not be mutated).
type Trigger interface {
	// OnElement is called for every record added to window w; ts is the
	// record's timestamp.
	OnElement(ts int64, w TimeWindow, ctx TriggerContext) TriggerResult
	// OnEventTime is called when an event-time timer registered through ctx
	// fires (time is the timer's time).
	OnEventTime(time int64, w TimeWindow, ctx TriggerContext) TriggerResult
	// OnProcessingTime is called when a processing-time timer fires.
	OnProcessingTime(time int64, w TimeWindow, ctx TriggerContext) TriggerResult
	// CanMerge reports whether the trigger supports merging windows.
	CanMerge() bool
	// OnMerge is called when windows merged into w: the trigger moves its
	// timers and state to w (the merged windows are cleared right after).
	OnMerge(w TimeWindow, ctx OnMergeContext)
	// Clear removes the trigger's timers and state of window w; it is
	// called when the window is cleaned up or merged away.
	Clear(w TimeWindow, ctx TriggerContext)
}

type eventTimeTrigger struct{}

// EventTimeTrigger fires a window once the watermark passes its end
// (MaxTimestamp), and again for every record that arrives for it after that
// within the allowed lateness. It is the default trigger of event-time
// assigners.
func EventTimeTrigger() Trigger { return eventTimeTrigger{} }

func (eventTimeTrigger) OnElement(_ int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	if w.MaxTimestamp() <= ctx.CurrentWatermark() {
		return Fire // late, within the allowed lateness: fire at once
	}
	ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	return Continue
}

func (eventTimeTrigger) OnEventTime(t int64, w TimeWindow, _ TriggerContext) TriggerResult {
	if t == w.MaxTimestamp() {
		return Fire
	}
	return Continue
}

func (eventTimeTrigger) OnProcessingTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Continue
}

func (eventTimeTrigger) CanMerge() bool { return true }

func (eventTimeTrigger) OnMerge(w TimeWindow, ctx OnMergeContext) {
	if w.MaxTimestamp() > ctx.CurrentWatermark() {
		ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	}
}

func (eventTimeTrigger) Clear(w TimeWindow, ctx TriggerContext) {
	ctx.DeleteEventTimeTimer(w.MaxTimestamp())
}

func (eventTimeTrigger) String() string { return "EventTimeTrigger" }

type processingTimeTrigger struct{}

// ProcessingTimeTrigger fires a window once the wall clock passes its end.
// It is the default trigger of processing-time assigners.
func ProcessingTimeTrigger() Trigger { return processingTimeTrigger{} }

func (processingTimeTrigger) OnElement(_ int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
	return Continue
}

func (processingTimeTrigger) OnEventTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Continue
}

func (processingTimeTrigger) OnProcessingTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Fire
}

func (processingTimeTrigger) CanMerge() bool { return true }

func (processingTimeTrigger) OnMerge(w TimeWindow, ctx OnMergeContext) {
	if w.MaxTimestamp() > ctx.CurrentProcessingTime() {
		ctx.RegisterProcessingTimeTimer(w.MaxTimestamp())
	}
}

func (processingTimeTrigger) Clear(w TimeWindow, ctx TriggerContext) {
	ctx.DeleteProcessingTimeTimer(w.MaxTimestamp())
}

func (processingTimeTrigger) String() string { return "ProcessingTimeTrigger" }

const countState = "count"

type countTrigger struct{ n int64 }

// CountTrigger fires a window every n records (and never on time). The
// contents stay unless it is wrapped in Purging; the window is still
// cleaned up, without firing, when time passes its end plus the allowed
// lateness. Counts of merging windows add up.
func CountTrigger(n int64) Trigger { return countTrigger{n: max(n, 1)} }

func (t countTrigger) OnElement(_ int64, _ TimeWindow, ctx TriggerContext) TriggerResult {
	c, _ := ctx.State(countState)
	c++
	if c >= t.n {
		ctx.ClearState(countState)
		return Fire
	}
	ctx.SetState(countState, c)
	return Continue
}

func (countTrigger) OnEventTime(int64, TimeWindow, TriggerContext) TriggerResult { return Continue }

func (countTrigger) OnProcessingTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Continue
}

func (countTrigger) CanMerge() bool { return true }

func (countTrigger) OnMerge(_ TimeWindow, ctx OnMergeContext) {
	ctx.MergeState(countState, func(a, b int64) int64 { return a + b })
}

func (countTrigger) Clear(_ TimeWindow, ctx TriggerContext) { ctx.ClearState(countState) }

func (t countTrigger) String() string { return fmt.Sprintf("CountTrigger(%d)", t.n) }

type purgingTrigger struct{ t Trigger }

// Purging turns every Fire of t into FireAndPurge, so each firing emits
// only what arrived since the previous one.
func Purging(t Trigger) Trigger { return purgingTrigger{t: t} }

func purge(r TriggerResult) TriggerResult {
	if r.IsFire() {
		return FireAndPurge
	}
	return r
}

func (p purgingTrigger) OnElement(ts int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	return purge(p.t.OnElement(ts, w, ctx))
}

func (p purgingTrigger) OnEventTime(t int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	return purge(p.t.OnEventTime(t, w, ctx))
}

func (p purgingTrigger) OnProcessingTime(t int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	return purge(p.t.OnProcessingTime(t, w, ctx))
}

func (p purgingTrigger) CanMerge() bool                           { return p.t.CanMerge() }
func (p purgingTrigger) OnMerge(w TimeWindow, ctx OnMergeContext) { p.t.OnMerge(w, ctx) }
func (p purgingTrigger) Clear(w TimeWindow, ctx TriggerContext)   { p.t.Clear(w, ctx) }
func (p purgingTrigger) String() string                           { return fmt.Sprintf("PurgingTrigger(%v)", p.t) }

const fireTimeState = "continuous-fire-time"

func minInt64(a, b int64) int64 { return min(a, b) }

type continuousEventTimeTrigger struct{ interval int64 }

// ContinuousEventTimeTrigger fires a window early every interval of event
// time (at multiples of interval, as the watermark passes them) and once
// more at its end: Flink's ContinuousEventTimeTrigger, for early results of
// long windows. Wrap it in Purging to emit only the records since the
// previous firing.
func ContinuousEventTimeTrigger(interval time.Duration) Trigger {
	return continuousEventTimeTrigger{interval: max(interval.Milliseconds(), 1)}
}

func (t continuousEventTimeTrigger) OnElement(ts int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	if w.MaxTimestamp() <= ctx.CurrentWatermark() {
		return Fire
	}
	ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	if _, ok := ctx.State(fireTimeState); !ok {
		start := StartWithOffset(ts, 0, t.interval)
		next := min(start+t.interval, w.MaxTimestamp())
		ctx.SetState(fireTimeState, next)
		ctx.RegisterEventTimeTimer(next)
	}
	return Continue
}

func (t continuousEventTimeTrigger) OnEventTime(tm int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	if tm == w.MaxTimestamp() {
		return Fire
	}
	if ft, ok := ctx.State(fireTimeState); ok && ft == tm {
		next := min(tm+t.interval, w.MaxTimestamp())
		ctx.SetState(fireTimeState, next)
		ctx.RegisterEventTimeTimer(next)
		return Fire
	}
	return Continue
}

func (continuousEventTimeTrigger) OnProcessingTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Continue
}

func (continuousEventTimeTrigger) CanMerge() bool { return true }

func (continuousEventTimeTrigger) OnMerge(w TimeWindow, ctx OnMergeContext) {
	ctx.MergeState(fireTimeState, minInt64)
	if ft, ok := ctx.State(fireTimeState); ok {
		ctx.RegisterEventTimeTimer(ft)
	}
	if w.MaxTimestamp() > ctx.CurrentWatermark() {
		ctx.RegisterEventTimeTimer(w.MaxTimestamp())
	}
}

func (continuousEventTimeTrigger) Clear(w TimeWindow, ctx TriggerContext) {
	ctx.DeleteEventTimeTimer(w.MaxTimestamp())
	if ft, ok := ctx.State(fireTimeState); ok {
		ctx.DeleteEventTimeTimer(ft)
		ctx.ClearState(fireTimeState)
	}
}

func (t continuousEventTimeTrigger) String() string {
	return fmt.Sprintf("ContinuousEventTimeTrigger(%d)", t.interval)
}

type continuousProcessingTimeTrigger struct{ interval int64 }

// ContinuousProcessingTimeTrigger fires a window every interval of wall
// clock time (at multiples of interval) and at its end (when its end is
// reached by processing time).
func ContinuousProcessingTimeTrigger(interval time.Duration) Trigger {
	return continuousProcessingTimeTrigger{interval: max(interval.Milliseconds(), 1)}
}

func (t continuousProcessingTimeTrigger) OnElement(_ int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	if _, ok := ctx.State(fireTimeState); !ok {
		now := ctx.CurrentProcessingTime()
		next := min(StartWithOffset(now, 0, t.interval)+t.interval, w.MaxTimestamp())
		ctx.SetState(fireTimeState, next)
		ctx.RegisterProcessingTimeTimer(next)
	}
	return Continue
}

func (continuousProcessingTimeTrigger) OnEventTime(int64, TimeWindow, TriggerContext) TriggerResult {
	return Continue
}

func (t continuousProcessingTimeTrigger) OnProcessingTime(tm int64, w TimeWindow, ctx TriggerContext) TriggerResult {
	ft, ok := ctx.State(fireTimeState)
	if !ok || ft != tm {
		return Continue
	}
	if tm < w.MaxTimestamp() {
		next := min(tm+t.interval, w.MaxTimestamp())
		ctx.SetState(fireTimeState, next)
		ctx.RegisterProcessingTimeTimer(next)
	} else {
		ctx.ClearState(fireTimeState)
	}
	return Fire
}

func (continuousProcessingTimeTrigger) CanMerge() bool { return true }

func (continuousProcessingTimeTrigger) OnMerge(_ TimeWindow, ctx OnMergeContext) {
	ctx.MergeState(fireTimeState, minInt64)
	if ft, ok := ctx.State(fireTimeState); ok {
		ctx.RegisterProcessingTimeTimer(ft)
	}
}

func (continuousProcessingTimeTrigger) Clear(_ TimeWindow, ctx TriggerContext) {
	if ft, ok := ctx.State(fireTimeState); ok {
		ctx.DeleteProcessingTimeTimer(ft)
		ctx.ClearState(fireTimeState)
	}
}

func (t continuousProcessingTimeTrigger) String() string {
	return fmt.Sprintf("ContinuousProcessingTimeTrigger(%d)", t.interval)
}
