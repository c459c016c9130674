package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/scheduler"
)

// The four roles talk only through these messages, sent to each other's
// inboxes: the in-process form of the RPC the distributed runtime will use.
type (
	msgRegisterTM struct {
		ID    string
		Slots int
		TM    *TaskManager
	}
	msgRequestSlots struct {
		JobID string
		N     int
		Reply chan<- slotAnswer
	}
	slotAnswer struct {
		Slots []scheduler.SlotID
		Err   error
	}
	msgReleaseSlots struct {
		JobID string
		Slots []scheduler.SlotID
	}
	msgCancelSlotRequest struct {
		JobID string
	}
	msgDeploy struct {
		Job  *Job
		ID   scheduler.ExecutionID
		Slot scheduler.SlotID
		JM   *JobMaster
	}
	msgCancelTask struct {
		JobID string
		ID    scheduler.ExecutionID
	}
	msgTaskState struct {
		ID    scheduler.ExecutionID
		State scheduler.ExecState
		Err   error
	}
)

// ResourceManager owns the TaskManagers' slots and hands them to JobMasters.
// A request that the cluster could never satisfy is refused at once; one
// that must wait for other jobs' slots queues in arrival order.
type ResourceManager struct {
	inbox chan any
	tms   map[string]*tmSlots
	order []string
	queue []msgRequestSlots
}

type tmSlots struct {
	tm    *TaskManager
	owner []string // job id per slot, "" = free
}

func newResourceManager() *ResourceManager {
	return &ResourceManager{inbox: make(chan any, 64), tms: map[string]*tmSlots{}}
}

func (rm *ResourceManager) send(ctx context.Context, m any) error {
	select {
	case rm.inbox <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (rm *ResourceManager) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for _, q := range rm.queue {
				q.Reply <- slotAnswer{Err: errors.New("resource manager stopped")}
			}
			return
		case m := <-rm.inbox:
			rm.handle(m)
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

func (rm *ResourceManager) handle(m any) {
	switch m := m.(type) {
	case msgRegisterTM:
		if _, ok := rm.tms[m.ID]; !ok {
			rm.order = append(rm.order, m.ID)
		}
		rm.tms[m.ID] = &tmSlots{tm: m.TM, owner: make([]string, m.Slots)}
		rm.serveQueue()
	case msgRequestSlots:
		if m.N > rm.total() {
			m.Reply <- slotAnswer{Err: fmt.Errorf("job needs %d slots but the cluster has %d (%d TaskManagers)", m.N, rm.total(), len(rm.tms))}
			return
		}
		rm.queue = append(rm.queue, m)
		rm.serveQueue()
	case msgCancelSlotRequest:
		// Refuse the job's queued request; a request already granted is
		// released by the JobMaster when the grant arrives.
		kept := rm.queue[:0]
		for _, q := range rm.queue {
			if q.JobID == m.JobID {
				q.Reply <- slotAnswer{Err: errors.New("slot request withdrawn")}
				continue
			}
			kept = append(kept, q)
		}
		clear(rm.queue[len(kept):])
		rm.queue = kept
		rm.serveQueue() // requests behind the withdrawn one may fit now
	case msgReleaseSlots:
		for _, s := range m.Slots {
			if t, ok := rm.tms[s.TaskManager]; ok && s.Index < len(t.owner) && t.owner[s.Index] == m.JobID {
				t.owner[s.Index] = ""
			}
		}
		rm.serveQueue()
	}
}

// serveQueue grants queued requests in order while enough slots are free.
// Slots are spread over TaskManagers round-robin so a job uses every
// TaskManager, as Flink's cluster.evenly-spread-out-slots does.
func (rm *ResourceManager) serveQueue() {
	for len(rm.queue) > 0 {
		q := rm.queue[0]
		var free []scheduler.SlotID
		maxSlots := 0
		for _, id := range rm.order {
			if n := len(rm.tms[id].owner); n > maxSlots {
				maxSlots = n
			}
		}
		for i := 0; i < maxSlots && len(free) < q.N; i++ {
			for _, id := range rm.order {
				t := rm.tms[id]
				if i < len(t.owner) && t.owner[i] == "" && len(free) < q.N {
					free = append(free, scheduler.SlotID{TaskManager: id, Index: i})
				}
			}
		}
		if len(free) < q.N {
			return
		}
		for _, s := range free {
			rm.tms[s.TaskManager].owner[s.Index] = q.JobID
		}
		rm.queue = rm.queue[1:]
		q.Reply <- slotAnswer{Slots: free}
	}
}

// TaskManager offers slots and runs tasks, each on its own goroutine.
type TaskManager struct {
	ID    string
	Slots int
	inbox chan any
	reg   *network.Registry
	wg    sync.WaitGroup
	tasks map[taskKey]context.CancelFunc
	mu    sync.Mutex
	// metrics receives the counters of deployed tasks.
	onMetrics func(jobID string, m []OperatorMetrics)
}

type taskKey struct {
	job string
	id  scheduler.ExecutionID
}

func newTaskManager(id string, slots int, reg *network.Registry) *TaskManager {
	return &TaskManager{ID: id, Slots: slots, inbox: make(chan any, 256), reg: reg, tasks: map[taskKey]context.CancelFunc{}}
}

func (tm *TaskManager) run(ctx context.Context) {
	defer tm.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			tm.mu.Lock()
			for _, cancel := range tm.tasks {
				cancel()
			}
			tm.mu.Unlock()
			return
		case m := <-tm.inbox:
			switch m := m.(type) {
			case msgDeploy:
				tm.deploy(ctx, m)
			case msgCancelTask:
				tm.mu.Lock()
				if cancel, ok := tm.tasks[taskKey{m.JobID, m.ID}]; ok {
					cancel()
				}
				tm.mu.Unlock()
			}
		}
	}
}

func (tm *TaskManager) deploy(ctx context.Context, m msgDeploy) {
	v := m.Job.JobGraph.Vertices[m.ID.Vertex]
	tctx, cancel := context.WithCancel(ctx)
	key := taskKey{m.Job.ID, m.ID}
	tm.mu.Lock()
	tm.tasks[key] = cancel
	tm.mu.Unlock()
	report := func(st scheduler.ExecState, err error) {
		m.JM.post(msgTaskState{ID: m.ID, State: st, Err: err})
	}
	tm.wg.Add(1)
	go func() {
		defer tm.wg.Done()
		defer func() {
			tm.mu.Lock()
			delete(tm.tasks, key)
			tm.mu.Unlock()
			cancel()
		}()
		task, metrics, err := buildTask(tctx, m.Job, v, m.ID.Subtask, m.ID.Attempt, tm.reg)
		if err != nil {
			report(scheduler.Failed, err)
			return
		}
		if tm.onMetrics != nil {
			tm.onMetrics(m.Job.ID, metrics)
		}
		if m.Job.Config.OnTask != nil {
			m.Job.Config.OnTask(task)
		}
		m.JM.registerMetrics(metrics)
		report(scheduler.Initializing, nil)
		report(scheduler.Running, nil)
		err = task.Run(tctx)
		switch {
		case err == nil:
			report(scheduler.Finished, nil)
		case errors.Is(err, runtime.ErrTaskCanceled):
			report(scheduler.Canceled, nil)
		default:
			report(scheduler.Failed, err)
		}
	}()
}
