// Package resourcemanager is the ResourceManager role: it owns the
// TaskManagers' slots and hands them to JobMasters. It knows the others
// only by address and speaks to them through rpc gateways.
package resourcemanager

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// ResourceManager grants slots. A request waits in arrival order until
// enough slots are free — also one for more slots than the cluster has
// now, since TaskManagers may register (again) — and is refused only when
// it waited Config.SlotRequestTimeout. Answers go to the asking JobMaster's gateway as
// SlotsGranted or SlotsRefused, so the ResourceManager never waits for a
// JobMaster.
type ResourceManager struct {
	ep  rpc.Endpoint
	net rpc.Transport
	log *slog.Logger
	cfg Config

	// Owned by the run loop.
	tms   map[string]*tmSlots
	order []string // TaskManager ids in registration order
	queue []rpc.RequestSlots
	// deadlines are when the queued requests are refused; timer fires
	// at the earliest.
	deadlines map[reqKey]time.Time
	timer     *time.Timer
	hb        *heartbeat.Shell
	hbSeq     uint64
	tmAddr    map[string]string // TaskManager id → address, kept after death (fencing)

	registered atomic.Int64 // slots offered, for RegisteredSlots
	// snapshot is the registered TaskManagers, for TaskManagers.
	snapshot atomic.Pointer[[]TaskManagerInfo]
	peak     int // the most slots registered at one time
}

type reqKey struct {
	job string
	id  uint64
}

// DefaultSlotRequestTimeout is how long a slot request may wait for
// slots when Config.SlotRequestTimeout is not set (Flink's
// slot.request.timeout).
const DefaultSlotRequestTimeout = 5 * time.Minute

// Config tunes a ResourceManager; the zero Config means the defaults.
type Config struct {
	// SlotRequestTimeout is how long a request waits for slots before it
	// is refused (0: DefaultSlotRequestTimeout).
	SlotRequestTimeout time.Duration
	// Heartbeat sets the heartbeats to the registered TaskManagers (zero:
	// 1 s interval, 5 s timeout). One declared dead has its slots
	// dropped; if it answers again it is told to cancel its tasks and
	// register again.
	Heartbeat heartbeat.Config
	// RefuseAboveCapacity refuses at once a request for more slots than
	// the cluster ever had at one time: for an embedded cluster, whose
	// TaskManagers all start with it, such a request could never be
	// served. A request the cluster is short for only because
	// TaskManagers were lost still waits.
	RefuseAboveCapacity bool
}

type tmSlots struct {
	address     string
	dataAddress string
	owner       []string // job id per slot, "" = free
}

// New creates the ResourceManager's endpoint at address; Run serves it.
func New(net rpc.Transport, address string, log *slog.Logger) (*ResourceManager, error) {
	return NewWithConfig(net, address, log, Config{})
}

// NewWithConfig is New with a Config.
func NewWithConfig(net rpc.Transport, address string, log *slog.Logger, cfg Config) (*ResourceManager, error) {
	if cfg.SlotRequestTimeout <= 0 {
		cfg.SlotRequestTimeout = DefaultSlotRequestTimeout
	}
	hb, err := heartbeat.NewShell(cfg.Heartbeat)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	ep, err := net.Listen(address)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &ResourceManager{ep: ep, net: net, log: log, cfg: cfg, tms: map[string]*tmSlots{},
		deadlines: map[reqKey]time.Time{}, hb: hb, tmAddr: map[string]string{}}, nil
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
	defer rm.hb.Stop()
	defer rm.stopTimer()
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
		case <-rm.hb.C():
			rm.hbDo(rm.hb.Handle(nil))
		case <-rm.hb.Lost():
			for _, l := range rm.hb.TakeLosses() {
				for id, addr := range rm.tmAddr {
					if addr == l.Address {
						rm.hbDo(rm.hb.Handle(heartbeat.EvConnectionLost{Target: id, Reason: l.Reason}))
					}
				}
			}
		case <-rm.timerC():
			rm.timer = nil
		}
		rm.expire(time.Now())
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
		if t, ok := rm.tms[m.TaskManager]; ok && t.address == m.Address && t.dataAddress == m.DataAddress && len(t.owner) == m.Slots {
			// The same registration again (sent again because no
			// heartbeat request came soon enough): its slots stay granted.
			return
		}
		rm.tms[m.TaskManager] = &tmSlots{address: m.Address, dataAddress: m.DataAddress, owner: make([]string, m.Slots)}
		rm.tmAddr[m.TaskManager] = m.Address
		rm.publish()
		rm.peak = max(rm.peak, rm.total())
		rm.hbDo(rm.hb.Handle(heartbeat.EvAdd{Target: m.TaskManager}))
		rm.serveQueue()
	case rpc.TaskManagerHeartbeat:
		rm.hbDo(rm.hb.Handle(heartbeat.EvHeartbeat{Target: m.TaskManager}))
	case rpc.RequestSlots:
		if rm.cfg.RefuseAboveCapacity && m.N > rm.peak {
			rm.refuse(m, fmt.Sprintf("job needs %d slots but the cluster has %d (%d TaskManagers)", m.N, rm.total(), len(rm.tms)))
			return
		}
		if m.N > rm.total() {
			// Not refused: a TaskManager may register (again) in time.
			rm.log.Info("resource manager: slot request waits for TaskManagers", "job_id", m.JobID, "slots", m.N, "registered", rm.total(), "timeout", rm.cfg.SlotRequestTimeout)
		}
		rm.deadlines[reqKey{m.JobID, m.RequestID}] = time.Now().Add(rm.cfg.SlotRequestTimeout)
		rm.queue = append(rm.queue, m)
		rm.serveQueue()
	case rpc.CancelSlotRequest:
		kept := rm.queue[:0]
		for _, q := range rm.queue {
			if q.JobID == m.JobID && q.RequestID == m.RequestID {
				delete(rm.deadlines, reqKey{q.JobID, q.RequestID})
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
		delete(rm.deadlines, reqKey{q.JobID, q.RequestID})
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

// expire refuses the queued requests whose deadline passed, and sets the
// timer for the next deadline.
func (rm *ResourceManager) expire(now time.Time) {
	kept := rm.queue[:0]
	var next time.Time
	for _, q := range rm.queue {
		d := rm.deadlines[reqKey{q.JobID, q.RequestID}]
		if !now.Before(d) {
			delete(rm.deadlines, reqKey{q.JobID, q.RequestID})
			rm.refuse(q, fmt.Sprintf("no %d free slots within the slot request timeout of %v: the cluster has %d (%d TaskManagers)", q.N, rm.cfg.SlotRequestTimeout, rm.total(), len(rm.tms)))
			continue
		}
		if next.IsZero() || d.Before(next) {
			next = d
		}
		kept = append(kept, q)
	}
	clear(rm.queue[len(kept):])
	rm.queue = kept
	rm.stopTimer()
	if !next.IsZero() {
		rm.timer = time.NewTimer(time.Until(next))
	}
	if len(kept) > 0 {
		rm.serveQueue() // a refused head may have held others back
	}
}

func (rm *ResourceManager) timerC() <-chan time.Time {
	if rm.timer == nil {
		return nil
	}
	return rm.timer.C
}

func (rm *ResourceManager) stopTimer() {
	if rm.timer != nil {
		rm.timer.Stop()
		rm.timer = nil
	}
}

// TaskManagerUnreachable tells the ResourceManager that messages to
// address can no longer be delivered (rpc.NetworkOptions.OnUnreachable of
// its process, routed here by the process owner); safe on any goroutine.
// A TaskManager at that address is declared lost in the loop.
func (rm *ResourceManager) TaskManagerUnreachable(address, reason string) {
	rm.hb.ConnectionLost(address, reason)
}

func (rm *ResourceManager) hbDo(acts []heartbeat.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case heartbeat.ActSendRequest:
			rm.hbSeq++
			if err := rm.net.TaskManager(rm.tmAddr[a.Target]).RequestHeartbeat(rpc.HeartbeatRequest{ReplyTo: rm.ep.Address(), Seq: rm.hbSeq}); err != nil {
				rm.hbDo(rm.hb.Handle(heartbeat.EvConnectionLost{Target: a.Target, Reason: err.Error()}))
			}
		case heartbeat.ActTimedOut:
			rm.dropTaskManager(a.Target, fmt.Sprintf("heartbeat timeout after %v", rm.hb.Monitor().Config().Timeout))
		case heartbeat.ActLost:
			rm.dropTaskManager(a.Target, "connection lost: "+a.Reason)
		case heartbeat.ActResumed:
			// Its slots were dropped and the JobMasters failed its tasks:
			// it must cancel them and register again (fencing).
			rm.log.Info("resource manager: TaskManager declared dead answers again; asking it to register again", "task_manager", a.Target)
			rm.hbSeq++
			if err := rm.net.TaskManager(rm.tmAddr[a.Target]).RequestHeartbeat(rpc.HeartbeatRequest{ReplyTo: rm.ep.Address(), Seq: rm.hbSeq, Reregister: true}); err != nil {
				rm.log.Debug("resource manager: re-registration request not delivered", "task_manager", a.Target, "error", err)
			}
		}
	}
}

// dropTaskManager forgets a dead TaskManager's slots: they are granted no
// more, and what ran there the JobMasters fail by their own detection.
func (rm *ResourceManager) dropTaskManager(id, reason string) {
	if _, ok := rm.tms[id]; !ok {
		return
	}
	rm.log.Warn("resource manager: TaskManager lost; its slots are dropped", "task_manager", id, "reason", reason)
	delete(rm.tms, id)
	rm.order = slices.DeleteFunc(rm.order, func(x string) bool { return x == id })
	rm.publish()
}
