package runtime

// DrainProcessingTimers fires every processing-time timer at or before
// until, in time order, as if the wall clock had reached it (timers the
// callbacks register for times ≤ until fire too). Window operators call it
// with MaxWatermark at the end of a bounded input, so processing-time
// windows emit what they hold instead of losing it.
func (t *Timers[K, N]) DrainProcessingTimers(until int64) {
	for {
		t.pt.cancel.Check()
		tm, ok := t.proc.popUntil(until)
		if !ok {
			return
		}
		t.backend.SetCurrentKey(tm.Key)
		t.OnProcessingTime(tm)
	}
}
