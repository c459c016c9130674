package resourcemanager

import (
	"context"
	"time"

	"github.com/strom-dev/strom/internal/resourcemanager/provider"
)

// The shell around workers: the provider's events in, its Request and
// Release out, all on the loop's goroutine.

// providerReady is the provider's event signal (nil, never ready, without
// a provider).
func (rm *ResourceManager) providerReady() <-chan struct{} {
	if rm.cfg.Provider == nil {
		return nil
	}
	return rm.cfg.Provider.Ready()
}

// workerEvents takes the provider's events. Only WorkerStopped changes the
// books: a worker that failed is started again by its provider, and its
// TaskManager's death reaches the heartbeat monitor as for any other.
func (rm *ResourceManager) workerEvents() {
	for _, e := range rm.cfg.Provider.Events() {
		switch e := e.(type) {
		case provider.WorkerStarted:
			rm.log.Debug("resource manager: worker started", "worker", e.Worker, "pid", e.PID, "start", e.Start, "log", e.Log)
		case provider.WorkerFailed:
			rm.log.Info("resource manager: worker failed; its provider starts it again", "worker", e.Worker, "pid", e.PID, "error", e.Err, "restart_in", e.RestartIn)
		case provider.WorkerStopped:
			if rm.ws.stopped(e.Worker) {
				// Not released by us (the provider is closing): its
				// TaskManager is gone, so are its slots.
				rm.log.Info("resource manager: worker stopped by its provider; its slots are dropped", "worker", e.Worker)
				rm.forgetTaskManager(string(e.Worker))
			} else {
				rm.log.Debug("resource manager: worker stopped", "worker", e.Worker)
			}
		}
	}
}

// reconcile brings the workers in line with the slot table at now: it
// updates their idle times, asks the provider for the workers the waiting
// requests are short of, and releases the ones idle too long.
func (rm *ResourceManager) reconcile(ctx context.Context, now time.Time) {
	if rm.ws == nil {
		return
	}
	need, free := 0, 0
	for _, q := range rm.queue {
		need += q.N
	}
	for id, t := range rm.tms {
		n := 0
		for _, o := range t.owner {
			if o == "" {
				n++
			}
		}
		free += n
		rm.ws.slots(now, id, n == len(t.owner))
	}
	if n := rm.ws.toRequest(now, need, free); n > 0 {
		rm.requestWorkers(ctx, now, n, need, free)
	}
	for _, id := range rm.ws.toRelease(now, len(rm.queue) > 0) {
		rm.releaseWorker(ctx, now, id)
	}
}

func (rm *ResourceManager) requestWorkers(ctx context.Context, now time.Time, n, need, free int) {
	rm.log.Info("resource manager: asking the provider for TaskManagers", "workers", n, "slots_each", rm.cfg.SlotsPerWorker,
		"slots_needed", need, "slots_free", free, "workers_pending", rm.ws.pending())
	ids, err := rm.cfg.Provider.Request(ctx, n, rm.cfg.SlotsPerWorker)
	rm.ws.requested(now, n, ids)
	switch {
	case err != nil:
		rm.log.Warn("resource manager: the provider did not start all TaskManagers asked for; the slot requests wait",
			"asked", n, "started", len(ids), "error", err, "retry_in", rm.cfg.ProviderRetryDelay)
	case len(ids) < n:
		// Standalone starts none: TaskManagers are started by hand.
		rm.log.Debug("resource manager: the provider started fewer TaskManagers than asked; the slot requests wait",
			"asked", n, "started", len(ids), "retry_in", rm.cfg.ProviderRetryDelay)
	}
}

// releaseWorker releases an idle worker. Its slots leave the table at
// once, before it stops, so none is granted to a TaskManager on its way
// out.
func (rm *ResourceManager) releaseWorker(ctx context.Context, now time.Time, id provider.WorkerID) {
	if err := rm.cfg.Provider.Release(ctx, id); err != nil {
		rm.log.Warn("resource manager: releasing an idle TaskManager failed; it stays", "task_manager", id, "error", err, "retry_in", rm.cfg.IdleTimeout)
		rm.ws.releaseFailed(now, id)
		return
	}
	rm.log.Info("resource manager: idle TaskManager released", "task_manager", id, "idle_timeout", rm.cfg.IdleTimeout)
	rm.ws.released(id)
	rm.forgetTaskManager(string(id))
}
