package rpc

import "sync"

// mailbox is an endpoint of either transport: an unbounded FIFO, so a
// send never waits for the receiver (see the gateways' contract). Its
// growth is bounded by the protocol, not by the mailbox: a JobMaster gets
// a few messages per execution plus one metrics report per TaskManager
// and interval.
type mailbox struct {
	address  string
	ready    chan struct{} // one token while msgs may be non-empty
	done     chan struct{} // closed by Close
	unlisten func()        // frees the address in its transport

	mu     sync.Mutex
	msgs   []Message
	closed bool
}

func newMailbox(address string) *mailbox {
	return &mailbox{address: address, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// push appends msgs, in order; false if the mailbox is closed.
func (mb *mailbox) push(msgs ...Message) bool {
	mb.mu.Lock()
	if mb.closed {
		mb.mu.Unlock()
		return false
	}
	mb.msgs = append(mb.msgs, msgs...)
	mb.mu.Unlock()
	select {
	case mb.ready <- struct{}{}:
	default: // a token is already waiting
	}
	return true
}

func (mb *mailbox) Address() string        { return mb.address }
func (mb *mailbox) Ready() <-chan struct{} { return mb.ready }

func (mb *mailbox) Receive() []Message {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	msgs := mb.msgs
	mb.msgs = nil
	return msgs
}

// Close drops what is waiting and frees the address; later pushes fail.
func (mb *mailbox) Close() {
	mb.mu.Lock()
	if mb.closed {
		mb.mu.Unlock()
		return
	}
	mb.closed = true
	mb.msgs = nil
	close(mb.done)
	mb.mu.Unlock()
	mb.unlisten()
}
