package operator

import "github.com/strom-dev/strom/internal/statebackend"

// WindowStats counts what a window operator holds, so tests can check that
// cleanup leaves nothing behind.
type WindowStats struct {
	Dropped      int64 // late records dropped
	Windows      int   // (key, window) entries of window contents
	TriggerState int   // trigger state entries
	EventTimers  int
	MergingSets  int // keys with a merging window set
}

func (c *windowCore[K, S]) stats() WindowStats {
	s := WindowStats{Dropped: c.dropped, Windows: c.contents.Len(), TriggerState: c.tstate.Len(), EventTimers: c.timers.NumEventTimers()}
	if c.sets != nil {
		s.MergingSets = c.sets.Len()
	}
	return s
}

// Stats counts what the operator holds.
func (o *WindowOp[T, K, S, OUT, C]) Stats() WindowStats { return o.core.stats() }

// Backend is the subtask's keyed backend (after Open).
func (o *WindowOp[T, K, S, OUT, C]) Backend() *statebackend.Keyed[K] { return o.core.backend }

// Stats counts what the operator holds.
func (o *WindowJoinOp[A, B, K, OUT]) Stats() WindowStats { return o.core.stats() }

// Backend is the subtask's keyed backend (after Open).
func (o *WindowJoinOp[A, B, K, OUT]) Backend() *statebackend.Keyed[K] { return o.core.backend }

// IntervalStats counts what an interval join holds.
type IntervalStats struct {
	Dropped                   int64 // late records dropped
	LeftKeys, RightKeys       int   // keys with buffered records
	LeftRecords, RightRecords int
	EventTimers               int
}

// Stats counts what the operator holds.
func (o *IntervalJoinOp[A, B, K, OUT, C]) Stats() IntervalStats {
	s := IntervalStats{Dropped: o.dropped, LeftKeys: o.left.Len(), RightKeys: o.right.Len(), EventTimers: o.timers.NumEventTimers()}
	for kg := range o.left.NumKeyGroups() {
		for _, b := range o.left.KeyGroup(kg) {
			s.LeftRecords += len(b.ts)
		}
		for _, b := range o.right.KeyGroup(kg) {
			s.RightRecords += len(b.ts)
		}
	}
	return s
}

// Backend is the subtask's keyed backend (after Open).
func (o *IntervalJoinOp[A, B, K, OUT, C]) Backend() *statebackend.Keyed[K] { return o.backend }
