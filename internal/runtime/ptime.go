package runtime

import (
	"container/heap"
	"time"
)

// Clock gives processing time. Tests can substitute a manual clock.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// WallClock is the real clock.
var WallClock Clock = wallClock{}

// ProcessingTime is a task's processing-time service: callbacks registered
// for a wall-clock time run on the task goroutine, from the mailbox loop,
// once that time has passed.
type ProcessingTime struct {
	clock Clock
	h     ptHeap
	seq   uint64
	// cancelled holds the ids of registrations cancelled before they were
	// due; their entries leave the heap lazily (when they reach its top, or
	// when cancelled ones make up half of it).
	cancelled map[uint64]struct{}
	// cancel is the task's cancellation flag, checked between callbacks
	// here and between timers in the keyed timer services built on this.
	cancel *CancelFlag
}

func newProcessingTime(c Clock) *ProcessingTime {
	if c == nil {
		c = WallClock
	}
	return &ProcessingTime{clock: c, cancel: new(CancelFlag)}
}

// Now is the current processing time in epoch milliseconds.
func (p *ProcessingTime) Now() int64 { return p.clock.Now().UnixMilli() }

// Register runs fn on the task goroutine once processing time reaches t
// (epoch ms). The returned id cancels it (Cancel).
func (p *ProcessingTime) Register(t int64, fn func(t int64)) uint64 {
	p.seq++
	heap.Push(&p.h, ptEntry{t: t, seq: p.seq, fn: fn})
	return p.seq
}

// Cancel drops the registration id if it has not run yet (an id that
// already ran or was cancelled must not be passed again).
func (p *ProcessingTime) Cancel(id uint64) {
	if p.cancelled == nil {
		p.cancelled = map[uint64]struct{}{}
	}
	p.cancelled[id] = struct{}{}
	if len(p.cancelled) > 64 && 2*len(p.cancelled) > len(p.h) {
		p.compact()
	}
}

// compact rebuilds the heap without its cancelled entries, so timers that
// are registered and cancelled over and over (a timeout pushed back by
// every record) take bounded memory.
func (p *ProcessingTime) compact() {
	live := p.h[:0]
	for _, e := range p.h {
		if _, gone := p.cancelled[e.seq]; !gone {
			live = append(live, e)
		}
	}
	clear(p.h[len(live):])
	p.h = live
	heap.Init(&p.h)
	clear(p.cancelled)
}

// skipCancelled pops cancelled entries off the top of the heap.
func (p *ProcessingTime) skipCancelled() {
	for len(p.cancelled) > 0 && len(p.h) > 0 {
		if _, gone := p.cancelled[p.h[0].seq]; !gone {
			return
		}
		delete(p.cancelled, p.h[0].seq)
		heap.Pop(&p.h)
	}
}

// Pending is the number of registrations that have neither run nor been
// cancelled.
func (p *ProcessingTime) Pending() int { return len(p.h) - len(p.cancelled) }

// next returns the earliest registered time.
func (p *ProcessingTime) next() (int64, bool) {
	p.skipCancelled()
	if len(p.h) == 0 {
		return 0, false
	}
	return p.h[0].t, true
}

// fire runs every callback due by now. It returns how many ran.
func (p *ProcessingTime) fire() int {
	now := p.Now()
	n := 0
	for {
		p.skipCancelled()
		if len(p.h) == 0 || p.h[0].t > now {
			return n
		}
		p.cancel.Check()
		e := heap.Pop(&p.h).(ptEntry)
		e.fn(e.t)
		n++
	}
}

type ptEntry struct {
	t   int64
	seq uint64
	fn  func(int64)
}

type ptHeap []ptEntry

func (h ptHeap) Len() int { return len(h) }
func (h ptHeap) Less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].seq < h[j].seq
}
func (h ptHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *ptHeap) Push(x any)   { *h = append(*h, x.(ptEntry)) }
func (h *ptHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = ptEntry{}
	*h = old[:len(old)-1]
	return e
}
