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
	mb := newMailbox(address)
	mb.unlisten = func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.boxes[address] == mb {
			delete(l.boxes, address)
		}
	}
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
