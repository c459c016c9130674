package runtime

import (
	"errors"
	"fmt"

	"github.com/strom-dev/strom/internal/network"
)

// InputProcessor reads a task's inputs and drives its head operator.
type InputProcessor interface {
	// Poll handles at most one waiting batch. progress reports whether one
	// was handled; done reports that every input channel has ended.
	Poll() (progress, done bool)
}

// valve combines the watermarks of a task's input channels: the task's
// watermark is the minimum over the channels that are neither idle nor ended,
// and it only moves forward (Flink's StatusWatermarkValve).
type valve struct {
	wm      []int64
	idle    []bool
	ended   []bool
	last    int64
	outIdle bool
}

func newValve(n int) *valve {
	v := &valve{wm: make([]int64, n), idle: make([]bool, n), ended: make([]bool, n), last: MinWatermark}
	for i := range v.wm {
		v.wm[i] = MinWatermark
	}
	return v
}

// combined returns the new watermark to emit, or ok=false. allIdle reports
// that every live channel is idle.
func (v *valve) combined() (wm int64, ok, allIdle bool) {
	min := int64(MaxWatermark)
	active := 0
	live := 0
	for i := range v.wm {
		if v.ended[i] {
			continue
		}
		live++
		if v.idle[i] {
			continue
		}
		active++
		if v.wm[i] < min {
			min = v.wm[i]
		}
	}
	if active == 0 {
		return 0, false, live > 0
	}
	if min > v.last {
		v.last = min
		return min, true, false
	}
	return 0, false, false
}

func (v *valve) onWatermark(ch int, wm int64) (int64, bool) {
	v.idle[ch] = false
	if wm > v.wm[ch] {
		v.wm[ch] = wm
	}
	out, ok, _ := v.combined()
	if ok {
		v.outIdle = false
	}
	return out, ok
}

// onRecord reactivates an idle channel.
func (v *valve) onRecord(ch int) bool {
	if v.idle[ch] {
		v.idle[ch] = false
		v.outIdle = false
		return true
	}
	return false
}

func (v *valve) onIdle(ch int) (wm int64, emitWM, becameIdle bool) {
	v.idle[ch] = true
	wm, emitWM, allIdle := v.combined()
	if allIdle && !v.outIdle {
		v.outIdle = true
		return wm, emitWM, true
	}
	return wm, emitWM, false
}

func (v *valve) onEnd(ch int) (int64, bool) {
	v.ended[ch] = true
	wm, ok, _ := v.combined()
	return wm, ok
}

func (v *valve) allEnded() bool {
	for _, e := range v.ended {
		if !e {
			return false
		}
	}
	return true
}

// OneInputProcessor feeds the batches of a one-input task's channels to its
// head operator.
type OneInputProcessor[T any] struct {
	channels []*network.Channel[T]
	op       OneInput[T]
	valve    *valve
	next     int
	name     string
	cur      *int
	cancel   *CancelFlag
	In       Counter
}

// TrackCurrent makes the processor name its head operator (index 0 of the
// chain) in the task's current-operator index instead of recovering panics
// per batch.
func (p *OneInputProcessor[T]) TrackCurrent(cur *int) { p.cur = cur }

// NewOneInputProcessor reads channels into op.
func NewOneInputProcessor[T any](channels []*network.Channel[T], op OneInput[T]) *OneInputProcessor[T] {
	return &OneInputProcessor[T]{channels: channels, op: op, valve: newValve(len(channels)), cancel: new(CancelFlag)}
}

func (p *OneInputProcessor[T]) watchCancel(f *CancelFlag) { p.cancel = f }

func (p *OneInputProcessor[T]) Poll() (bool, bool) {
	n := len(p.channels)
	for range n {
		i := p.next
		p.next++
		if p.next == n {
			p.next = 0
		}
		if p.valve.ended[i] {
			continue
		}
		b, ok := p.channels[i].Poll()
		if !ok {
			continue
		}
		if p.cur != nil {
			*p.cur = 0
			p.handle(i, b)
		} else {
			p.guarded(i, b)
		}
		p.channels[i].Recycle(b)
		return true, p.valve.allEnded()
	}
	return false, p.valve.allEnded()
}

func (p *OneInputProcessor[T]) guarded(i int, b *network.Batch[T]) {
	defer Guard(p.name)
	p.handle(i, b)
}

// handle processes a batch: its records, then its event (a watermark that
// rode on the records, or idle, end-of-partition, a barrier).
func (p *OneInputProcessor[T]) handle(i int, b *network.Batch[T]) {
	if len(b.Marks) > 0 {
		handleMarked(p.valve, i, b, p.op, p.cancel, &p.In, p.op.ProcessElement)
	} else if len(b.Recs) > 0 {
		p.valve.onRecord(i)
		p.In.n += int64(len(b.Recs))
		cancel := p.cancel
		for _, r := range b.Recs {
			cancel.Check() // within one record of a cancellation, at any batch size
			p.op.ProcessElement(r.V, r.Ts)
		}
	}
	if b.Kind != network.Records {
		p.valve.event(i, b.Kind, b.Value, p.op)
	}
}

// TwoInputProcessor feeds a two-input task's channels to its head operator;
// its watermark is the minimum over the channels of both inputs.
type TwoInputProcessor[A, B any] struct {
	ch1   []*network.Channel[A]
	ch2   []*network.Channel[B]
	op    TwoInput[A, B]
	valve *valve
	next  int
	// Name is the head operator's name, for failures.
	Name   string
	In     Counter
	cur    *int
	cancel *CancelFlag
}

// TrackCurrent: see OneInputProcessor.TrackCurrent.
func (p *TwoInputProcessor[A, B]) TrackCurrent(cur *int) { p.cur = cur }

// NewTwoInputProcessor reads ch1 and ch2 into op.
func NewTwoInputProcessor[A, B any](ch1 []*network.Channel[A], ch2 []*network.Channel[B], op TwoInput[A, B]) *TwoInputProcessor[A, B] {
	return &TwoInputProcessor[A, B]{ch1: ch1, ch2: ch2, op: op, valve: newValve(len(ch1) + len(ch2)), cancel: new(CancelFlag)}
}

func (p *TwoInputProcessor[A, B]) watchCancel(f *CancelFlag) { p.cancel = f }

func (p *TwoInputProcessor[A, B]) Poll() (bool, bool) {
	if p.cur == nil {
		defer Guard(p.Name)
	} else {
		*p.cur = 0
	}
	n1 := len(p.ch1)
	n := n1 + len(p.ch2)
	for range n {
		i := p.next
		p.next++
		if p.next == n {
			p.next = 0
		}
		if p.valve.ended[i] {
			continue
		}
		if i < n1 {
			b, ok := p.ch1[i].Poll()
			if !ok {
				continue
			}
			if len(b.Marks) > 0 {
				handleMarked(p.valve, i, b, p.op, p.cancel, &p.In, p.op.ProcessElement1)
			} else if len(b.Recs) > 0 {
				p.valve.onRecord(i)
				p.In.n += int64(len(b.Recs))
				cancel := p.cancel
				for _, r := range b.Recs {
					cancel.Check()
					p.op.ProcessElement1(r.V, r.Ts)
				}
			}
			if b.Kind != network.Records {
				p.event(i, b.Kind, b.Value)
			}
			p.ch1[i].Recycle(b)
		} else {
			b, ok := p.ch2[i-n1].Poll()
			if !ok {
				continue
			}
			if len(b.Marks) > 0 {
				handleMarked(p.valve, i, b, p.op, p.cancel, &p.In, p.op.ProcessElement2)
			} else if len(b.Recs) > 0 {
				p.valve.onRecord(i)
				p.In.n += int64(len(b.Recs))
				cancel := p.cancel
				for _, r := range b.Recs {
					cancel.Check()
					p.op.ProcessElement2(r.V, r.Ts)
				}
			}
			if b.Kind != network.Records {
				p.event(i, b.Kind, b.Value)
			}
			p.ch2[i-n1].Recycle(b)
		}
		return true, p.valve.allEnded()
	}
	return false, p.valve.allEnded()
}

func (p *TwoInputProcessor[A, B]) event(i int, kind network.EventKind, value int64) {
	p.valve.event(i, kind, value, p.op)
}

// timeReceiver is the part of an operator the valve drives.
type timeReceiver interface {
	ProcessWatermark(wm int64)
	ProcessIdle()
}

// event applies an in-band event of channel i and tells op what changed for
// the task as a whole: a new combined watermark, or that every input is idle.
func (v *valve) event(i int, kind network.EventKind, value int64, op timeReceiver) {
	switch kind {
	case network.Watermark:
		if wm, ok := v.onWatermark(i, value); ok {
			op.ProcessWatermark(wm)
		}
	case network.Idle:
		wm, emit, idle := v.onIdle(i)
		if emit {
			op.ProcessWatermark(wm)
		}
		if idle {
			op.ProcessIdle()
		}
	case network.EndOfPartition:
		if wm, ok := v.onEnd(i); ok {
			op.ProcessWatermark(wm)
		}
	case network.Barrier:
		// Nothing injects barriers yet: one arriving is a bug upstream, and
		// dropping it silently would hide a lost checkpoint later.
		Fail("", fmt.Errorf("%w: checkpoint barrier %d on input channel %d", ErrUnexpectedEvent, value, i))
	default:
		Fail("", fmt.Errorf("%w: event kind %d on input channel %d", ErrUnexpectedEvent, kind, i))
	}
}

// ErrUnexpectedEvent is wrapped by the failure of a task that received an
// in-band event it cannot handle (until checkpoints exist, a barrier).
var ErrUnexpectedEvent = errors.New("unexpected in-band event")

// handleMarked feeds the records of channel i's batch to process with the
// watermarks among them (b.Marks) in stream order: the path of batches that
// carry watermarks, kept apart so the plain record loop stays tight.
func handleMarked[T any](v *valve, i int, b *network.Batch[T], op timeReceiver, cancel *CancelFlag, in *Counter, process func(T, int64)) {
	if len(b.Recs) > 0 {
		v.onRecord(i)
		in.n += int64(len(b.Recs))
	}
	m := 0
	for k, r := range b.Recs {
		for m < len(b.Marks) && b.Marks[m].Pos <= k {
			v.event(i, network.Watermark, b.Marks[m].WM, op)
			m++
		}
		cancel.Check()
		process(r.V, r.Ts)
	}
	for ; m < len(b.Marks); m++ {
		v.event(i, network.Watermark, b.Marks[m].WM, op)
	}
}
