package operator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/window"
)

// ---- the window operator's core, shared by the window functions and the
// window join -------------------------------------------------------------

type windowSpec struct {
	assigner window.Assigner
	trigger  window.Trigger
	lateness int64
}

// Fast paths for the default triggers: their per-record work (register a
// timer at the window's end) is only needed when a window's state is
// created, which saves a timer-set lookup per record and window.
const (
	fastNone = iota
	fastEventTime
	fastProcessingTime
)

// trigNS is the namespace of trigger state: the window and the state name.
type trigNS struct {
	W    window.TimeWindow
	Name string
}

// windowCore is Flink's WindowOperator minus the record type: the windows
// of each key with their state S (a windowStore), the trigger with its
// per-window state, the timers (one runtime.Timers namespaced by window)
// and, for merging assigners, each key's MergingWindowSet. All of it is
// keyed state registered with the subtask's backend. It runs on the task
// goroutine; the operator sets the current key before calling it.
type windowCore[K comparable, S any] struct {
	windowSpec
	merger    window.MergingAssigner
	eventTime bool
	fast      int
	name      string
	rt        *runtime.Context
	backend   *statebackend.Keyed[K]
	contents  *windowStore[K, S]
	tstate    *statebackend.Namespaced[K, trigNS, int64]
	tnames    []string
	sets      *statebackend.Table[K, *mergingSet]
	timers    *runtime.Timers[K, window.TimeWindow]
	tctx      triggerCtx[K, S]
	wins      []window.TimeWindow
	mscratch  mergeScratch
	onMergeFn mergeFunc
	merge     func(dst, src *S)
	emit      func(key K, w window.TimeWindow, s *S)
	// onClear, if set, is called when a window of the current key is
	// cleaned up, after its contents and trigger state are dropped.
	onClear func(key K, w window.TimeWindow)
	dropped int64
	// stateCodec builds the codec of S for snapshots (nil: codec.For[S]);
	// set before open by operators whose S the default codec cannot handle.
	stateCodec func() (codec.Codec[S], error)
}

func (c *windowCore[K, S]) open(ctx *runtime.Context, b *statebackend.Keyed[K], spec windowSpec, merge func(dst, src *S), emit func(K, window.TimeWindow, *S)) error {
	if spec.assigner == nil {
		return errors.New("window operator without assigner")
	}
	c.windowSpec = spec
	c.name = ctx.OperatorName
	c.rt = ctx
	c.backend = b
	c.merge, c.emit = merge, emit
	c.eventTime = spec.assigner.IsEventTime()
	c.merger, _ = spec.assigner.(window.MergingAssigner)
	if c.merger != nil {
		if merge == nil {
			return fmt.Errorf("assigner %v merges windows but the window state cannot merge", spec.assigner)
		}
		if !spec.trigger.CanMerge() {
			return fmt.Errorf("trigger %v cannot merge windows", spec.trigger)
		}
	} else {
		switch spec.trigger {
		case window.EventTimeTrigger():
			if c.eventTime {
				c.fast = fastEventTime
			}
		case window.ProcessingTimeTrigger():
			if !c.eventTime {
				c.fast = fastProcessingTime
			}
		}
	}
	c.timers = runtime.NewTimers[K, window.TimeWindow](b, ctx.Time)
	c.timers.OnEventTime = func(t runtime.Timer[K, window.TimeWindow]) { c.onTimer(t, true) }
	c.timers.OnProcessingTime = func(t runtime.Timer[K, window.TimeWindow]) { c.onTimer(t, false) }
	// With the default trigger and no allowed lateness, the timers are
	// exactly one per window held, at its end: rebuilt from the contents
	// as they are restored rather than snapshotted (they were about as
	// large as the contents, and their encoding as slow). With lateness, a
	// window that fired keeps only its cleanup timer, which the contents
	// cannot tell, so those timers are snapshotted.
	derived := c.fast == fastProcessingTime || c.fast == fastEventTime && c.lateness == 0
	c.contents = newWindowStore[K, S](b)
	c.contents.t.SetValueCodecFunc(keyWindowsCodecFor(c.stateCodec))
	if derived {
		c.contents.restored = c.registerWindowTimers
		// An incremental restore changes key groups already restored:
		// their timers are dropped and derived again.
		c.contents.cleared = func(kg int) { _ = c.timers.State().ClearKeyGroup(kg) }
	}
	if _, err := b.Register("window-contents", &restoringTable[K, S]{c.contents.t, c.contents}); err != nil {
		return err
	}
	c.tstate = statebackend.NewNamespaced[K, trigNS, int64](b)
	if _, err := b.Register("window-trigger-state", c.tstate); err != nil {
		return err
	}
	if c.merger != nil {
		c.sets = statebackend.NewTable[K, *mergingSet](b.Range().Len())
		c.sets.SetCodecs(nil, mergingSetCodec{})
		if _, err := b.Register("window-merging-sets", c.sets); err != nil {
			return err
		}
		c.mscratch.init()
		c.onMergeFn = c.onMerge
	}
	ts := c.timers.State()
	ts.SetDerived(derived)
	if _, err := b.Register(runtime.TimersStateName, ts); err != nil {
		return err
	}
	c.tctx.c = c
	return nil
}

// registerWindowTimers registers the timer of every window of key-group
// index kg, at the window's end: after contents were restored into it (see
// open). A timer registered twice is one timer, so restoring several
// streams into one key group (rescaling) is fine.
func (c *windowCore[K, S]) registerWindowTimers(kg int) {
	for k, kw := range c.contents.t.KeyGroup(kg) {
		c.backend.SetCurrentKey(k)
		for _, w := range kw.wins {
			if c.eventTime {
				c.timers.RegisterEventTime(w, w.MaxTimestamp())
			} else {
				c.timers.RegisterProcessingTime(w, w.MaxTimestamp())
			}
		}
	}
}

// CurrentProcessingTime implements window.AssignerContext.
func (c *windowCore[K, S]) CurrentProcessingTime() int64 { return c.rt.Time.Now() }

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// cleanupTime is when a window's state is dropped: its end plus the
// allowed lateness on event time, its end on processing time.
func (c *windowCore[K, S]) cleanupTime(w window.TimeWindow) int64 {
	if c.eventTime {
		return satAdd(w.MaxTimestamp(), c.lateness)
	}
	return w.MaxTimestamp()
}

func (c *windowCore[K, S]) isWindowLate(w window.TimeWindow) bool {
	return c.eventTime && c.cleanupTime(w) <= c.timers.CurrentWatermark()
}

func (c *windowCore[K, S]) isElementLate(ts int64) bool {
	return c.eventTime && satAdd(ts, c.lateness) <= c.timers.CurrentWatermark()
}

func (c *windowCore[K, S]) registerCleanupTimer(w window.TimeWindow) {
	t := c.cleanupTime(w)
	if t == math.MaxInt64 {
		return // never cleaned up (the window ends at the end of time)
	}
	if c.eventTime {
		c.timers.RegisterEventTime(w, t)
	} else {
		c.timers.RegisterProcessingTime(w, t)
	}
}

func (c *windowCore[K, S]) deleteCleanupTimer(w window.TimeWindow) {
	t := c.cleanupTime(w)
	if t == math.MaxInt64 {
		return
	}
	if c.eventTime {
		c.timers.DeleteEventTime(w, t)
	} else {
		c.timers.DeleteProcessingTime(w, t)
	}
}

var errNoTimestamp = errors.New("record without event timestamp in an event-time window: " +
	"assign timestamps with AssignTimestamps or use a processing-time window assigner")

// addElement adds a record of the current key to its windows and runs the
// trigger on each. It reports whether the record went into no window
// because they were all late (Flink's isSkippedElement).
func addElement[K comparable, S, T any](c *windowCore[K, S], v T, ts int64, add func(*S, T, int64, bool)) bool {
	if c.eventTime && ts == runtime.NoTimestamp {
		runtime.Fail(c.name, errNoTimestamp)
	}
	c.wins = c.assigner.AssignWindows(ts, c, c.wins[:0])
	if c.merger != nil {
		return addMerging(c, v, ts, add)
	}
	skipped := true
	wm := c.timers.CurrentWatermark()
	kw := c.contents.get(true) // the key's windows: one lookup per record
	for _, w := range c.wins {
		if c.eventTime && c.cleanupTime(w) <= wm {
			continue
		}
		skipped = false
		s, created := kw.upsert(w)
		add(s, v, ts, created)
		r := window.Continue
		switch c.fast {
		case fastEventTime:
			if w.MaxTimestamp() <= wm {
				r = window.Fire
			} else if created {
				c.timers.RegisterEventTime(w, w.MaxTimestamp())
			}
			if created && c.lateness > 0 {
				c.registerCleanupTimer(w)
			}
		case fastProcessingTime:
			if created {
				c.timers.RegisterProcessingTime(w, w.MaxTimestamp())
			}
		default:
			c.tctx.w = w
			r = c.trigger.OnElement(ts, w, &c.tctx)
			c.registerCleanupTimer(w)
		}
		if r.IsFire() {
			c.emit(c.backend.CurrentKey(), w, s)
		}
		if r.IsPurge() {
			kw.remove(w)
		}
	}
	c.contents.tidy(kw)
	return skipped
}

func addMerging[K comparable, S, T any](c *windowCore[K, S], v T, ts int64, add func(*S, T, int64, bool)) bool {
	kg, key := c.backend.KeyGroupIndex(), c.backend.CurrentKey()
	set, ok := c.sets.Get(kg, key)
	if !ok {
		set = &mergingSet{}
		c.sets.Put(kg, key, set)
	}
	skipped := true
	for _, nw := range c.wins {
		actual := set.addWindow(nw, c.merger, &c.mscratch, c.onMergeFn)
		if c.isWindowLate(actual) {
			set.retire(actual)
			continue
		}
		skipped = false
		sw, _ := set.stateWindow(actual)
		kw := c.contents.get(true)
		s, created := kw.upsert(sw)
		add(s, v, ts, created)
		c.tctx.w = actual
		r := c.trigger.OnElement(ts, actual, &c.tctx)
		if r.IsFire() {
			c.emit(key, actual, s)
		}
		if r.IsPurge() {
			kw.remove(sw)
		}
		c.registerCleanupTimer(actual)
		c.contents.tidy(kw)
	}
	if len(set.pairs) == 0 {
		c.sets.Delete(kg, key)
	}
	return skipped
}

// onMerge is the merge function of the MergingWindowSet: windows merged
// into result (stateResult holds the merged contents from now on).
func (c *windowCore[K, S]) onMerge(result window.TimeWindow, merged []window.TimeWindow, stateResult window.TimeWindow, mergedStates []window.TimeWindow) {
	if c.eventTime && c.cleanupTime(result) <= c.timers.CurrentWatermark() {
		runtime.Fail(c.name, fmt.Errorf("merging windows into %v: the end of an event-time window cannot become earlier than the current watermark %d by merging", result, c.timers.CurrentWatermark()))
	}
	if !c.eventTime && result.MaxTimestamp() <= c.CurrentProcessingTime() {
		runtime.Fail(c.name, fmt.Errorf("merging windows into %v: the end of a processing-time window cannot become earlier than the current processing time by merging", result))
	}
	c.tctx.w, c.tctx.merged = result, merged
	c.trigger.OnMerge(result, &c.tctx)
	c.tctx.merged = nil
	for _, m := range merged {
		c.tctx.w = m
		c.trigger.Clear(m, &c.tctx)
		c.dropTriggerState(m)
		c.deleteCleanupTimer(m)
	}
	// Merge the contents of the merged state windows into stateResult.
	kw := c.contents.get(false)
	if kw == nil {
		return
	}
	var acc S
	has := false
	if p := kw.get(stateResult); p != nil {
		acc, has = *p, true
	}
	for _, sw := range mergedStates {
		p := kw.get(sw)
		if p == nil {
			continue
		}
		if has {
			c.merge(&acc, p)
		} else {
			acc, has = *p, true
		}
		kw.remove(sw)
	}
	if has {
		p, _ := kw.upsert(stateResult)
		*p = acc
	}
}

func (c *windowCore[K, S]) onTimer(t runtime.Timer[K, window.TimeWindow], eventTime bool) {
	w := t.NS
	sw := w
	var set *mergingSet
	if c.merger != nil {
		var ok bool
		if set, ok = c.sets.Get(c.backend.KeyGroupIndex(), t.Key); !ok {
			return
		}
		if sw, ok = set.stateWindow(w); !ok {
			return // a timer of a window that was merged away
		}
	}
	c.tctx.w = w
	var r window.TriggerResult
	if eventTime {
		r = c.trigger.OnEventTime(t.TS, w, &c.tctx)
	} else {
		r = c.trigger.OnProcessingTime(t.TS, w, &c.tctx)
	}
	kw := c.contents.get(false)
	if r.IsFire() {
		if s := kw.get(sw); s != nil {
			c.emit(t.Key, w, s)
		}
	}
	if r.IsPurge() {
		kw.remove(sw)
	}
	if eventTime == c.eventTime && t.TS == c.cleanupTime(w) {
		kw.remove(sw)
		c.clearAll(w, set)
		if c.onClear != nil {
			c.onClear(t.Key, w)
		}
	}
	c.contents.tidy(kw)
}

// clearAll drops the trigger state and merging-set entry of window w of
// the current key (the caller drops its contents).
func (c *windowCore[K, S]) clearAll(w window.TimeWindow, set *mergingSet) {
	if c.fast == fastNone {
		// The default triggers' Clear deletes their timer at the window's
		// end, which has fired by the time the window is cleaned up.
		c.tctx.w = w
		c.trigger.Clear(w, &c.tctx)
		c.dropTriggerState(w)
	}
	if set != nil {
		set.retire(w)
		if len(set.pairs) == 0 {
			c.sets.Delete(c.backend.KeyGroupIndex(), c.backend.CurrentKey())
		}
	}
}

// dropTriggerState removes trigger state the trigger left behind.
func (c *windowCore[K, S]) dropTriggerState(w window.TimeWindow) {
	for _, n := range c.tnames {
		c.tstate.Delete(trigNS{W: w, Name: n})
	}
}

// finish fires what processing-time windows hold at the end of input.
func (c *windowCore[K, S]) finish() {
	if c.timers != nil && !c.eventTime {
		c.timers.DrainProcessingTimers(math.MaxInt64)
	}
}

func (c *windowCore[K, S]) close() {
	if c.dropped > 0 && c.rt != nil {
		c.rt.Logger.Info("late records dropped", "count", c.dropped)
	}
}

// triggerCtx is the window.TriggerContext (and OnMergeContext) of the
// current key and window w.
type triggerCtx[K comparable, S any] struct {
	c      *windowCore[K, S]
	w      window.TimeWindow
	merged []window.TimeWindow
}

func (t *triggerCtx[K, S]) CurrentWatermark() int64 { return t.c.timers.CurrentWatermark() }
func (t *triggerCtx[K, S]) CurrentProcessingTime() int64 {
	return t.c.rt.Time.Now()
}
func (t *triggerCtx[K, S]) RegisterEventTimeTimer(ts int64) { t.c.timers.RegisterEventTime(t.w, ts) }
func (t *triggerCtx[K, S]) DeleteEventTimeTimer(ts int64)   { t.c.timers.DeleteEventTime(t.w, ts) }
func (t *triggerCtx[K, S]) RegisterProcessingTimeTimer(ts int64) {
	t.c.timers.RegisterProcessingTime(t.w, ts)
}
func (t *triggerCtx[K, S]) DeleteProcessingTimeTimer(ts int64) {
	t.c.timers.DeleteProcessingTime(t.w, ts)
}

func (t *triggerCtx[K, S]) State(name string) (int64, bool) {
	if p := t.c.tstate.Get(trigNS{W: t.w, Name: name}); p != nil {
		return *p, true
	}
	return 0, false
}

func (t *triggerCtx[K, S]) SetState(name string, v int64) {
	p, created := t.c.tstate.Upsert(trigNS{W: t.w, Name: name})
	*p = v
	if created {
		for _, n := range t.c.tnames {
			if n == name {
				return
			}
		}
		t.c.tnames = append(t.c.tnames, name)
	}
}

func (t *triggerCtx[K, S]) ClearState(name string) { t.c.tstate.Delete(trigNS{W: t.w, Name: name}) }

func (t *triggerCtx[K, S]) MergeState(name string, merge func(a, b int64) int64) {
	v, has := t.State(name)
	for _, m := range t.merged {
		k := trigNS{W: m, Name: name}
		p := t.c.tstate.Get(k)
		if p == nil {
			continue
		}
		if has {
			v = merge(v, *p)
		} else {
			v, has = *p, true
		}
		t.c.tstate.Delete(k)
	}
	if has {
		t.SetState(name, v)
	}
}

// ---- window contents --------------------------------------------------------

// windowStore holds the window operator's contents: keyed state per key
// group (a statebackend.Table, registered with the backend) from a key to
// that key's windows and their state. Grouping a key's windows makes a
// record cost one hash lookup however many windows it belongs to (sliding
// windows), and keeps them on one or two cache lines.
//
// When the window state S holds no references, the store copies a key's
// windows on write after a checkpoint froze the table (its copy of the
// maps shares the keyWindows): the checkpoint's encoding then runs on the
// upload goroutine instead of stopping the task (statebackend.Freezer).
type windowStore[K comparable, S any] struct {
	b    *statebackend.Keyed[K]
	t    *statebackend.Table[K, *keyWindows[S]]
	free []*keyWindows[S]
	cow  bool
	// restored, if set, is called with each key-group index contents were
	// restored into; cleared, if set, before a key group restored already
	// is changed by an incremental restore (a delta or a replace section).
	restored, cleared func(kg int)
}

// restoringTable is the contents table as registered with the backend: it
// tells the store which key groups a restore filled (whenever the restore
// comes, before or after the operator opened).
type restoringTable[K comparable, S any] struct {
	*statebackend.Table[K, *keyWindows[S]]
	s *windowStore[K, S]
}

// RestoreKeyGroup implements statebackend.Snapshotter.
func (r *restoringTable[K, S]) RestoreKeyGroup(kg int, src []byte) error {
	if err := r.Table.RestoreKeyGroup(kg, src); err != nil {
		return err
	}
	if r.s.restored != nil {
		r.s.restored(kg)
	}
	return nil
}

// ApplyDelta implements statebackend.DeltaTracker: the key group's derived
// timers are derived again from its contents after the change.
func (r *restoringTable[K, S]) ApplyDelta(kg int, src []byte) error {
	if r.s.cleared != nil {
		r.s.cleared(kg)
	}
	if err := r.Table.ApplyDelta(kg, src); err != nil {
		return err
	}
	if r.s.restored != nil {
		r.s.restored(kg)
	}
	return nil
}

// ClearKeyGroup implements statebackend.KeyGroupClearer, with the key
// group's derived timers.
func (r *restoringTable[K, S]) ClearKeyGroup(kg int) error {
	if r.s.cleared != nil {
		r.s.cleared(kg)
	}
	return r.Table.ClearKeyGroup(kg)
}

func newWindowStore[K comparable, S any](b *statebackend.Keyed[K]) *windowStore[K, S] {
	s := &windowStore[K, S]{b: b, t: statebackend.NewTable[K, *keyWindows[S]](b.Range().Len())}
	if statebackend.HoldsNoReferences(reflect.TypeFor[S]()) {
		s.cow = true
		s.t.SetCopyOnWrite()
	}
	return s
}

// get returns the current key's windows, creating them if asked (else nil).
// The caller may change what it returns (until the next snapshot).
func (s *windowStore[K, S]) get(create bool) *keyWindows[S] {
	kg, k := s.b.KeyGroupIndex(), s.b.CurrentKey()
	kw, ok := s.t.Get(kg, k)
	switch {
	case ok:
		if s.cow && kw.epoch != s.t.Epoch() {
			kw = kw.copyAt(s.t.Epoch())
			s.t.Put(kg, k, kw)
		}
	case create:
		if n := len(s.free); n > 0 {
			kw = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			kw = &keyWindows[S]{}
		}
		kw.epoch = s.t.Epoch()
		s.t.Put(kg, k, kw)
	}
	return kw
}

// tidy drops the current key's entry once it has no windows left, keeping
// its buffers for the next key.
func (s *windowStore[K, S]) tidy(kw *keyWindows[S]) {
	if kw == nil || len(kw.wins) > 0 {
		return
	}
	s.t.Delete(s.b.KeyGroupIndex(), s.b.CurrentKey())
	if len(s.free) < 1024 {
		s.free = append(s.free, kw)
	}
}

// Len is the number of (key, window) entries.
func (s *windowStore[K, S]) Len() int {
	n := 0
	for kg := range s.t.NumKeyGroups() {
		for _, kw := range s.t.KeyGroup(kg) {
			n += len(kw.wins)
		}
	}
	return n
}

// keyWindows is one key's windows, sorted by start and end, and their
// state. Pointers into vals are valid until the next upsert.
type keyWindows[S any] struct {
	wins []window.TimeWindow
	vals []S
	// epoch is the table's epoch when these were made: older ones may be
	// shared with a checkpoint being encoded (windowStore.get).
	epoch uint32
	// w1 and v1 hold a key's only window (tumbling windows, and sessions
	// until they merge): one allocation per key instead of three, and the
	// window and its state on the key's own cache lines, which is what a
	// lookup and a checkpoint's encoding of the whole table pay for.
	w1 [1]window.TimeWindow
	v1 [1]S
}

// setLen gives a new kw room for n windows (zero), inline when there is
// at most one, else with room for one more.
func (kw *keyWindows[S]) setLen(n int) {
	if n <= 1 {
		kw.wins, kw.vals = kw.w1[:n:1], kw.v1[:n:1]
		return
	}
	kw.wins, kw.vals = make([]window.TimeWindow, n, n+1), make([]S, n, n+1)
}

// copyAt returns a copy of kw made in epoch, with room for one more window.
func (kw *keyWindows[S]) copyAt(epoch uint32) *keyWindows[S] {
	c := &keyWindows[S]{epoch: epoch}
	c.setLen(len(kw.wins))
	copy(c.wins, kw.wins)
	copy(c.vals, kw.vals)
	return c
}

func winLess(a, b window.TimeWindow) bool {
	return a.Start < b.Start || a.Start == b.Start && a.End < b.End
}

// search returns the position of w, or where it would be inserted.
func (kw *keyWindows[S]) search(w window.TimeWindow) (int, bool) {
	ws := kw.wins
	if len(ws) <= 8 {
		for i, x := range ws {
			if x == w {
				return i, true
			}
			if winLess(w, x) {
				return i, false
			}
		}
		return len(ws), false
	}
	lo, hi := 0, len(ws)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if winLess(ws[m], w) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(ws) && ws[lo] == w
}

func (kw *keyWindows[S]) get(w window.TimeWindow) *S {
	if kw == nil {
		return nil
	}
	if i, ok := kw.search(w); ok {
		return &kw.vals[i]
	}
	return nil
}

func (kw *keyWindows[S]) upsert(w window.TimeWindow) (*S, bool) {
	i, ok := kw.search(w)
	if ok {
		return &kw.vals[i], false
	}
	var zero S
	if cap(kw.wins) == 0 {
		kw.setLen(0)
	}
	kw.wins = slices.Insert(kw.wins, i, w)
	kw.vals = slices.Insert(kw.vals, i, zero)
	return &kw.vals[i], true
}

func (kw *keyWindows[S]) remove(w window.TimeWindow) {
	if kw == nil {
		return
	}
	if i, ok := kw.search(w); ok {
		kw.wins = slices.Delete(kw.wins, i, i+1)
		kw.vals = slices.Delete(kw.vals, i, i+1) // zeroes the freed slot
	}
}

// ---- MergingWindowSet ----------------------------------------------------

// winPair maps a window to the window whose namespace holds its state: the
// state window stays fixed while windows merge, so merging never moves
// state twice (Flink's MergingWindowSet).
type winPair struct {
	W, State window.TimeWindow
}

// mergingSet is one key's current merging windows.
type mergingSet struct {
	pairs []winPair
}

type mergeFunc func(result window.TimeWindow, merged []window.TimeWindow, stateResult window.TimeWindow, mergedStates []window.TimeWindow)

type mergeGroup struct {
	result     window.TimeWindow
	start, end int
}

// mergeScratch holds the reusable buffers of addWindow.
type mergeScratch struct {
	windows []window.TimeWindow
	members []window.TimeWindow
	states  []window.TimeWindow
	groups  []mergeGroup
	collect func(merged []window.TimeWindow, result window.TimeWindow)
}

func (sc *mergeScratch) init() {
	sc.collect = func(merged []window.TimeWindow, result window.TimeWindow) {
		start := len(sc.members)
		sc.members = append(sc.members, merged...)
		sc.groups = append(sc.groups, mergeGroup{result: result, start: start, end: len(sc.members)})
	}
}

func (m *mergingSet) find(w window.TimeWindow) int {
	for i, p := range m.pairs {
		if p.W == w {
			return i
		}
	}
	return -1
}

func (m *mergingSet) stateWindow(w window.TimeWindow) (window.TimeWindow, bool) {
	if i := m.find(w); i >= 0 {
		return m.pairs[i].State, true
	}
	return window.TimeWindow{}, false
}

// remove deletes w's mapping and returns its state window.
func (m *mergingSet) remove(w window.TimeWindow) (window.TimeWindow, bool) {
	i := m.find(w)
	if i < 0 {
		return window.TimeWindow{}, false
	}
	s := m.pairs[i].State
	m.pairs[i] = m.pairs[len(m.pairs)-1]
	m.pairs = m.pairs[:len(m.pairs)-1]
	return s, true
}

func (m *mergingSet) put(w, state window.TimeWindow) {
	if i := m.find(w); i >= 0 {
		m.pairs[i].State = state
		return
	}
	m.pairs = append(m.pairs, winPair{W: w, State: state})
}

func (m *mergingSet) retire(w window.TimeWindow) { m.remove(w) }

// addWindow adds a new window, merging it with the existing ones as the
// assigner says, and returns the window it ended up in. merge is called for
// every merge with the result, the merged windows (without the new one,
// which has no state or timers yet) and the state windows to fold into the
// result's state window.
func (m *mergingSet) addWindow(nw window.TimeWindow, a window.MergingAssigner, sc *mergeScratch, merge mergeFunc) window.TimeWindow {
	if m.find(nw) >= 0 {
		return nw // already there: it intersects only itself
	}
	sc.windows = sc.windows[:0]
	for _, p := range m.pairs {
		sc.windows = append(sc.windows, p.W)
	}
	sc.windows = append(sc.windows, nw)
	sc.members, sc.groups = sc.members[:0], sc.groups[:0]
	a.MergeWindows(sc.windows, sc.collect)

	result, mergedNew := nw, false
	for _, g := range sc.groups {
		members := sc.members[g.start:g.end]
		for i, w := range members {
			if w == nw {
				mergedNew, result = true, g.result
				copy(members[i:], members[i+1:])
				members = members[:len(members)-1]
				break
			}
		}
		if len(members) == 0 {
			continue
		}
		target, _ := m.stateWindow(members[0])
		sc.states = sc.states[:0]
		for _, w := range members {
			if s, ok := m.remove(w); ok && s != target {
				sc.states = append(sc.states, s)
			}
		}
		m.put(g.result, target)
		if !(len(members) == 1 && members[0] == g.result) {
			merge(g.result, members, target, sc.states)
		}
	}
	if len(sc.groups) == 0 || (result == nw && !mergedNew) {
		m.put(result, result)
	}
	return result
}

// ---- snapshot codecs of the window state ------------------------------------

// keyWindowsCodecFor returns the builder of the window contents' codec: a
// key's windows with their states, S encoded by sc (codec.For[S] if nil).
func keyWindowsCodecFor[S any](sc func() (codec.Codec[S], error)) func() (codec.Codec[*keyWindows[S]], error) {
	return func() (codec.Codec[*keyWindows[S]], error) {
		var c codec.Codec[S]
		var err error
		if sc != nil {
			c, err = sc()
		} else {
			c, err = codec.For[S]()
		}
		if err != nil {
			return nil, fmt.Errorf("no codec for window state type %v: %w", reflect.TypeFor[S](), err)
		}
		return keyWindowsCodec[S]{c}, nil
	}
}

// keyWindowsCodec encodes a key's windows: uvarint n, then n × (varint
// start, varint end, state), in window order.
type keyWindowsCodec[S any] struct{ s codec.Codec[S] }

func (c keyWindowsCodec[S]) Append(dst []byte, kw *keyWindows[S]) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(kw.wins)))
	for i, w := range kw.wins {
		dst = binary.AppendVarint(dst, w.Start)
		dst = binary.AppendVarint(dst, w.End)
		dst = c.s.Append(dst, kw.vals[i])
	}
	return dst
}

func (c keyWindowsCodec[S]) Decode(src []byte) (*keyWindows[S], int, error) {
	n, off := binary.Uvarint(src)
	if off <= 0 || n > uint64(len(src)-off)/2 {
		return nil, 0, fmt.Errorf("%w: window count", codec.ErrCorrupt)
	}
	kw := &keyWindows[S]{}
	kw.setLen(int(n))
	for i := range kw.wins {
		w, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("window %d: %w", i, err)
		}
		off += k
		if i > 0 && !winLess(kw.wins[i-1], w) {
			return nil, 0, fmt.Errorf("%w: window %d: %v out of order", codec.ErrCorrupt, i, w)
		}
		kw.wins[i] = w
		v, k, err := c.s.Decode(src[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("state of window %v: %w", w, err)
		}
		if k < 0 || k > len(src)-off {
			return nil, 0, fmt.Errorf("%w: state of window %v: codec overran its input", codec.ErrCorrupt, w)
		}
		off += k
		kw.vals[i] = v
	}
	return kw, off, nil
}

func decodeWindow(src []byte) (window.TimeWindow, int, error) {
	start, a := binary.Varint(src)
	if a <= 0 {
		return window.TimeWindow{}, 0, fmt.Errorf("%w: window start", codec.ErrCorrupt)
	}
	end, b := binary.Varint(src[a:])
	if b <= 0 {
		return window.TimeWindow{}, 0, fmt.Errorf("%w: window end", codec.ErrCorrupt)
	}
	return window.TimeWindow{Start: start, End: end}, a + b, nil
}

// mergingSetCodec encodes a key's merging windows: uvarint n, then n ×
// (window, state window).
type mergingSetCodec struct{}

func (mergingSetCodec) Append(dst []byte, m *mergingSet) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.pairs)))
	for _, p := range m.pairs {
		dst = binary.AppendVarint(dst, p.W.Start)
		dst = binary.AppendVarint(dst, p.W.End)
		dst = binary.AppendVarint(dst, p.State.Start)
		dst = binary.AppendVarint(dst, p.State.End)
	}
	return dst
}

func (mergingSetCodec) Decode(src []byte) (*mergingSet, int, error) {
	n, off := binary.Uvarint(src)
	if off <= 0 || n > uint64(len(src)-off)/4 {
		return nil, 0, fmt.Errorf("%w: merging window count", codec.ErrCorrupt)
	}
	m := &mergingSet{pairs: make([]winPair, n)}
	for i := range m.pairs {
		w, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, err
		}
		off += k
		sw, k, err := decodeWindow(src[off:])
		if err != nil {
			return nil, 0, err
		}
		off += k
		m.pairs[i] = winPair{W: w, State: sw}
	}
	return m, off, nil
}
