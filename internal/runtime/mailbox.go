package runtime

import (
	"sync"
	"sync/atomic"
)

// mailbox is a task's unbounded queue of mail (Flink's TaskMailbox): the
// task loop runs it between batches. queued lets the task loop
// see an empty mailbox with one atomic load per batch, without the lock.
type mailbox struct {
	queued atomic.Int32
	mu     sync.Mutex
	q      []mail
	spare  []mail
	closed bool
	// stopped is closed with the mailbox, so whoever waits for a mail's
	// result learns that it will never run (made on first use).
	stopped chan struct{}
}

// stoppedChan returns a channel closed once the mailbox is closed.
func (m *mailbox) stoppedChan() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped == nil {
		m.stopped = make(chan struct{})
		if m.closed {
			close(m.stopped)
		}
	}
	return m.stopped
}

// mail is one mailbox action. dropped, when set, runs instead of run if the
// task stops before the mail ran, so a checkpoint trigger caught by the end
// of the task is reported instead of lost.
type mail struct {
	run, dropped func()
}

func (m *mailbox) put(ml mail) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.q = append(m.q, ml)
	m.queued.Store(int32(len(m.q)))
	return true
}

// take returns the mail queued now, in order; the caller runs it and hands
// the slice back with done.
func (m *mailbox) take() []mail {
	if m.queued.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.q
	m.q = m.spare[:0]
	m.spare = nil
	m.queued.Store(0)
	return q
}

// done recycles a slice returned by take.
func (m *mailbox) done(q []mail) {
	clear(q) // drop the closures
	m.mu.Lock()
	m.spare = q[:0]
	m.mu.Unlock()
}

// close makes put fail and drops the mail queued, running the dropped
// handlers of the mail that has them (on the caller's goroutine, without
// the lock). Closing twice is harmless: the task closes its mailbox once
// its loop ends and again when Run returns.
func (m *mailbox) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	q := m.q
	m.q = nil
	m.queued.Store(0)
	if m.stopped != nil {
		close(m.stopped)
	}
	m.mu.Unlock()
	for _, ml := range q {
		if ml.dropped != nil {
			ml.dropped()
		}
	}
}
