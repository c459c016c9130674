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
	q      []func()
	spare  []func()
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

func (m *mailbox) put(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.q = append(m.q, fn)
	m.queued.Store(int32(len(m.q)))
	return true
}

// take returns the mail queued now, in order; the caller runs it and hands
// the slice back with done.
func (m *mailbox) take() []func() {
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
func (m *mailbox) done(q []func()) {
	clear(q) // drop the closures
	m.mu.Lock()
	m.spare = q[:0]
	m.mu.Unlock()
}

// close makes put fail and drops the mail queued.
func (m *mailbox) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.q = nil
	m.queued.Store(0)
	if m.stopped != nil {
		close(m.stopped)
	}
}
