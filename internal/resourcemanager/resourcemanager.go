// Package resourcemanager is the ResourceManager role: it owns the
// TaskManagers' slots and hands them to JobMasters. It knows the others
// only by address and speaks to them through rpc gateways.
package resourcemanager

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// ResourceManager grants slots. A request that the cluster could never
// satisfy is refused at once; one that must wait for other jobs' slots
// queues in arrival order. Answers go to the asking JobMaster's gateway as
// SlotsGranted or SlotsRefused, so the ResourceManager never waits for a
// JobMaster.
type ResourceManager struct {
	ep  rpc.Endpoint
	net rpc.Transport
	log *slog.Logger

	// Owned by the run loop.
	tms   map[string]*tmSlots
	order []string // TaskManager ids in registration order
	queue []rpc.RequestSlots

	registered atomic.Int64 // slots offered, for RegisteredSlots
}

type tmSlots struct {
	address     string
	dataAddress string
	owner       []string // job id per slot, "" = free
}

// New creates the ResourceManager's endpoint at address; Run serves it.
func New(net rpc.Transport, address string, log *slog.Logger) (*ResourceManager, error) {
	ep, err := net.Listen(address)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &ResourceManager{ep: ep, net: net, log: log, tms: map[string]*tmSlots{}}, nil
}

// RegisteredSlots is how many slots registered TaskManagers offer, for the
// process that runs the ResourceManager (any goroutine): the embedded
// cluster waits for its TaskManagers' registrations when they travel over
// the network.
func (rm *ResourceManager) RegisteredSlots() int { return int(rm.registered.Load()) }

// Address is where the ResourceManager is reached.
func (rm *ResourceManager) Address() string { return rm.ep.Address() }

// Run serves messages until ctx ends; then it refuses what still waits.
func (rm *ResourceManager) Run(ctx context.Context) {
	defer rm.ep.Close()
	for {
		select {
		case <-ctx.Done():
			for _, q := range rm.queue {
				rm.refuse(q, "resource manager stopped")
			}
			return
		case <-rm.ep.Ready():
			for _, m := range rm.ep.Receive() {
				rm.handle(m)
			}
		}
	}
}

func (rm *ResourceManager) total() int {
	n := 0
	for _, t := range rm.tms {
		n += len(t.owner)
	}
	return n
}

func (rm *ResourceManager) handle(m rpc.Message) {
	switch m := m.(type) {
	case rpc.RegisterTaskManager:
		if _, ok := rm.tms[m.TaskManager]; !ok {
			rm.order = append(rm.order, m.TaskManager)
		}
		rm.tms[m.TaskManager] = &tmSlots{address: m.Address, dataAddress: m.DataAddress, owner: make([]string, m.Slots)}
		rm.registered.Store(int64(rm.total()))
		rm.serveQueue()
	case rpc.RequestSlots:
		if m.N > rm.total() {
			rm.refuse(m, fmt.Sprintf("job needs %d slots but the cluster has %d (%d TaskManagers)", m.N, rm.total(), len(rm.tms)))
			return
		}
		rm.queue = append(rm.queue, m)
		rm.serveQueue()
	case rpc.CancelSlotRequest:
		kept := rm.queue[:0]
		for _, q := range rm.queue {
			if q.JobID == m.JobID && q.RequestID == m.RequestID {
				rm.refuse(q, "slot request withdrawn")
				continue
			}
			kept = append(kept, q)
		}
		clear(rm.queue[len(kept):])
		rm.queue = kept
		rm.serveQueue() // requests behind the withdrawn one may fit now
	case rpc.ReleaseSlots:
		for _, s := range m.Slots {
			if t, ok := rm.tms[s.TaskManager]; ok && s.Index < len(t.owner) && t.owner[s.Index] == m.JobID {
				t.owner[s.Index] = ""
			}
		}
		rm.serveQueue()
	default:
		rm.log.Warn("resource manager: unexpected message", "type", fmt.Sprintf("%T", m))
	}
}

// refuse answers q with SlotsRefused. A JobMaster that is gone needs no
// answer, so a failed send is only logged.
func (rm *ResourceManager) refuse(q rpc.RequestSlots, reason string) {
	err := rm.net.JobMaster(q.JobMaster).SlotsRefused(rpc.SlotsRefused{JobID: q.JobID, RequestID: q.RequestID, Reason: reason})
	if err != nil {
		rm.log.Debug("resource manager: slot answer not delivered", "job_id", q.JobID, "error", err)
	}
}

// serveQueue grants queued requests in order while enough slots are free.
// Slots are spread over TaskManagers round-robin so a job uses every
// TaskManager, as Flink's cluster.evenly-spread-out-slots does.
func (rm *ResourceManager) serveQueue() {
	for len(rm.queue) > 0 {
		q := rm.queue[0]
		var free []rpc.SlotOffer
		maxSlots := 0
		for _, id := range rm.order {
			maxSlots = max(maxSlots, len(rm.tms[id].owner))
		}
		for i := 0; i < maxSlots && len(free) < q.N; i++ {
			for _, id := range rm.order {
				t := rm.tms[id]
				if i < len(t.owner) && t.owner[i] == "" && len(free) < q.N {
					free = append(free, rpc.SlotOffer{Slot: scheduler.SlotID{TaskManager: id, Index: i}, Address: t.address, DataAddress: t.dataAddress})
				}
			}
		}
		if len(free) < q.N {
			return
		}
		rm.queue = rm.queue[1:]
		err := rm.net.JobMaster(q.JobMaster).SlotsGranted(rpc.SlotsGranted{JobID: q.JobID, RequestID: q.RequestID, Slots: free})
		if err != nil {
			// The JobMaster is gone: the slots stay free.
			rm.log.Debug("resource manager: slot grant not delivered", "job_id", q.JobID, "error", err)
			continue
		}
		for _, s := range free {
			rm.tms[s.Slot.TaskManager].owner[s.Slot.Index] = q.JobID
		}
	}
}
