package resourcemanager

import (
	"slices"
	"time"

	"github.com/strom-dev/strom/internal/resourcemanager/provider"
)

// workers is the ResourceManager's account of the TaskManagers its
// provider started (Flink's ActiveResourceManager bookkeeping), kept as a
// pure state machine: the loop tells it what happened, with the time, and
// carries out what it answers — ask the provider for so many workers,
// release these. It does no I/O and reads no clock.
//
// A worker is pending from the Request that started it until its
// TaskManager registers, and again from the moment that TaskManager is
// dropped (heartbeat timeout or connection loss) until it registers again:
// the provider starts a process that ended again, and a frozen one
// registers again when it wakes, so its slots are still coming. Only the
// provider's WorkerStopped ends a worker. Counting the slots of pending
// workers as slots to come is what keeps the ResourceManager from asking
// twice for one shortfall; a pending worker that stops gives its share of
// the shortfall back, and the next look asks again.
//
// A worker whose process crash-loops stays pending (the provider keeps
// restarting it); the requests it was meant for wait until their slot
// request timeout, as they would for a standalone TaskManager.
type workers struct {
	slotsPerWorker int
	idleTimeout    time.Duration // < 0: never release
	retryDelay     time.Duration
	byID           map[provider.WorkerID]*worker
	// retryAt holds back the next Request after one the provider could
	// not fully serve (an error, or Standalone's none), so a refusing
	// provider is not asked again on every turn of the loop.
	retryAt time.Time
}

type workerState uint8

const (
	workerPending workerState = iota
	workerRegistered
	// workerReleasing: Release was called; its TaskManager's slots are out
	// of the table and it waits for WorkerStopped.
	workerReleasing
)

func (s workerState) String() string {
	switch s {
	case workerPending:
		return "pending"
	case workerRegistered:
		return "registered"
	case workerReleasing:
		return "releasing"
	}
	return "?"
}

type worker struct {
	state workerState
	// idleSince is when the registered worker's slots last became all
	// free; zero while one is taken.
	idleSince time.Time
}

func newWorkers(slotsPerWorker int, idleTimeout, retryDelay time.Duration) *workers {
	return &workers{slotsPerWorker: slotsPerWorker, idleTimeout: idleTimeout, retryDelay: retryDelay,
		byID: map[provider.WorkerID]*worker{}}
}

// pending is the number of pending workers.
func (ws *workers) pending() int {
	n := 0
	for _, w := range ws.byID {
		if w.state == workerPending {
			n++
		}
	}
	return n
}

// toRequest is how many workers to ask the provider for at now: enough,
// in whole workers, for the slots the waiting requests need beyond the
// free slots and the slots pending workers will bring; none while the
// retry delay after a request the provider fell short on runs.
func (ws *workers) toRequest(now time.Time, need, free int) int {
	short := need - free - ws.pending()*ws.slotsPerWorker
	if short <= 0 || now.Before(ws.retryAt) {
		return 0
	}
	return (short + ws.slotsPerWorker - 1) / ws.slotsPerWorker
}

// requested records the answer to a Request for asked workers: the ids
// it started are pending. Fewer than asked holds back the next request
// for the retry delay.
func (ws *workers) requested(now time.Time, asked int, ids []provider.WorkerID) {
	for _, id := range ids {
		ws.byID[id] = &worker{state: workerPending}
	}
	if len(ids) < asked {
		ws.retryAt = now.Add(ws.retryDelay)
	}
}

// releasing says whether the worker id is being released: its
// registration (sent before it was told to stop) must not put its slots
// back in the table.
func (ws *workers) releasing(id string) bool {
	w, ok := ws.byID[provider.WorkerID(id)]
	return ok && w.state == workerReleasing
}

// registered records the registration of TaskManager id (one not
// started by the provider is not recorded: it is never released). Its
// idle time starts at the next slots.
func (ws *workers) registered(id string) {
	if w, ok := ws.byID[provider.WorkerID(id)]; ok && w.state != workerReleasing {
		w.state, w.idleSince = workerRegistered, time.Time{}
	}
}

// lost records that TaskManager id was dropped: pending again.
func (ws *workers) lost(id string) {
	if w, ok := ws.byID[provider.WorkerID(id)]; ok && w.state == workerRegistered {
		w.state, w.idleSince = workerPending, time.Time{}
	}
}

// stopped records the provider's WorkerStopped: the worker is gone for
// good. wasRegistered says its slots are still in the table.
func (ws *workers) stopped(id provider.WorkerID) (wasRegistered bool) {
	w, ok := ws.byID[id]
	delete(ws.byID, id)
	return ok && w.state == workerRegistered
}

// slots records at now whether every slot of the registered TaskManager id
// is free.
func (ws *workers) slots(now time.Time, id string, allFree bool) {
	w, ok := ws.byID[provider.WorkerID(id)]
	if !ok || w.state != workerRegistered {
		return
	}
	switch {
	case !allFree:
		w.idleSince = time.Time{}
	case w.idleSince.IsZero():
		w.idleSince = now
	}
}

// toRelease are the registered workers idle for the idle timeout at now,
// in id order. None while requests wait: their free slots count toward
// those requests, which would only ask for them again.
func (ws *workers) toRelease(now time.Time, waiting bool) []provider.WorkerID {
	if ws.idleTimeout < 0 || waiting {
		return nil
	}
	var ids []provider.WorkerID
	for id, w := range ws.byID {
		if w.state == workerRegistered && !w.idleSince.IsZero() && !now.Before(w.idleSince.Add(ws.idleTimeout)) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// released records that Release of id succeeded.
func (ws *workers) released(id provider.WorkerID) {
	if w, ok := ws.byID[id]; ok {
		w.state, w.idleSince = workerReleasing, time.Time{}
	}
}

// releaseFailed records that Release of id failed at now: the worker
// stays, and is tried again after another idle timeout.
func (ws *workers) releaseFailed(now time.Time, id provider.WorkerID) {
	if w, ok := ws.byID[id]; ok && w.state == workerRegistered {
		w.idleSince = now
	}
}

// next is the earliest time after now at which toRelease or toRequest
// may answer otherwise with nothing else happening (zero: none): the end
// of the retry delay, an idle worker's deadline. While requests wait no
// idle worker is released, so its deadline does not count: what ends the
// wait is an event of its own (a grant, a withdrawal, a refusal).
func (ws *workers) next(now time.Time, waiting bool) time.Time {
	var next time.Time
	if ws.retryAt.After(now) {
		next = ws.retryAt
	}
	if ws.idleTimeout < 0 || waiting {
		return next
	}
	for _, w := range ws.byID {
		if w.state != workerRegistered || w.idleSince.IsZero() {
			continue
		}
		if d := w.idleSince.Add(ws.idleTimeout); d.After(now) && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}
