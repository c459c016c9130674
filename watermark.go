package strom

import (
	"time"

	"github.com/strom-dev/strom/internal/runtime"
)

// MaxWatermark is the watermark that ends event time.
const MaxWatermark = runtime.MaxWatermark

// NoTimestamp is the timestamp of a record without event time.
const NoTimestamp = runtime.NoTimestamp

// WatermarkOutput receives what a WatermarkGenerator decides.
type WatermarkOutput interface {
	EmitWatermark(wm int64)
	MarkIdle()
}

// WatermarkGenerator decides watermarks from the timestamps it sees (Flink's
// WatermarkGenerator). One generator runs per subtask (AssignTimestamps) or
// per split of a source (FromSourceWithWatermarks).
type WatermarkGenerator interface {
	// OnEvent is called for every record with its timestamp.
	OnEvent(ts int64, out WatermarkOutput)
	// OnPeriodicEmit is called every AutoWatermarkInterval.
	OnPeriodicEmit(out WatermarkOutput)
}

// WatermarkStrategy says how a stream's records get timestamps and how
// watermarks follow them.
type WatermarkStrategy[T any] struct {
	// NewGenerator creates one subtask's (or one split's) generator.
	NewGenerator func() WatermarkGenerator
	// Timestamp extracts a record's event time (epoch ms). Nil keeps the
	// timestamp the record already has.
	Timestamp func(v T) int64
	// IdleTimeout marks the stream (in a source: the split) idle after this
	// long without records, so it does not hold back the watermark of
	// downstream operators (of the source subtask). Zero disables idleness
	// detection.
	IdleTimeout time.Duration

	// err is a construction error (a bound that is not whole milliseconds),
	// reported by AssignTimestamps and FromSourceWithWatermarks.
	err error
}

// WithTimestamps sets the timestamp assigner.
func (w WatermarkStrategy[T]) WithTimestamps(fn func(v T) int64) WatermarkStrategy[T] {
	w.Timestamp = fn
	return w
}

// EmitPerRecord makes the generator also emit its watermark after every
// record (as a punctuated generator does), not only every
// AutoWatermarkInterval of wall-clock time: event time then follows the data
// exactly, which makes small bounded inputs, tests and examples
// deterministic. Watermarks are coalesced on the way downstream, so this
// costs little.
func (w WatermarkStrategy[T]) EmitPerRecord() WatermarkStrategy[T] {
	inner := w.NewGenerator
	if inner == nil {
		return w
	}
	w.NewGenerator = func() WatermarkGenerator { return perRecordGen{inner()} }
	return w
}

type perRecordGen struct{ WatermarkGenerator }

func (g perRecordGen) OnEvent(ts int64, out WatermarkOutput) {
	g.WatermarkGenerator.OnEvent(ts, out)
	g.WatermarkGenerator.OnPeriodicEmit(out)
}

// WithIdleness sets the idleness timeout.
func (w WatermarkStrategy[T]) WithIdleness(d time.Duration) WatermarkStrategy[T] {
	w.IdleTimeout = d
	return w
}

// BoundedOutOfOrderness expects records at most maxDelay behind the highest
// timestamp seen: the watermark is that timestamp − maxDelay − 1 ms.
func BoundedOutOfOrderness[T any](maxDelay time.Duration) WatermarkStrategy[T] {
	var err error
	switch {
	case maxDelay < 0:
		err = errorf("BoundedOutOfOrderness: max delay %v must not be negative", maxDelay)
	case maxDelay%time.Millisecond != 0:
		err = errorf("BoundedOutOfOrderness: max delay %v is not a whole number of milliseconds", maxDelay)
	}
	d := maxDelay.Milliseconds()
	return WatermarkStrategy[T]{err: err, NewGenerator: func() WatermarkGenerator { return &boundedGen{delay: d, max: runtime.MinWatermark + d + 1} }}
}

// Monotonous expects timestamps never to decrease.
func Monotonous[T any]() WatermarkStrategy[T] { return BoundedOutOfOrderness[T](0) }

// CustomWatermarks uses a user generator.
func CustomWatermarks[T any](newGen func() WatermarkGenerator) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{NewGenerator: newGen}
}

type boundedGen struct {
	delay int64
	max   int64
}

func (g *boundedGen) OnEvent(ts int64, _ WatermarkOutput) {
	if ts > g.max {
		g.max = ts
	}
}

func (g *boundedGen) OnPeriodicEmit(out WatermarkOutput) {
	out.EmitWatermark(g.max - g.delay - 1)
}

type timestampsOp[T any] struct {
	base[T]
	strategy WatermarkStrategy[T]
	gen      WatermarkGenerator
	ctx      *runtime.Context
	interval int64
	lastWM   int64
	lastSeen int64 // processing time of the last record
	idle     bool
	wmOut    wmOut[T]
}

type wmOut[T any] struct{ o *timestampsOp[T] }

func (w wmOut[T]) EmitWatermark(wm int64) {
	o := w.o
	if wm > o.lastWM {
		o.lastWM = wm
		o.idle = false
		o.out.EmitWatermark(wm)
	}
}

func (w wmOut[T]) MarkIdle() {
	if !w.o.idle {
		w.o.idle = true
		w.o.out.MarkIdle()
	}
}

func (o *timestampsOp[T]) Open(ctx *runtime.Context) error {
	o.ctx = ctx
	o.wmOut = wmOut[T]{o}
	o.lastWM = runtime.MinWatermark
	if o.strategy.NewGenerator != nil {
		o.gen = o.strategy.NewGenerator()
	}
	o.lastSeen = ctx.Time.Now()
	ctx.Time.Register(ctx.Time.Now()+o.interval, o.periodic)
	return nil
}

func (o *timestampsOp[T]) periodic(now int64) {
	// Runs from the task's processing-time service, outside any record's
	// call chain: attribute a panic of the generator to this operator, not
	// to the head of the chain.
	defer runtime.Guard(o.ctx.OperatorName)
	if o.gen != nil {
		o.gen.OnPeriodicEmit(o.wmOut)
	}
	if d := o.strategy.IdleTimeout; d > 0 && !o.idle && now-o.lastSeen >= d.Milliseconds() {
		o.wmOut.MarkIdle()
	}
	o.ctx.Time.Register(now+o.interval, o.periodic)
}

func (o *timestampsOp[T]) ProcessElement(v T, ts int64) {
	if o.strategy.Timestamp != nil {
		ts = o.strategy.Timestamp(v)
	}
	if o.strategy.IdleTimeout > 0 {
		o.lastSeen = o.ctx.Time.Now()
		o.idle = false
	}
	// The record goes out before any watermark its timestamp causes, as in
	// Flink: a punctuated generator must not make its own record late.
	o.out.Collect(v, ts)
	if o.gen != nil {
		o.gen.OnEvent(ts, o.wmOut)
	}
}

// ProcessWatermark drops upstream watermarks — this operator makes its own —
// except the final one, which ends event time at the end of input.
func (o *timestampsOp[T]) ProcessWatermark(wm int64) {
	if wm == runtime.MaxWatermark {
		o.wmOut.EmitWatermark(wm)
	}
}

// ProcessIdle: idleness is decided here too.
func (o *timestampsOp[T]) ProcessIdle() {}

// AssignTimestamps gives the stream's records event timestamps and
// generates watermarks by strategy. Put it right after the source: it runs
// with its input's parallelism unless given one, so it chains into the
// source's task and sees each reader's records in their order. (For one
// watermark generator per split of a source, use FromSourceWithWatermarks.)
func AssignTimestamps[T any](s Stream[T], strategy WatermarkStrategy[T]) Stream[T] {
	if strategy.err != nil {
		s.env.fail(strategy.err)
	}
	if strategy.IdleTimeout < 0 {
		s.env.fail(errorf("AssignTimestamps: idle timeout %v must not be negative", strategy.IdleTimeout))
	}
	interval := s.env.Config().AutoWatermarkInterval.Milliseconds()
	st := addOperator(s, "timestamps", "Timestamps/Watermarks", runtime.Forward, nil, func(_ *runtime.Context, out runtime.Output[T]) (runtime.OneInput[T], error) {
		return &timestampsOp[T]{base: base[T]{out}, strategy: strategy, interval: max(interval, 1)}, nil
	})
	st.node().InheritParallelism = true
	return st
}
