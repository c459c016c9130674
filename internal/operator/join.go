package operator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

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

// WindowJoinOp is the window join: one two-input window operator whose
// window state holds both inputs' records, joined pair by pair when the
// window fires. The exported fields are its configuration, set before Open.
type WindowJoinOp[A, B any, K comparable, OUT any] struct {
	Out        runtime.Output[OUT]
	KeyA       func(A) K
	KeyB       func(B) K
	NewBackend func(*runtime.Context) *statebackend.Keyed[K]
	Assigner   window.Assigner
	Trigger    window.Trigger
	Lateness   int64
	LateTag1   string
	LateTag2   string
	Join       func(A, B) OUT

	core  windowCore[K, joinBuf[A, B]]
	addA  func(*joinBuf[A, B], A, int64, bool)
	addB  func(*joinBuf[A, B], B, int64, bool)
	late1 runtime.Output[A]
	late2 runtime.Output[B]
	sides []eventOutput
}

func (o *WindowJoinOp[A, B, K, OUT]) Open(ctx *runtime.Context) error {
	o.addA = func(s *joinBuf[A, B], v A, _ int64, _ bool) { s.as = append(s.as, v) }
	o.addB = func(s *joinBuf[A, B], v B, _ int64, _ bool) { s.bs = append(s.bs, v) }
	if o.LateTag1 != "" {
		o.late1, _ = ctx.SideOutput(o.LateTag1).(runtime.Output[A])
	}
	if o.LateTag2 != "" {
		o.late2, _ = ctx.SideOutput(o.LateTag2).(runtime.Output[B])
	}
	o.sides = consumedSides(ctx, o.sides[:0])
	spec := windowSpec{assigner: o.Assigner, trigger: o.Trigger, lateness: o.Lateness}
	merge := func(dst, src *joinBuf[A, B]) {
		dst.as = append(dst.as, src.as...)
		dst.bs = append(dst.bs, src.bs...)
	}
	o.core.stateCodec = joinBufCodecFor[A, B]
	return o.core.open(ctx, o.NewBackend(ctx), spec, merge, func(_ K, w window.TimeWindow, s *joinBuf[A, B]) {
		ts := w.MaxTimestamp()
		for _, a := range s.as {
			for _, b := range s.bs {
				o.Out.Collect(o.Join(a, b), ts)
			}
		}
	})
}

func (o *WindowJoinOp[A, B, K, OUT]) ProcessElement1(v A, ts int64) {
	o.core.backend.SetCurrentKey(o.KeyA(v))
	if addElement(&o.core, v, ts, o.addA) && o.core.isElementLate(ts) {
		if o.late1 != nil {
			o.late1.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *WindowJoinOp[A, B, K, OUT]) ProcessElement2(v B, ts int64) {
	o.core.backend.SetCurrentKey(o.KeyB(v))
	if addElement(&o.core, v, ts, o.addB) && o.core.isElementLate(ts) {
		if o.late2 != nil {
			o.late2.Collect(v, ts)
		} else {
			o.core.dropped++
		}
	}
}

func (o *WindowJoinOp[A, B, K, OUT]) ProcessWatermark(wm int64) {
	o.core.timers.AdvanceWatermark(wm)
	o.Out.EmitWatermark(wm)
	for _, s := range o.sides {
		s.EmitWatermark(wm)
	}
}

func (o *WindowJoinOp[A, B, K, OUT]) ProcessIdle() {
	o.Out.MarkIdle()
	for _, s := range o.sides {
		s.MarkIdle()
	}
}

func (o *WindowJoinOp[A, B, K, OUT]) Finish() error { o.core.finish(); return nil }
func (o *WindowJoinOp[A, B, K, OUT]) Close() error  { o.core.close(); return nil }

// tsOut is a collector emitting with a set timestamp.
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

// IntervalJoinOp is the interval join. C is the API's collector interface
// the join function takes (the engine cannot name it); the exported fields
// are the configuration, set before Open.
type IntervalJoinOp[A, B any, K comparable, OUT any, C interface{ Collect(OUT) }] struct {
	Out          runtime.Output[OUT]
	KeyA         func(A) K
	KeyB         func(B) K
	NewBackend   func(*runtime.Context) *statebackend.Keyed[K]
	Lower, Upper int64
	Join         func(A, B, C) error

	name      string
	rt        *runtime.Context
	backend   *statebackend.Keyed[K]
	left      *statebackend.Table[K, *intervalBuf[A]]
	right     *statebackend.Table[K, *intervalBuf[B]]
	timers    *runtime.Timers[K, bool] // namespace: true = left buffer
	coll      tsOut[OUT]
	collector C // &coll as the join function's collector type
	dropped   int64
}

func (o *IntervalJoinOp[A, B, K, OUT, C]) Open(ctx *runtime.Context) error {
	o.name, o.rt = ctx.OperatorName, ctx
	o.coll.out = o.Out
	o.collector = any(&o.coll).(C)
	o.backend = o.NewBackend(ctx)
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

// ErrIntervalNoTimestamp fails an interval join given a record without event time.
var ErrIntervalNoTimestamp = errors.New("interval join needs event timestamps: assign them with AssignTimestamps before the join")

// late reports whether a record can no longer be joined completely: the
// watermark has passed it, so the other side's partners may be gone.
func (o *IntervalJoinOp[A, B, K, OUT, C]) late(side string, ts int64) bool {
	if ts == runtime.NoTimestamp {
		runtime.Fail(o.name, fmt.Errorf("%s input: record without timestamp: %w", side, ErrIntervalNoTimestamp))
	}
	if ts <= o.timers.CurrentWatermark() {
		o.dropped++
		return true
	}
	return false
}

func (o *IntervalJoinOp[A, B, K, OUT, C]) emit(a A, b B, ts int64) {
	o.coll.ts = ts
	if err := o.Join(a, b, o.collector); err != nil {
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

func (o *IntervalJoinOp[A, B, K, OUT, C]) ProcessElement1(v A, ts int64) {
	if o.late("left", ts) {
		return
	}
	key := o.KeyA(v)
	o.backend.SetCurrentKey(key)
	kg := o.backend.KeyGroupIndex()
	bufferOf(o.left, kg, key).insert(ts, v)
	if rb, ok := o.right.Get(kg, key); ok {
		hi := ts + o.Upper
		for i := rb.from(ts + o.Lower); i < len(rb.ts) && rb.ts[i] <= hi; i++ {
			o.emit(v, rb.vals[i], max(ts, rb.ts[i]))
		}
	}
	// Once the watermark passes ts+upper no right record can match v.
	o.timers.RegisterEventTime(true, ts+max(o.Upper, 0))
}

func (o *IntervalJoinOp[A, B, K, OUT, C]) ProcessElement2(v B, ts int64) {
	if o.late("right", ts) {
		return
	}
	key := o.KeyB(v)
	o.backend.SetCurrentKey(key)
	kg := o.backend.KeyGroupIndex()
	bufferOf(o.right, kg, key).insert(ts, v)
	if lb, ok := o.left.Get(kg, key); ok {
		hi := ts - o.Lower
		for i := lb.from(ts - o.Upper); i < len(lb.ts) && lb.ts[i] <= hi; i++ {
			o.emit(lb.vals[i], v, max(ts, lb.ts[i]))
		}
	}
	// Once the watermark passes ts−lower no left record can match v.
	o.timers.RegisterEventTime(false, ts+max(-o.Lower, 0))
}

// cleanup drops the records whose partners can no longer arrive. Timers
// fire in time order, so every record before the timer's one is already
// due too.
func (o *IntervalJoinOp[A, B, K, OUT, C]) cleanup(t runtime.Timer[K, bool]) {
	kg := o.backend.KeyGroupIndex()
	if t.NS {
		if buf, ok := o.left.Get(kg, t.Key); ok {
			buf.dropUntil(t.TS - max(o.Upper, 0))
			if len(buf.ts) == 0 {
				o.left.Delete(kg, t.Key)
			}
		}
		return
	}
	if buf, ok := o.right.Get(kg, t.Key); ok {
		buf.dropUntil(t.TS - max(-o.Lower, 0))
		if len(buf.ts) == 0 {
			o.right.Delete(kg, t.Key)
		}
	}
}

func (o *IntervalJoinOp[A, B, K, OUT, C]) ProcessWatermark(wm int64) {
	o.timers.AdvanceWatermark(wm)
	o.Out.EmitWatermark(wm)
}

func (o *IntervalJoinOp[A, B, K, OUT, C]) ProcessIdle() { o.Out.MarkIdle() }

func (o *IntervalJoinOp[A, B, K, OUT, C]) Finish() error { return nil }

func (o *IntervalJoinOp[A, B, K, OUT, C]) Close() error {
	if o.dropped > 0 && o.rt != nil {
		o.rt.Logger.Info("late records dropped", "count", o.dropped)
	}
	return nil
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
