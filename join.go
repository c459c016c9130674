package strom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/window"
)

// joinBuf is the state of one key and window of a window join: the records
// of both inputs.
type joinBuf[A, B any] struct {
	as []A
	bs []B
}

type windowJoinOp[A, B any, K comparable, OUT any] struct {
	base[OUT]
	j     JoinWindowed[A, B, K]
	join  func(A, B) OUT
	core  windowCore[K, joinBuf[A, B]]
	addA  func(*joinBuf[A, B], A, int64, bool)
	addB  func(*joinBuf[A, B], B, int64, bool)
	late1 runtime.Output[A]
	late2 runtime.Output[B]
	sides []eventOutput
}

func (o *windowJoinOp[A, B, K, OUT]) Open(ctx *runtime.Context) error {
	o.addA = func(s *joinBuf[A, B], v A, _ int64, _ bool) { s.as = append(s.as, v) }
	o.addB = func(s *joinBuf[A, B], v B, _ int64, _ bool) { s.bs = append(s.bs, v) }
	if o.j.lateTag1 != "" {
		o.late1, _ = ctx.SideOutput(o.j.lateTag1).(runtime.Output[A])
	}
	if o.j.lateTag2 != "" {
		o.late2, _ = ctx.SideOutput(o.j.lateTag2).(runtime.Output[B])
	}
	o.sides = consumedSides(ctx, o.sides[:0])
	spec := windowSpec{assigner: o.j.assigner, trigger: o.j.effectiveTrigger(), lateness: o.j.lateness}
	merge := func(dst, src *joinBuf[A, B]) {
		dst.as = append(dst.as, src.as...)
		dst.bs = append(dst.bs, src.bs...)
	}
	o.core.stateCodec = joinBufCodecFor[A, B]
	return o.core.open(ctx, o.j.a.newBackend(ctx), spec, merge, func(_ K, w window.TimeWindow, s *joinBuf[A, B]) {
		ts := w.MaxTimestamp()
		for _, a := range s.as {
			for _, b := range s.bs {
				o.out.Collect(o.join(a, b), ts)
			}
		}
	})
}

func (o *windowJoinOp[A, B, K, OUT]) ProcessElement1(v A, ts int64) {
	o.core.backend.SetCurrentKey(o.j.a.key(v))
	if addElement(&o.core, v, ts, o.addA) && o.core.isElementLate(ts) {
		if o.late1 != nil {
			o.late1.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *windowJoinOp[A, B, K, OUT]) ProcessElement2(v B, ts int64) {
	o.core.backend.SetCurrentKey(o.j.b.key(v))
	if addElement(&o.core, v, ts, o.addB) && o.core.isElementLate(ts) {
		if o.late2 != nil {
			o.late2.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *windowJoinOp[A, B, K, OUT]) ProcessWatermark(wm int64) {
	o.core.timers.AdvanceWatermark(wm)
	o.out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *windowJoinOp[A, B, K, OUT]) ProcessIdle() {
	o.out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *windowJoinOp[A, B, K, OUT]) Finish() error { o.core.finish(); return nil }
func (o *windowJoinOp[A, B, K, OUT]) Close() error  { o.core.close(); return nil }

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
			return &windowJoinOp[A, B, K, OUT]{base: base[OUT]{out}, j: j, join: join}, nil
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

// tsOut is a Collector emitting with a set timestamp.
type tsOut[OUT any] struct {
	out runtime.Output[OUT]
	ts  int64
}

func (c *tsOut[OUT]) Collect(v OUT) { c.out.Collect(v, c.ts) }

// intervalBuf is one key's buffered records of one side of an interval
// join, sorted by timestamp (records mostly arrive in order, so inserting
// is an append).
type intervalBuf[V any] struct {
	ts   []int64
	vals []V
}

func (b *intervalBuf[V]) insert(ts int64, v V) {
	i := len(b.ts)
	for i > 0 && b.ts[i-1] > ts {
		i--
	}
	var zero V
	b.ts = append(b.ts, 0)
	b.vals = append(b.vals, zero)
	copy(b.ts[i+1:], b.ts[i:])
	copy(b.vals[i+1:], b.vals[i:])
	b.ts[i], b.vals[i] = ts, v
}

// from returns the index of the first record at or after ts.
func (b *intervalBuf[V]) from(ts int64) int {
	lo, hi := 0, len(b.ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.ts[m] < ts {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// dropUntil removes the records at or before ts.
func (b *intervalBuf[V]) dropUntil(ts int64) {
	n := b.from(ts + 1)
	var zero V
	for i := range n {
		b.vals[i] = zero
	}
	b.ts, b.vals = b.ts[n:], b.vals[n:]
}

type intervalJoinOp[A, B any, K comparable, OUT any] struct {
	base[OUT]
	a            Keyed[A, K]
	b            Keyed[B, K]
	lower, upper int64
	join         func(A, B, Collector[OUT]) error
	name         string
	rt           *runtime.Context
	backend      *statebackend.Keyed[K]
	left         *statebackend.Table[K, *intervalBuf[A]]
	right        *statebackend.Table[K, *intervalBuf[B]]
	timers       *runtime.Timers[K, bool] // namespace: true = left buffer
	coll         tsOut[OUT]
	dropped      int64
}

func (o *intervalJoinOp[A, B, K, OUT]) Open(ctx *runtime.Context) error {
	o.name, o.rt = ctx.OperatorName, ctx
	o.coll.out = o.out
	o.backend = o.a.newBackend(ctx)
	n := o.backend.Range().Len()
	o.left = statebackend.NewTable[K, *intervalBuf[A]](n)
	o.right = statebackend.NewTable[K, *intervalBuf[B]](n)
	o.left.SetValueCodecFunc(intervalBufCodecFor[A])
	o.right.SetValueCodecFunc(intervalBufCodecFor[B])
	if _, err := o.backend.Register("interval-join-left", o.left); err != nil {
		return err
	}
	if _, err := o.backend.Register("interval-join-right", o.right); err != nil {
		return err
	}
	o.timers = runtime.NewTimers[K, bool](o.backend, ctx.Time)
	o.timers.OnEventTime = o.cleanup
	o.timers.OnProcessingTime = func(runtime.Timer[K, bool]) {}
	_, err := o.backend.Register(runtime.TimersStateName, o.timers.State())
	return err
}

var errIntervalNoTimestamp = errors.New("interval join needs event timestamps: assign them with AssignTimestamps before the join")

// late reports whether a record can no longer be joined completely: the
// watermark has passed it, so the other side's partners may be gone.
func (o *intervalJoinOp[A, B, K, OUT]) late(side string, ts int64) bool {
	if ts == runtime.NoTimestamp {
		runtime.Fail(o.name, fmt.Errorf("%s input: record without timestamp: %w", side, errIntervalNoTimestamp))
	}
	if ts <= o.timers.CurrentWatermark() {
		o.dropped++
		return true
	}
	return false
}

func (o *intervalJoinOp[A, B, K, OUT]) emit(a A, b B, ts int64) {
	o.coll.ts = ts
	if err := o.join(a, b, &o.coll); err != nil {
		runtime.Fail(o.name, err)
	}
}

// bufferOf returns key's buffer in one side's table, creating it empty.
func bufferOf[K comparable, T any](t *statebackend.Table[K, *intervalBuf[T]], kg int, key K) *intervalBuf[T] {
	buf, ok := t.Get(kg, key)
	if !ok {
		buf = &intervalBuf[T]{}
		t.Put(kg, key, buf)
	}
	return buf
}

func (o *intervalJoinOp[A, B, K, OUT]) ProcessElement1(v A, ts int64) {
	if o.late("left", ts) {
		return
	}
	key := o.a.key(v)
	o.backend.SetCurrentKey(key)
	kg := o.backend.KeyGroupIndex()
	bufferOf(o.left, kg, key).insert(ts, v)
	if rb, ok := o.right.Get(kg, key); ok {
		hi := ts + o.upper
		for i := rb.from(ts + o.lower); i < len(rb.ts) && rb.ts[i] <= hi; i++ {
			o.emit(v, rb.vals[i], max(ts, rb.ts[i]))
		}
	}
	// Once the watermark passes ts+upper no right record can match v.
	o.timers.RegisterEventTime(true, ts+max(o.upper, 0))
}

func (o *intervalJoinOp[A, B, K, OUT]) ProcessElement2(v B, ts int64) {
	if o.late("right", ts) {
		return
	}
	key := o.b.key(v)
	o.backend.SetCurrentKey(key)
	kg := o.backend.KeyGroupIndex()
	bufferOf(o.right, kg, key).insert(ts, v)
	if lb, ok := o.left.Get(kg, key); ok {
		hi := ts - o.lower
		for i := lb.from(ts - o.upper); i < len(lb.ts) && lb.ts[i] <= hi; i++ {
			o.emit(lb.vals[i], v, max(ts, lb.ts[i]))
		}
	}
	// Once the watermark passes ts−lower no left record can match v.
	o.timers.RegisterEventTime(false, ts+max(-o.lower, 0))
}

// cleanup drops the records whose partners can no longer arrive. Timers
// fire in time order, so every record before the timer's one is already
// due too.
func (o *intervalJoinOp[A, B, K, OUT]) cleanup(t runtime.Timer[K, bool]) {
	kg := o.backend.KeyGroupIndex()
	if t.NS {
		if buf, ok := o.left.Get(kg, t.Key); ok {
			buf.dropUntil(t.TS - max(o.upper, 0))
			if len(buf.ts) == 0 {
				o.left.Delete(kg, t.Key)
			}
		}
		return
	}
	if buf, ok := o.right.Get(kg, t.Key); ok {
		buf.dropUntil(t.TS - max(-o.lower, 0))
		if len(buf.ts) == 0 {
			o.right.Delete(kg, t.Key)
		}
	}
}

func (o *intervalJoinOp[A, B, K, OUT]) ProcessWatermark(wm int64) {
	o.timers.AdvanceWatermark(wm)
	o.out.EmitWatermark(wm)
}

func (o *intervalJoinOp[A, B, K, OUT]) Close() error {
	if o.dropped > 0 && o.rt != nil {
		o.rt.Logger.Info("late records dropped", "count", o.dropped)
	}
	return nil
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
			return &intervalJoinOp[A, B, K, OUT]{base: base[OUT]{out}, a: a, b: b, lower: lo, upper: hi, join: join}, nil
		})
}

// ---- snapshot codecs of the join state ----------------------------------------

// joinBufCodecFor builds the codec of a window join's per-window buffers.
func joinBufCodecFor[A, B any]() (codec.Codec[joinBuf[A, B]], error) {
	ca, err := codec.For[[]A]()
	if err != nil {
		return nil, fmt.Errorf("no codec for the left input type %v: %w", reflect.TypeFor[A](), err)
	}
	cb, err := codec.For[[]B]()
	if err != nil {
		return nil, fmt.Errorf("no codec for the right input type %v: %w", reflect.TypeFor[B](), err)
	}
	return joinBufCodec[A, B]{ca, cb}, nil
}

// joinBufCodec encodes both sides' records as two slices.
type joinBufCodec[A, B any] struct {
	a codec.Codec[[]A]
	b codec.Codec[[]B]
}

func (c joinBufCodec[A, B]) Append(dst []byte, j joinBuf[A, B]) []byte {
	return c.b.Append(c.a.Append(dst, j.as), j.bs)
}

func (c joinBufCodec[A, B]) Decode(src []byte) (joinBuf[A, B], int, error) {
	as, n, err := c.a.Decode(src)
	if err != nil {
		return joinBuf[A, B]{}, 0, err
	}
	bs, m, err := c.b.Decode(src[n:])
	if err != nil {
		return joinBuf[A, B]{}, 0, err
	}
	return joinBuf[A, B]{as: as, bs: bs}, n + m, nil
}

// intervalBufCodecFor builds the codec of one side of an interval join.
func intervalBufCodecFor[V any]() (codec.Codec[*intervalBuf[V]], error) {
	c, err := codec.For[V]()
	if err != nil {
		return nil, fmt.Errorf("no codec for the interval join input type %v: %w", reflect.TypeFor[V](), err)
	}
	return intervalBufCodec[V]{c}, nil
}

// intervalBufCodec encodes a key's buffered records: uvarint n, then n ×
// (varint timestamp, record), in timestamp order.
type intervalBufCodec[V any] struct{ v codec.Codec[V] }

func (c intervalBufCodec[V]) Append(dst []byte, b *intervalBuf[V]) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b.ts)))
	for i, ts := range b.ts {
		dst = binary.AppendVarint(dst, ts)
		dst = c.v.Append(dst, b.vals[i])
	}
	return dst
}

func (c intervalBufCodec[V]) Decode(src []byte) (*intervalBuf[V], int, error) {
	n, off := binary.Uvarint(src)
	if off <= 0 || n > uint64(len(src)-off) {
		return nil, 0, fmt.Errorf("%w: interval buffer length", codec.ErrCorrupt)
	}
	b := &intervalBuf[V]{ts: make([]int64, n), vals: make([]V, n)}
	for i := range b.ts {
		ts, k := binary.Varint(src[off:])
		if k <= 0 {
			return nil, 0, fmt.Errorf("%w: timestamp of record %d", codec.ErrCorrupt, i)
		}
		off += k
		if i > 0 && ts < b.ts[i-1] {
			return nil, 0, fmt.Errorf("%w: record %d out of timestamp order", codec.ErrCorrupt, i)
		}
		v, k, err := c.v.Decode(src[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", i, err)
		}
		if k < 0 || k > len(src)-off {
			return nil, 0, fmt.Errorf("%w: record %d: codec overran its input", codec.ErrCorrupt, i)
		}
		off += k
		b.ts[i], b.vals[i] = ts, v
	}
	return b, off, nil
}
