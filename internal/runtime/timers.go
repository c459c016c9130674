package runtime

import (
	"github.com/strom-dev/strom/internal/statebackend"
)

// Timer is a timer of a keyed operator: a key, a namespace (the window, or
// struct{} for plain keyed functions) and a time.
type Timer[K, N comparable] struct {
	Key K
	NS  N
	TS  int64
}

// Timers is the timer service of one keyed operator: event-time timers fire
// when the watermark passes them, processing-time timers when the wall clock
// does. A timer is registered at most once per (key, namespace, time), as in
// Flink. Callbacks run on the task goroutine with the timer's key made
// current in the backend.
type Timers[K, N comparable] struct {
	backend *statebackend.Keyed[K]
	pt      *ProcessingTime
	event   timerQueue[K, N]
	proc    timerQueue[K, N]
	// OnEventTime and OnProcessingTime are called for each firing timer.
	OnEventTime      func(t Timer[K, N])
	OnProcessingTime func(t Timer[K, N])
	watermark        int64
	ptScheduled      int64 // earliest time registered with the task's service
}

// NewTimers returns a timer service on backend and the task's processing
// time.
func NewTimers[K, N comparable](backend *statebackend.Keyed[K], pt *ProcessingTime) *Timers[K, N] {
	return &Timers[K, N]{
		backend:     backend,
		pt:          pt,
		event:       newTimerQueue[K, N](),
		proc:        newTimerQueue[K, N](),
		watermark:   MinWatermark,
		ptScheduled: MaxWatermark,
	}
}

// CurrentWatermark is the last watermark the service has seen.
func (t *Timers[K, N]) CurrentWatermark() int64 { return t.watermark }

// RegisterEventTime registers an event-time timer for the current key.
func (t *Timers[K, N]) RegisterEventTime(ns N, ts int64) {
	t.event.add(Timer[K, N]{Key: t.backend.CurrentKey(), NS: ns, TS: ts})
}

// DeleteEventTime removes an event-time timer of the current key.
func (t *Timers[K, N]) DeleteEventTime(ns N, ts int64) {
	t.event.remove(Timer[K, N]{Key: t.backend.CurrentKey(), NS: ns, TS: ts})
}

// RegisterProcessingTime registers a processing-time timer for the current
// key.
func (t *Timers[K, N]) RegisterProcessingTime(ns N, ts int64) {
	t.proc.add(Timer[K, N]{Key: t.backend.CurrentKey(), NS: ns, TS: ts})
	if ts < t.ptScheduled {
		t.ptScheduled = ts
		t.pt.Register(ts, t.fireProcessing)
	}
}

// DeleteProcessingTime removes a processing-time timer of the current key.
func (t *Timers[K, N]) DeleteProcessingTime(ns N, ts int64) {
	t.proc.remove(Timer[K, N]{Key: t.backend.CurrentKey(), NS: ns, TS: ts})
}

// NumEventTimers is the number of pending event-time timers.
func (t *Timers[K, N]) NumEventTimers() int { return len(t.event.set) }

// NumProcessingTimers is the number of pending processing-time timers.
func (t *Timers[K, N]) NumProcessingTimers() int { return len(t.proc.set) }

// AdvanceWatermark fires every event-time timer at or before wm, in time
// order. Timers registered by the callbacks for times ≤ wm fire too.
func (t *Timers[K, N]) AdvanceWatermark(wm int64) {
	if wm > t.watermark {
		t.watermark = wm
	}
	for {
		t.pt.cancel.Check() // between firings: a watermark may fire thousands
		tm, ok := t.event.popUntil(wm)
		if !ok {
			return
		}
		t.backend.SetCurrentKey(tm.Key)
		t.OnEventTime(tm)
	}
}

func (t *Timers[K, N]) fireProcessing(int64) {
	t.ptScheduled = MaxWatermark
	now := t.pt.Now()
	for {
		t.pt.cancel.Check()
		tm, ok := t.proc.popUntil(now)
		if !ok {
			break
		}
		t.backend.SetCurrentKey(tm.Key)
		t.OnProcessingTime(tm)
	}
	if next, ok := t.proc.peek(); ok && next < t.ptScheduled {
		t.ptScheduled = next
		t.pt.Register(next, t.fireProcessing)
	}
}

// timerQueue is a min-heap of timers with a set for deduplication; deleted
// timers stay in the heap and are skipped when popped.
type timerQueue[K, N comparable] struct {
	h   timerHeap[K, N]
	set map[Timer[K, N]]struct{}
}

func newTimerQueue[K, N comparable]() timerQueue[K, N] {
	return timerQueue[K, N]{set: map[Timer[K, N]]struct{}{}}
}

func (q *timerQueue[K, N]) add(t Timer[K, N]) {
	// One map operation, not a lookup and an insert: the set grows only if
	// the timer is new.
	n := len(q.set)
	q.set[t] = struct{}{}
	if len(q.set) == n {
		return
	}
	q.h.push(t)
}

func (q *timerQueue[K, N]) remove(t Timer[K, N]) { delete(q.set, t) }

func (q *timerQueue[K, N]) popUntil(ts int64) (Timer[K, N], bool) {
	for len(q.h) > 0 && q.h[0].TS <= ts {
		t := q.h.pop()
		// Deleted timers stay in the heap; the set says which are live. One
		// delete both tests and removes.
		n := len(q.set)
		delete(q.set, t)
		if len(q.set) < n {
			return t, true
		}
	}
	return Timer[K, N]{}, false
}

func (q *timerQueue[K, N]) peek() (int64, bool) {
	for len(q.h) > 0 {
		if _, ok := q.set[q.h[0]]; ok {
			return q.h[0].TS, true
		}
		q.h.pop()
	}
	return 0, false
}

// timerHeap is a binary min-heap on TS, typed so that pushing a timer does
// not box it into an interface (container/heap would allocate per timer).
type timerHeap[K, N comparable] []Timer[K, N]

func (h *timerHeap[K, N]) push(t Timer[K, N]) {
	*h = append(*h, t)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].TS <= a[i].TS {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *timerHeap[K, N]) pop() Timer[K, N] {
	a := *h
	t := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = Timer[K, N]{}
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a[r].TS < a[l].TS {
			m = r
		}
		if a[i].TS <= a[m].TS {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return t
}
