package network

import (
	"fmt"
	"slices"
	"sync"
)

// ChannelKey names one logical channel of one job attempt: the stream edge,
// the producer subtask and the consumer subtask, and the attempt both run
// in. A restarted task looks up its channels under its new attempt, so it
// never reads what a previous attempt of its producer left in a channel, nor
// does a previous attempt still winding down write into the new one's.
// Producer and consumer of a pipelined channel fail and restart together
// (one pipelined region), so they share the attempt number.
type ChannelKey struct {
	Job      string
	Attempt  int
	Edge     int
	Producer int
	Consumer int
}

// TaskKey names a consumer task attempt, for its notifier.
type TaskKey struct {
	Job     string
	Attempt int
	Vertex  int
	Subtask int
}

// Registry is the in-process shuffle environment: producers and consumers
// that share a process find their channels here, whichever is deployed first.
type Registry struct {
	mu        sync.Mutex
	channels  map[ChannelKey]any
	notifiers map[TaskKey]Notifier
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{channels: map[ChannelKey]any{}, notifiers: map[TaskKey]Notifier{}}
}

// Channel returns the channel for k, creating it with create on first use.
// create runs under the registry lock and must not call the registry.
func (r *Registry) Channel(k ChannelKey, create func() any) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.channels[k]; ok {
		return c
	}
	c := create()
	r.channels[k] = c
	return c
}

// Notifier returns the notifier of consumer task k.
func (r *Registry) Notifier(k TaskKey) Notifier {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.notifiers[k]; ok {
		return n
	}
	n := NewNotifier()
	r.notifiers[k] = n
	return n
}

// ReleaseJob forgets every channel and notifier of a job.
func (r *Registry) ReleaseJob(job string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.channels {
		if k.Job == job {
			delete(r.channels, k)
		}
	}
	for k := range r.notifiers {
		if k.Job == job {
			delete(r.notifiers, k)
		}
	}
}

// ReleaseAttempt forgets every channel and notifier of one attempt of a job,
// once its tasks have ended: the batches left in them are dropped with them,
// and the next attempt starts from empty channels of its own.
func (r *Registry) ReleaseAttempt(job string, attempt int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.channels {
		if k.Job == job && k.Attempt == attempt {
			delete(r.channels, k)
		}
	}
	for k := range r.notifiers {
		if k.Job == job && k.Attempt == attempt {
			delete(r.notifiers, k)
		}
	}
}

// ReleaseVertices forgets the channels and notifiers of one attempt of
// some vertices of a job: a region restarted alone (region failover). The
// other regions may run at the same attempt number (every region starts
// at 0), so ReleaseAttempt would take their live channels too. Channels
// are those of edges (stream edge ids) into the vertices; a region's edges
// all start and end in it.
func (r *Registry) ReleaseVertices(job string, attempt int, vertices, edges []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.channels {
		if k.Job == job && k.Attempt == attempt && slices.Contains(edges, k.Edge) {
			delete(r.channels, k)
		}
	}
	for k := range r.notifiers {
		if k.Job == job && k.Attempt == attempt && slices.Contains(vertices, k.Vertex) {
			delete(r.notifiers, k)
		}
	}
}

// Len is the number of live channels (tests check that jobs release theirs).
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.channels)
}

func (k ChannelKey) String() string {
	return fmt.Sprintf("%s#%d/e%d/%d->%d", k.Job, k.Attempt, k.Edge, k.Producer, k.Consumer)
}
