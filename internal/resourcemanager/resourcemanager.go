// Package resourcemanager is the ResourceManager role: it owns the
// TaskManagers' slots and hands them to JobMasters. It knows the others
// only by address and speaks to them through rpc gateways. With a
// resource provider (Config.Provider) it also starts TaskManagers when
// slots are short and stops the ones left idle, as Flink's
// ActiveResourceManager does.
package resourcemanager

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/internal/heartbeat"
	"github.com/strom-dev/strom/internal/resourcemanager/provider"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/scheduler"
)

// ResourceManager grants slots. A request waits in arrival order until
// enough slots are free — also one for more slots than the cluster has
// now, since TaskManagers may register (again) — and is refused only when
// it waited Config.SlotRequestTimeout. Answers go to the asking JobMaster's gateway as
// SlotsGranted or SlotsRefused, so the ResourceManager never waits for a
// JobMaster.
//
// With a Config.Provider, waiting requests also make it ask the provider
// for as many workers (TaskManagers of Config.SlotsPerWorker slots) as
// cover what they need beyond the free slots and the slots of workers
// asked for and not registered yet, so one shortfall is asked for once; a
// worker that stops before it registers is asked for again. A TaskManager
// registers with the id of its worker, which is how the ResourceManager
// tells the provider's TaskManagers from TaskManagers started by hand. One
// of the provider's whose slots were all free for Config.IdleTimeout, while
// no request waits, is released: its slots leave the table at once and it
// stops. TaskManagers started by hand are never released. The provider is
// called from the loop (its methods do not wait for processes) and its
// events are read there; a provider that starts fewer workers than asked
// (an error, or Standalone's none) is asked again after
// Config.ProviderRetryDelay, and meanwhile the requests wait as they would
// for TaskManagers started by hand.
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

	// ws accounts for the provider's workers; nil without a provider.
	ws *workers
	// killed makes Run return without a word to anyone (Kill).
	killed atomic.Bool
}

type reqKey struct {
	job string
	id  uint64
}

// DefaultSlotRequestTimeout is how long a slot request may wait for
// slots when Config.SlotRequestTimeout is not set (Flink's
// slot.request.timeout).
const DefaultSlotRequestTimeout = 5 * time.Minute

// DefaultIdleTimeout is how long a TaskManager started by the provider may
// have all its slots free before it is released, when Config.IdleTimeout
// is not set (Flink's resourcemanager.taskmanager-timeout).
const DefaultIdleTimeout = 30 * time.Second

// DefaultProviderRetryDelay is how long the ResourceManager waits before
// it asks again a provider that started fewer workers than asked, when
// Config.ProviderRetryDelay is not set (Flink's
// resourcemanager.start-worker.retry-interval).
const DefaultProviderRetryDelay = 3 * time.Second

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
	// TaskManagers were lost still waits. A refused request asks the
	// Provider for nothing.
	RefuseAboveCapacity bool
	// Provider starts TaskManagers when slots are short and stops idle
	// ones (nil: none are started or stopped, as with
	// provider.Standalone, and the provider is never called). The
	// ResourceManager does not Close it: whoever made it does, after Run
	// returned.
	Provider provider.Provider
	// SlotsPerWorker is the number of slots a TaskManager asked of the
	// Provider offers (0: 1, Flink's taskmanager.numberOfTaskSlots).
	SlotsPerWorker int
	// IdleTimeout is how long a TaskManager the Provider started may have
	// every slot free before it is released (0: DefaultIdleTimeout;
	// negative: never).
	IdleTimeout time.Duration
	// ProviderRetryDelay is how long the ResourceManager waits before it
	// asks the Provider again after it started fewer workers than asked
	// (0: DefaultProviderRetryDelay).
	ProviderRetryDelay time.Duration
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
	if cfg.SlotsPerWorker < 0 || cfg.ProviderRetryDelay < 0 {
		return nil, fmt.Errorf("resource manager: negative slots per worker (%d) or provider retry delay (%v)", cfg.SlotsPerWorker, cfg.ProviderRetryDelay)
	}
	if cfg.SlotsPerWorker == 0 {
		cfg.SlotsPerWorker = 1
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ProviderRetryDelay == 0 {
		cfg.ProviderRetryDelay = DefaultProviderRetryDelay
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
	rm := &ResourceManager{ep: ep, net: net, log: log, cfg: cfg, tms: map[string]*tmSlots{},
		deadlines: map[reqKey]time.Time{}, hb: hb, tmAddr: map[string]string{}}
	if cfg.Provider != nil {
		rm.ws = newWorkers(cfg.SlotsPerWorker, cfg.IdleTimeout, cfg.ProviderRetryDelay)
	}
	return rm, nil
}

// RegisteredSlots is how many slots registered TaskManagers offer, for the
// process that runs the ResourceManager (any goroutine): the embedded
// cluster waits for its TaskManagers' registrations when they travel over
// the network.
func (rm *ResourceManager) RegisteredSlots() int { return int(rm.registered.Load()) }

// Kill makes Run return at once when its context ends, sending nothing
// (the slot requests waiting are not refused), as if its process had been
// killed: tests of a ResourceManager failover. Its TaskManagers notice
// it is gone by its silence and register with the next one. Safe on any
// goroutine.
func (rm *ResourceManager) Kill() { rm.killed.Store(true) }

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
			if rm.killed.Load() {
				return // as on SIGKILL: waiting requests hear nothing
			}
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
		case <-rm.providerReady():
			rm.workerEvents()
		case <-rm.timerC():
			rm.timer = nil
		}
		now := time.Now()
		rm.expire(now)
		rm.reconcile(ctx, now)
		rm.arm(now)
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
		if rm.ws != nil && rm.ws.releasing(m.TaskManager) {
			// Sent before it was told to stop: its slots stay out.
			rm.log.Info("resource manager: registration of a released TaskManager ignored", "task_manager", m.TaskManager)
			return
		}
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
		if rm.ws != nil {
			rm.ws.registered(m.TaskManager)
		}
		rm.serveQueue()
	case rpc.TaskManagerHeartbeat:
		rm.hbDo(rm.hb.Handle(heartbeat.EvHeartbeat{Target: m.TaskManager}))
	case rpc.RequestSlots:
		rm.takeBack(m.JobID)
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

// takeBack frees the slots job holds when it asks for slots: a JobMaster
// asks only while its job holds none (at its start, and after it gave
// every slot back when a TaskManager was lost), so slots still held come
// from a JobMaster of the job that died without releasing them (its
// successor, recovering the job, asks now), as Flink's ResourceManager
// frees a lost JobMaster's slots.
func (rm *ResourceManager) takeBack(job string) {
	n := 0
	for _, t := range rm.tms {
		for i, o := range t.owner {
			if o == job {
				t.owner[i] = ""
				n++
			}
		}
	}
	if n > 0 {
		rm.log.Info("resource manager: slot request of a job that holds slots: a new JobMaster of it; its slots are taken back", "job_id", job, "slots", n)
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

// expire refuses the queued requests whose deadline passed.
func (rm *ResourceManager) expire(now time.Time) {
	kept := rm.queue[:0]
	for _, q := range rm.queue {
		d := rm.deadlines[reqKey{q.JobID, q.RequestID}]
		if !now.Before(d) {
			delete(rm.deadlines, reqKey{q.JobID, q.RequestID})
			rm.refuse(q, fmt.Sprintf("no %d free slots within the slot request timeout of %v: the cluster has %d (%d TaskManagers)", q.N, rm.cfg.SlotRequestTimeout, rm.total(), len(rm.tms)))
			continue
		}
		kept = append(kept, q)
	}
	clear(rm.queue[len(kept):])
	rm.queue = kept
	if len(kept) > 0 {
		rm.serveQueue() // a refused head may have held others back
	}
}

// arm sets the timer for the earliest of the queued requests' deadlines
// and the workers' next (an idle deadline, the end of a retry delay).
func (rm *ResourceManager) arm(now time.Time) {
	rm.stopTimer()
	var next time.Time
	for _, d := range rm.deadlines {
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	if rm.ws != nil {
		if w := rm.ws.next(now, len(rm.queue) > 0); !w.IsZero() && (next.IsZero() || w.Before(next)) {
			next = w
		}
	}
	if !next.IsZero() {
		rm.timer = time.NewTimer(next.Sub(now))
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
	rm.removeSlots(id)
	if rm.ws != nil {
		rm.ws.lost(id)
	}
}

// removeSlots takes a TaskManager's slots out of the table.
func (rm *ResourceManager) removeSlots(id string) {
	delete(rm.tms, id)
	rm.order = slices.DeleteFunc(rm.order, func(x string) bool { return x == id })
	rm.publish()
}

// forgetTaskManager removes a TaskManager that stops on purpose (released,
// or stopped by its provider): its slots leave the table and, unlike a
// lost one's, its heartbeats and address too, so that its connection
// closing is no alarm.
func (rm *ResourceManager) forgetTaskManager(id string) {
	rm.removeSlots(id)
	rm.hbDo(rm.hb.Handle(heartbeat.EvRemove{Target: id}))
	delete(rm.tmAddr, id)
}
