package rpc

import (
	"fmt"
	"sync"
)

// Local is the in-process transport: a directory of mailboxes by address.
// Messages are handed over as values (the Go types of this package), not
// encoded: that is what lets Failure.Cause through, and all it lets
// through beyond plain data.
type Local struct {
	mu    sync.Mutex
	boxes map[string]*mailbox
	drop  func(to string, m Message) bool
}

// DropWhen makes the transport lose every message drop accepts, as a
// network would, while the sender sees it sent (tests of lost messages:
// a checkpoint notification that never arrives). Set it before use.
func (l *Local) DropWhen(drop func(to string, m Message) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop = drop
}

// NewLocal returns an empty in-process transport.
func NewLocal() *Local { return &Local{boxes: map[string]*mailbox{}} }

var _ Transport = (*Local)(nil)

// Listen creates the endpoint at address, which must be free.
func (l *Local) Listen(address string) (Endpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.boxes[address]; ok {
		return nil, fmt.Errorf("rpc: address %q is in use", address)
	}
	mb := &mailbox{local: l, address: address, ready: make(chan struct{}, 1)}
	l.boxes[address] = mb
	return mb, nil
}

func (l *Local) send(address string, m Message) error {
	l.mu.Lock()
	mb := l.boxes[address]
	drop := l.drop
	l.mu.Unlock()
	if mb != nil && drop != nil && drop(address, m) {
		return nil
	}
	if mb == nil || !mb.push(m) {
		return fmt.Errorf("%w %q", ErrUnreachable, address)
	}
	return nil
}

// ResourceManager is a gateway to the ResourceManager at address.
func (l *Local) ResourceManager(address string) ResourceManagerGateway {
	return sendGateway{l.send, address}
}

// JobMaster is a gateway to the JobMaster at address.
func (l *Local) JobMaster(address string) JobMasterGateway { return sendGateway{l.send, address} }

// TaskManager is a gateway to the TaskManager at address.
func (l *Local) TaskManager(address string) TaskManagerGateway { return sendGateway{l.send, address} }

// Dispatcher is a gateway to the Dispatcher at address.
func (l *Local) Dispatcher(address string) DispatcherGateway { return sendGateway{l.send, address} }

// mailbox is an endpoint of Local: an unbounded FIFO, so a send never
// waits for the receiver (see the gateways' contract). Its growth is
// bounded by the protocol, not by the mailbox: a JobMaster gets a few
// messages per execution plus one metrics report per TaskManager and
// interval.
type mailbox struct {
	local   *Local
	address string
	ready   chan struct{} // one token while msgs may be non-empty

	mu     sync.Mutex
	msgs   []Message
	closed bool
}

func (mb *mailbox) push(m Message) bool {
	mb.mu.Lock()
	if mb.closed {
		mb.mu.Unlock()
		return false
	}
	mb.msgs = append(mb.msgs, m)
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

func (mb *mailbox) Close() {
	mb.mu.Lock()
	mb.closed = true
	mb.msgs = nil
	mb.mu.Unlock()
	mb.local.mu.Lock()
	if mb.local.boxes[mb.address] == mb {
		delete(mb.local.boxes, mb.address)
	}
	mb.local.mu.Unlock()
}
