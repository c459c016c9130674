package resourcemanager

// TaskManagerInfo is a registered TaskManager as the process running the
// ResourceManager sees it (REST's /taskmanagers, releases sent to every
// TaskManager).
type TaskManagerInfo struct {
	ID, Address, DataAddress string
	Slots                    int
}

// TaskManagers are the live registered TaskManagers in registration
// order; safe from any goroutine.
func (rm *ResourceManager) TaskManagers() []TaskManagerInfo {
	if p := rm.snapshot.Load(); p != nil {
		return *p
	}
	return nil
}

// publish refreshes what RegisteredSlots and TaskManagers read (on the
// loop, after the TaskManager table changed).
func (rm *ResourceManager) publish() {
	rm.registered.Store(int64(rm.total()))
	out := make([]TaskManagerInfo, 0, len(rm.order))
	for _, id := range rm.order {
		if t, ok := rm.tms[id]; ok {
			out = append(out, TaskManagerInfo{ID: id, Address: t.address, DataAddress: t.dataAddress, Slots: len(t.owner)})
		}
	}
	rm.snapshot.Store(&out)
}
