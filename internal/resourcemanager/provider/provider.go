// Package provider is how the ResourceManager gets TaskManagers and gives
// them back: Flink's ResourceManagerDriver. A Provider starts workers (a
// worker is one TaskManager process, later a Kubernetes pod), stops the
// ones released, and reports what happens to them as events; the
// TaskManagers it starts register with the ResourceManager like any other,
// naming the worker id they were given (STROM_WORKER_ID, or the "{id}" of
// the command template), so the ResourceManager matches a registration to
// its request.
//
// Implementations:
//
//   - Standalone starts nothing: TaskManagers started by hand (or by an
//     outside supervisor: systemd, a Kubernetes Deployment) register
//     themselves, and the ResourceManager waits for them.
//   - LocalProcesses starts TaskManagers as child processes from a command
//     template (`strom cluster start`), supervises them as Kubernetes would
//     (a worker that exits is started again after a delay that backs off
//     while it crash-loops), stops them on release and on Close, and keeps
//     each one's stdout and stderr in a log file.
//   - A Kubernetes provider (pods) is to come, behind the same interface.
//
// A Provider is a shell: it does I/O and runs goroutines, and its events
// wait in an unbounded queue (as rpc endpoints' messages do) so a busy
// ResourceManager never blocks a supervisor: the ResourceManager's loop
// selects on Ready and calls Events.
package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// WorkerID names a worker for its whole life, across restarts of its
// process: the TaskManager's id when it registers.
type WorkerID string

// ErrUnknownWorker is Release's error for an id its provider did not start
// (or that was released and has stopped).
var ErrUnknownWorker = errors.New("unknown worker")

// ErrClosed is the error of a request to a closed provider.
var ErrClosed = errors.New("provider closed")

// Provider starts and stops TaskManagers for the ResourceManager. Its
// methods are safe for concurrent use and do not wait for processes to
// start up or stop (Close excepted).
type Provider interface {
	// Request asks for n more workers with slots slots each and returns
	// the ids of those it started (or asked its platform for); their
	// processes are starting. It may start fewer than n — Standalone
	// starts none — so the caller counts what is coming by the ids. An
	// error says why not all were started; the ids returned with it were.
	Request(ctx context.Context, n, slots int) ([]WorkerID, error)
	// Release stops a worker Request returned: its process is asked to
	// stop (SIGTERM), killed after a grace period, and not started again;
	// WorkerStopped follows. Releasing a worker already being released is
	// not an error; an id the provider does not know is ErrUnknownWorker.
	Release(ctx context.Context, id WorkerID) error
	// Ready has a value whenever events may be waiting.
	Ready() <-chan struct{}
	// Events takes every event waiting, oldest first. The events of one
	// worker come in the order they happened.
	Events() []Event
	// Close stops every worker and waits until their processes are gone;
	// then it returns. Later requests fail with ErrClosed. Events of the
	// stopping (WorkerStopped) may still be taken after Close.
	Close() error
}

// Event is something that happened to a worker. The set is closed: only
// the Worker* types of this package implement it.
type Event interface{ isEvent() }

// Events.
type (
	// WorkerStarted: a worker's process started; Start counts its starts
	// from 1 (a restart is Start > 1: its TaskManager registers again and
	// everything the previous process ran is gone).
	WorkerStarted struct {
		Worker WorkerID
		PID    int
		Start  int
		// Log is the file its stdout and stderr go to ("" if none).
		Log string
	}
	// WorkerFailed: a worker's process ended without being asked to (it
	// crashed, was killed, or exited by itself); it is started again after
	// RestartIn.
	WorkerFailed struct {
		Worker    WorkerID
		PID       int // 0 if the process could not be started at all
		Err       error
		RestartIn time.Duration
	}
	// WorkerStopped: a released worker (or every worker, on Close) is
	// gone and will not be started again. The last event of a worker.
	WorkerStopped struct {
		Worker WorkerID
	}
)

func (WorkerStarted) isEvent() {}
func (WorkerFailed) isEvent()  {}
func (WorkerStopped) isEvent() {}

func (e WorkerStarted) String() string {
	return fmt.Sprintf("worker %s started (pid %d, start %d)", e.Worker, e.PID, e.Start)
}

func (e WorkerFailed) String() string {
	return fmt.Sprintf("worker %s failed (pid %d): %v; restart in %v", e.Worker, e.PID, e.Err, e.RestartIn)
}

func (e WorkerStopped) String() string { return fmt.Sprintf("worker %s stopped", e.Worker) }

// Standalone is the provider of a cluster whose TaskManagers are started
// by hand: it starts and stops nothing and has no events. The
// ResourceManager with too few slots waits for TaskManagers to register.
type Standalone struct{}

var _ Provider = Standalone{}

// Request starts nothing.
func (Standalone) Request(context.Context, int, int) ([]WorkerID, error) { return nil, nil }

// Release knows no worker: a TaskManager started by hand is stopped by
// whoever started it.
func (Standalone) Release(_ context.Context, id WorkerID) error {
	return fmt.Errorf("standalone: release %s: %w", id, ErrUnknownWorker)
}

// Ready never fires (a nil channel blocks in a select).
func (Standalone) Ready() <-chan struct{} { return nil }

// Events is always empty.
func (Standalone) Events() []Event { return nil }

// Close has nothing to stop.
func (Standalone) Close() error { return nil }

// queue is an unbounded FIFO of events with a ready signal, like an rpc
// mailbox: pushing never blocks.
type queue struct {
	mu     sync.Mutex
	events []Event
	ready  chan struct{}
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(e Event) {
	q.mu.Lock()
	q.events = append(q.events, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) take() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.events
	q.events = nil
	return out
}
