package blob

import (
	"fmt"
	"net/url"
	"sync"
)

// Stores reachable by URL for fault-injection tests: a test wraps a store
// in a Faulty, registers it under a name and gives the job
// "faulty://NAME" as its checkpoint storage, so that the JobMaster and the
// TaskManagers — which open storage by URL, never by handle — all reach
// the faults. Closing a store opened this way leaves the registered one
// open: it is the test's.
var (
	registryMu sync.Mutex
	registry   = map[string]Store{}
)

// RegisterFaulty makes f reachable as faulty://name until the returned
// function is called.
func RegisterFaulty(name string, f *Faulty) (unregister func()) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := registry[name]; ok {
		panic(fmt.Sprintf("blob: faulty://%s registered twice", name))
	}
	registry[name] = f
	return func() {
		registryMu.Lock()
		defer registryMu.Unlock()
		delete(registry, name)
	}
}

func openRegistered(u *url.URL) (Store, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s, ok := registry[u.Host]
	if !ok {
		return nil, fmt.Errorf("no store registered as faulty://%s", u.Host)
	}
	return unclosable{s}, nil
}

type unclosable struct{ Store }

func (unclosable) Close() error { return nil }
