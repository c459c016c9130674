package runtime

import (
	"errors"
	"fmt"

	"github.com/strom-dev/strom/internal/network"
)

// Gate is a task's input gate (Flink's InputGate with its
// StatusWatermarkValve): the channels of all its inputs, numbered 0..n-1 (a
// two-input task's first input first). It picks the channel to poll, round
// robin, passing over channels that have ended or are blocked; it keeps the
// watermark valve and the records-in count; and it dispatches each batch's
// watermarks and event. The input processors poll the channel it picks
// (they know the channel's record type) and only hand records to the
// operator. The gate works per batch, never per record.
//
// Blocking is for barrier alignment: once a channel's barrier has arrived,
// the gate holds the channel back, with everything behind the barrier, until
// the barrier has arrived on every channel.
type Gate struct {
	valve *valve
	// skip[i] says channel i has ended or is blocked: pick passes it over.
	skip    []bool
	blocked []bool
	ended   int
	next    int
	op      timeReceiver
	// name is the head operator, for failures of processors run outside a
	// task; cur, when not nil, is the task's current-operator index instead.
	name   string
	cur    *int
	cancel *CancelFlag
	// In counts the records handed to the head operator.
	In Counter
	// align is the barrier alignment (barrier.go).
	align aligner
	// stopped is the newest stop-with-savepoint id an input channel ended
	// with (0: none; see stopEnded in barrier.go).
	stopped int64
}

func newGate(channels int, op timeReceiver) Gate {
	return Gate{
		valve:   newValve(channels),
		skip:    make([]bool, channels),
		blocked: make([]bool, channels),
		op:      op,
		cancel:  new(CancelFlag),
	}
}

// Block stops polling channel i until Unblock.
func (g *Gate) Block(i int) {
	g.blocked[i] = true
	g.skip[i] = true
}

// Unblock polls channel i again (unless it has ended).
func (g *Gate) Unblock(i int) {
	g.blocked[i] = false
	g.skip[i] = g.valve.ended[i]
}

// Blocked reports whether channel i is blocked.
func (g *Gate) Blocked(i int) bool { return g.blocked[i] }

// pick returns the next channel in round-robin order and whether to poll it
// (not when it has ended or is blocked). Calling it len(skip) times visits
// every channel once.
func (g *Gate) pick() (int, bool) {
	i := g.next
	g.next++
	if g.next == len(g.skip) {
		g.next = 0
	}
	return i, !g.skip[i]
}

// done reports that every channel has ended.
func (g *Gate) done() bool { return g.ended == len(g.skip) }

// enter makes the head operator current before a batch goes to it: through
// the task's current-operator index, or (outside a task, cur == nil) by
// returning true so the caller defers Guard(g.name).
func (g *Gate) enter() (guard bool) {
	if g.cur == nil {
		return true
	}
	*g.cur = 0
	return false
}

// records notes n records of channel i going to the operator: they make an
// idle channel active again.
func (g *Gate) records(i, n int) {
	g.valve.onRecord(i)
	g.In.n += int64(n)
}

// event applies the event a batch of channel i ends with.
func (g *Gate) event(i int, kind network.EventKind, value int64, b network.BarrierOptions) {
	switch kind {
	case network.Watermark, network.Idle:
		g.valve.event(i, kind, value, g.op)
	case network.EndOfPartition:
		g.ended++
		g.skip[i] = true
		if value != network.EndDrained {
			g.stopEnded(i, value)
		} else {
			g.valve.event(i, kind, value, g.op)
		}
		// An ended channel counts as aligned (FLIP-147): its end may be
		// all the checkpoint being aligned waited for.
		g.checkAligned()
	case network.Barrier:
		g.barrier(i, value, b)
	case network.CancelBarrier:
		if value <= 0 {
			Fail("", fmt.Errorf("%w: checkpoint cancel marker with id %d on input channel %d", ErrUnexpectedEvent, value, i))
		}
		g.cancelCheckpoint(value, fmt.Errorf("%w: checkpoint %d cancelled upstream (input channel %d)", ErrCheckpointAborted, value, i))
	default:
		Fail("", fmt.Errorf("%w: event kind %d on input channel %d", ErrUnexpectedEvent, kind, i))
	}
}

// ErrUnexpectedEvent is wrapped by the failure of a task that received a
// malformed in-band event: an unknown kind, a barrier without a valid id or
// one repeated on a channel.
var ErrUnexpectedEvent = errors.New("unexpected in-band event")

// pollChannel hands the next batch of channel i, if there is one, to
// process: its records with the watermarks among them, then (once the
// buffer is back with its producer, which can go on while a watermark fires
// timers) its event. It reports whether there was a batch.
func pollChannel[T any](g *Gate, i int, ch *network.Channel[T], e elements[T]) bool {
	b, ok := ch.Poll()
	if !ok {
		return false
	}
	if len(b.Marks) > 0 {
		handleMarked(g, i, b, e.ProcessElement)
	} else if len(b.Recs) > 0 {
		g.records(i, len(b.Recs))
		cancel := g.cancel
		for _, r := range b.Recs {
			cancel.Check() // within one record of a cancellation, at any batch size
			e.ProcessElement(r.V, r.Ts)
		}
	}
	kind, value, bopts := b.Kind, b.Value, b.Barrier
	ch.Recycle(b)
	if kind != network.Records {
		g.event(i, kind, value, bopts)
	}
	return true
}

// elements is what takes the records of one input: a OneInput, or one
// input of a TwoInput (first, second). An interface, not a type parameter
// or a func value: either of those adds an indirect call per record
// (BenchmarkInputProcessor: about 1 ns, a quarter of the input's cost).
type elements[T any] interface{ ProcessElement(v T, ts int64) }

// handleMarked feeds the records of channel i's batch to process with the
// watermarks among them (b.Marks) in stream order: the path of batches that
// carry watermarks, kept apart so the plain record loops of the processors
// stay tight.
func handleMarked[T any](g *Gate, i int, b *network.Batch[T], process func(T, int64)) {
	if len(b.Recs) > 0 {
		g.records(i, len(b.Recs))
	}
	v, op, cancel := g.valve, g.op, g.cancel
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
