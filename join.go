package strom

import (
	"time"

	"github.com/strom-dev/strom/internal/operator"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/window"
)

// JoinWindowed is two keyed streams joined over windows (Flink's
// a.join(b).where(...).equalTo(...).window(assigner)), made by
// WindowJoinOf; WindowJoinApply runs the join. Its configuration methods
// return a modified copy, so they chain:
//
//	j := strom.WindowJoinOf(persons, auctions, window.Tumbling(10*time.Second)).
//		AllowedLateness(5 * time.Second).
//		SideOutputLateData1(latePersons).
//		SideOutputLateData2(lateAuctions)
//	joined := strom.WindowJoinApply(j, func(p Person, a Auction) Row { ... })
//
// For every key and window, the join function is called for every pair
// (a, b) of records of that key that both fall into the window, and its
// results are emitted with timestamp window.MaxTimestamp() when the window
// fires. A pair that shares several windows (sliding windows) is joined
// once per window; a window with records on one side only emits nothing.
//
// It is one two-input window operator (no tagged union, so no boxing): both
// inputs are hash-partitioned by key into the same subtask, each record is
// added to its side's buffer of every window it belongs to, and the window
// fires with the assigner's default trigger unless Trigger sets another
// (event-time windows fire when the watermark — the minimum of both
// inputs' — passes their end; merging session windows work too). Like
// WindowProcess, it buffers every record until its window is cleaned up.
//
// Lateness works as for Windowed: an event-time window is kept for the
// allowed lateness after the watermark passed its end, and a record
// arriving for it meanwhile fires it again with the default trigger. As in
// Flink (whose window join is a CoGroup over such a window), a firing joins
// the window's whole contents: the pairs of the earlier firings are emitted
// again together with the new ones, so downstream sees a complete, updated
// join per firing. A record whose windows are all cleaned up is late data:
// it goes to its side's late-data side output if one is set, else it is
// dropped and counted (logged when the operator closes).
type JoinWindowed[A, B any, K comparable] struct {
	a        Keyed[A, K]
	b        Keyed[B, K]
	assigner window.Assigner
	trigger  window.Trigger
	lateness int64
	lateTag1 string
	lateTag2 string
	name     string
}

// WindowJoinOf joins two keyed streams with the same key type over the
// windows of assigner; run the join with WindowJoinApply.
func WindowJoinOf[A, B any, K comparable](a Keyed[A, K], b Keyed[B, K], assigner window.Assigner) JoinWindowed[A, B, K] {
	env := a.stream.env
	if a.stream.env != b.stream.env {
		env.fail(errorf("WindowJoin: streams belong to different environments"))
	}
	if assigner == nil {
		env.fail(errorf("WindowJoin: nil assigner"))
	} else if err := validate(assigner); err != nil {
		env.fail(errorf("WindowJoin: %w", err))
	}
	return JoinWindowed[A, B, K]{a: a, b: b, assigner: assigner}
}

// Trigger replaces the assigner's default trigger (see window.Trigger).
// With merging (session) windows the trigger must support merging.
func (j JoinWindowed[A, B, K]) Trigger(t window.Trigger) JoinWindowed[A, B, K] {
	if t == nil {
		j.a.stream.env.fail(errorf("WindowJoin: nil trigger"))
		return j
	}
	j.trigger = t
	return j
}

// AllowedLateness keeps event-time windows (and their records) for d
// after the watermark passed their end; a record arriving for such a
// window fires its join again. It has no effect on processing-time
// windows. The default is 0.
func (j JoinWindowed[A, B, K]) AllowedLateness(d time.Duration) JoinWindowed[A, B, K] {
	if d < 0 {
		j.a.stream.env.fail(errorf("WindowJoin: allowed lateness %v must not be negative", d))
		return j
	}
	j.lateness = wholeMillis(j.a.stream.env, "WindowJoin: allowed lateness", d)
	return j
}

// SideOutputLateData1 sends records of the first input that arrive after
// all their windows were cleaned up to the side output tag, with their
// timestamps, instead of dropping them.
func (j JoinWindowed[A, B, K]) SideOutputLateData1(tag OutputTag[A]) JoinWindowed[A, B, K] {
	j.lateTag1 = tag.id
	return j
}

// SideOutputLateData2 does the same for the second input's late records.
func (j JoinWindowed[A, B, K]) SideOutputLateData2(tag OutputTag[B]) JoinWindowed[A, B, K] {
	j.lateTag2 = tag.id
	return j
}

// Name names the join operator (default "WindowJoin").
func (j JoinWindowed[A, B, K]) Name(name string) JoinWindowed[A, B, K] {
	j.name = name
	return j
}

func (j JoinWindowed[A, B, K]) effectiveTrigger() window.Trigger {
	if j.trigger != nil {
		return j.trigger
	}
	if j.assigner == nil {
		return window.EventTimeTrigger()
	}
	return j.assigner.DefaultTrigger()
}

// WindowJoinApply runs join on every pair of records of the same key and
// window of j (see JoinWindowed).
func WindowJoinApply[A, B any, K comparable, OUT any](j JoinWindowed[A, B, K], join func(a A, b B) OUT) Stream[OUT] {
	env := j.a.stream.env
	if join == nil {
		env.fail(errorf("WindowJoin: nil join function"))
	}
	name := j.name
	if name == "" {
		name = "WindowJoin"
	}
	if _, ok := j.assigner.(window.MergingAssigner); ok && !j.effectiveTrigger().CanMerge() {
		env.fail(errorf("WindowJoin %q: trigger %v cannot merge windows, but assigner %v merges them", name, j.effectiveTrigger(), j.assigner))
	}
	st := addTwoInputOperator(j.a.stream, j.b.stream, "windowjoin", name, runtime.Hash, j.a.kgFactory(), j.b.kgFactory(),
		func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.TwoInput[A, B], error) {
			return &operator.WindowJoinOp[A, B, K, OUT]{Out: out, KeyA: j.a.key, KeyB: j.b.key, NewBackend: j.a.newBackend,
				Assigner: j.assigner, Trigger: j.effectiveTrigger(), Lateness: j.lateness,
				LateTag1: j.lateTag1, LateTag2: j.lateTag2, Join: join}, nil
		})
	// Declare the late-data outputs' types, so reading one with a tag of
	// another type fails the build (see OutputTag).
	sides := map[string]runtime.TypeOps{}
	if j.lateTag1 != "" {
		sides[j.lateTag1] = runtime.Ops[A]{}
	}
	if j.lateTag2 != "" {
		if t, ok := sides[j.lateTag2]; ok && t != (runtime.TypeOps)(runtime.Ops[B]{}) {
			env.fail(errorf("WindowJoin %q: the late-data tags of both inputs have id %q but different types", name, j.lateTag2))
		}
		sides[j.lateTag2] = runtime.Ops[B]{}
	}
	if len(sides) > 0 {
		st.node().SideOutputTypes = sides
	}
	return st
}

// WindowJoin joins two keyed streams over windows with the default
// settings: WindowJoinApply(WindowJoinOf(a, b, assigner), join). See
// JoinWindowed.
func WindowJoin[A, B any, K comparable, OUT any](a Keyed[A, K], b Keyed[B, K], assigner window.Assigner, join func(a A, b B) OUT) Stream[OUT] {
	return WindowJoinApply(WindowJoinOf(a, b, assigner), join)
}

// IntervalJoin joins two keyed streams on event time (Flink's
// a.intervalJoin(b).between(lower, upper).process(join)): join is called
// for every pair of records a, b with the same key and
// b.ts ∈ [a.ts+lower, a.ts+upper] (both bounds inclusive; lower ≤ upper,
// either may be negative), and what it emits carries the timestamp
// max(a.ts, b.ts).
//
// Each side's records are buffered per key, sorted by timestamp, and
// dropped by an event-time timer as soon as the watermark (the minimum of
// both inputs') makes a match impossible: a left record at a.ts+max(upper,0),
// a right record at b.ts+max(−lower,0). A record at or behind the watermark
// is late — its partners may already be gone — and is dropped and counted
// (logged when the operator closes); Flink only drops records strictly
// behind the watermark, which can miss the pairs of a record exactly at it.
// Records need event timestamps (AssignTimestamps); one without fails the
// job.
func IntervalJoin[A, B any, K comparable, OUT any](a Keyed[A, K], b Keyed[B, K], lower, upper time.Duration, join func(a A, b B, out Collector[OUT]) error) Stream[OUT] {
	env := a.stream.env
	if a.stream.env != b.stream.env {
		env.fail(errorf("IntervalJoin: streams belong to different environments"))
	}
	if join == nil {
		env.fail(errorf("IntervalJoin: nil join function"))
	}
	lo, hi := wholeMillis(env, "IntervalJoin: lower bound", lower), wholeMillis(env, "IntervalJoin: upper bound", upper)
	if lo > hi {
		env.fail(errorf("IntervalJoin: lower bound %v is above upper bound %v", lower, upper))
	}
	return addTwoInputOperator(a.stream, b.stream, "intervaljoin", "IntervalJoin", runtime.Hash, a.kgFactory(), b.kgFactory(),
		func(_ *runtime.Context, out runtime.Output[OUT]) (runtime.TwoInput[A, B], error) {
			return &operator.IntervalJoinOp[A, B, K, OUT, Collector[OUT]]{Out: out, KeyA: a.key, KeyB: b.key, NewBackend: a.newBackend,
				Lower: lo, Upper: hi, Join: join}, nil
		})
}
