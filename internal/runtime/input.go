package runtime

import (
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
	gate     Gate
	channels []*network.Channel[T]
	op       elements[T]
}

// NewOneInputProcessor reads channels into op.
func NewOneInputProcessor[T any](channels []*network.Channel[T], op OneInput[T]) *OneInputProcessor[T] {
	return &OneInputProcessor[T]{gate: newGate(len(channels), op), channels: channels, op: op}
}

// TrackCurrent makes the processor name its head operator (index 0 of the
// chain) in the task's current-operator index instead of recovering panics
// per batch.
func (p *OneInputProcessor[T]) TrackCurrent(cur *int) { p.gate.cur = cur }

// Gate is the processor's input gate.
func (p *OneInputProcessor[T]) Gate() *Gate { return &p.gate }

func (p *OneInputProcessor[T]) watchCancel(f *CancelFlag) { p.gate.cancel = f }

func (p *OneInputProcessor[T]) Poll() (bool, bool) {
	g := &p.gate
	if g.enter() {
		defer Guard(g.name)
	}
	if g.align.h != nil && p.pollPriority() {
		// Priority events first, of every channel: a blocked channel's
		// (a newer or unaligned barrier) must not wait for the alignment
		// it ends, nor a timed-out aligned barrier for the batches ahead
		// of it. A few atomic loads per batch.
		return true, g.done()
	}
	for range p.channels {
		if i, ok := g.pick(); ok && pollChannel(g, i, p.channels[i], p.op) {
			return true, g.done()
		}
	}
	return false, g.done()
}

// PollPriority handles the priority events (unaligned barriers) of every
// channel and the alignment timeout, without taking data: what a
// backpressured task still does. It reports whether there was one.
func (p *OneInputProcessor[T]) PollPriority() bool {
	g := &p.gate
	if g.enter() {
		defer Guard(g.name)
	}
	return p.pollPriority()
}

func (p *OneInputProcessor[T]) pollPriority() bool {
	g := &p.gate
	g.checkAlignmentTimeout()
	got := false
	var now int64
	for i, ch := range p.channels {
		got = pollPriority(g, i, ch, &now) || got
	}
	return got
}

// replayInput feeds the input channel state of gate channel i to the head
// operator (a restore, before any new input).
func (p *OneInputProcessor[T]) replayInput(i int, data []byte, n int) error {
	if i < 0 || i >= len(p.channels) {
		return fmt.Errorf("channel state for input channel %d, the task has %d", i, len(p.channels))
	}
	return replayInto(&p.gate, data, n, p.op)
}

// TwoInputProcessor feeds a two-input task's channels to its head operator
// through one gate over both inputs (ch1's channels first), so its
// watermark is the minimum over the channels of both.
type TwoInputProcessor[A, B any] struct {
	gate Gate
	ch1  []*network.Channel[A]
	ch2  []*network.Channel[B]
	in1  elements[A]
	in2  elements[B]
}

// first and second are the inputs of a TwoInput as elements. Records of a
// two-input task take one indirect call more than those of a one-input
// task; a two-input operator's own work per record (state, a join) is
// far larger.
type (
	first[A, B any]  struct{ op TwoInput[A, B] }
	second[A, B any] struct{ op TwoInput[A, B] }
)

func (f *first[A, B]) ProcessElement(v A, ts int64)  { f.op.ProcessElement1(v, ts) }
func (s *second[A, B]) ProcessElement(v B, ts int64) { s.op.ProcessElement2(v, ts) }

// NewTwoInputProcessor reads ch1 and ch2 into op.
func NewTwoInputProcessor[A, B any](ch1 []*network.Channel[A], ch2 []*network.Channel[B], op TwoInput[A, B]) *TwoInputProcessor[A, B] {
	return &TwoInputProcessor[A, B]{gate: newGate(len(ch1)+len(ch2), op), ch1: ch1, ch2: ch2,
		in1: &first[A, B]{op}, in2: &second[A, B]{op}}
}

// TrackCurrent: see OneInputProcessor.TrackCurrent.
func (p *TwoInputProcessor[A, B]) TrackCurrent(cur *int) { p.gate.cur = cur }

// Gate is the processor's input gate.
func (p *TwoInputProcessor[A, B]) Gate() *Gate { return &p.gate }

func (p *TwoInputProcessor[A, B]) watchCancel(f *CancelFlag) { p.gate.cancel = f }

func (p *TwoInputProcessor[A, B]) Poll() (bool, bool) {
	g := &p.gate
	if g.enter() {
		defer Guard(g.name)
	}
	if g.align.h != nil && p.pollPriority() {
		return true, g.done()
	}
	n1 := len(p.ch1)
	for range n1 + len(p.ch2) {
		i, ok := g.pick()
		if !ok {
			continue
		}
		if i < n1 {
			ok = pollChannel(g, i, p.ch1[i], p.in1)
		} else {
			ok = pollChannel(g, i, p.ch2[i-n1], p.in2)
		}
		if ok {
			return true, g.done()
		}
	}
	return false, g.done()
}

// PollPriority: see OneInputProcessor.PollPriority.
func (p *TwoInputProcessor[A, B]) PollPriority() bool {
	g := &p.gate
	if g.enter() {
		defer Guard(g.name)
	}
	return p.pollPriority()
}

func (p *TwoInputProcessor[A, B]) pollPriority() bool {
	g := &p.gate
	g.checkAlignmentTimeout()
	got := false
	var now int64
	for i, ch := range p.ch1 {
		got = pollPriority(g, i, ch, &now) || got
	}
	for i, ch := range p.ch2 {
		got = pollPriority(g, len(p.ch1)+i, ch, &now) || got
	}
	return got
}

// replayInput: see OneInputProcessor.replayInput.
func (p *TwoInputProcessor[A, B]) replayInput(i int, data []byte, n int) error {
	switch n1 := len(p.ch1); {
	case i >= 0 && i < n1:
		return replayInto(&p.gate, data, n, p.in1)
	case i >= n1 && i < n1+len(p.ch2):
		return replayInto(&p.gate, data, n, p.in2)
	}
	return fmt.Errorf("channel state for input channel %d, the task has %d", i, len(p.ch1)+len(p.ch2))
}

// timeReceiver is the part of an operator the valve drives.
type timeReceiver interface {
	ProcessWatermark(wm int64)
	ProcessIdle()
}

// event applies an in-band watermark, idle or end-of-partition of channel
// i and tells op what changed for the task as a whole: a new combined
// watermark, or that every input is idle. Other events are the gate's.
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
	}
}
