package statebackend

import (
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"sync/atomic"

	"github.com/strom-dev/strom/codec"
)

// Incremental snapshots.
//
// A full snapshot encodes every entry of every state, so with 1 s
// checkpoints a job whose state grows pays for all of it every second (the
// q8 window join re-encoded 60 MB per checkpoint after 15 s, most of the
// time in cache misses walking the values). An incremental chain instead
// writes one full stream, the base, and after it deltas: per key group,
// only the entries put or deleted since the chain's previous snapshot. A
// restore applies the base and then every delta, in order.
//
// The modes of SnapshotAsyncMode:
//
//   - SnapshotFull: a self-contained stream that leaves any chain as it is
//     (savepoints: they must not depend on checkpoint files, and the
//     changes since the chain's last snapshot must still reach its next
//     delta).
//   - SnapshotBase: a full stream that starts a new chain: from now on the
//     states that can (DeltaTracker) record which keys change.
//   - SnapshotDelta: a delta of the open chain (a base if none is open).
//     Tracking states write a delta section ('D') of the keys they
//     recorded; every other state writes a replace section ('R') of its
//     whole key group, which the restore puts in place of what the key
//     group held (so states without tracking stay correct, at the old
//     cost); restored data of states not registered yet is unchanged since
//     the base, which holds it, and is not written.
//
// Format (version 4, see snapshot.go): the header carries a flags uvarint
// (bit 0: delta stream), and every section carries a kind byte after its
// type tag: 'F' full data (SnapshotKeyGroup), 'R' replace (full data,
// possibly empty), 'D' delta data. A state may have several sections in
// one key group: an 'F' or 'R' and then 'D's, applied in order (restored
// data of a state not registered yet is kept as such segments and written
// again as they are). Delta data of a Table is uvarint nPut, nPut × (key,
// value), uvarint nDel, nDel × key.
//
// The owner of the backend (runtime.Context) decides when a chain is too
// long and takes a base again; the snapshots' files are the checkpoint
// storage's shared files, reference-counted across checkpoints.

// SnapshotMode says what SnapshotAsyncMode writes.
type SnapshotMode uint8

const (
	// SnapshotFull is a self-contained snapshot that leaves an open chain
	// as it is.
	SnapshotFull SnapshotMode = iota
	// SnapshotBase is a full snapshot that starts a new chain.
	SnapshotBase
	// SnapshotDelta is a delta of the open chain, or a base if none is open.
	SnapshotDelta
)

// Section kinds of version 4.
const (
	kindFull    = 'F'
	kindReplace = 'R'
	kindDelta   = 'D'
)

// flagDelta marks a delta stream in a version 4 header.
const flagDelta = 1

// DeltaTracker is implemented by states that can record which keys change
// and snapshot only those (Table). All its methods run on the task
// goroutine.
type DeltaTracker interface {
	// StartTracking makes the state as it is now the chain's reference:
	// from here on, changed keys are recorded.
	StartTracking()
	// FreezeDelta captures the changes recorded since StartTracking or the
	// last FreezeDelta and starts recording anew; enc appends key-group
	// index kg's delta data (nothing for no change), or with replace its
	// whole data (SnapshotKeyGroup's format, possibly empty) for a key
	// group that changed too much to record key by key, and may run on
	// any goroutine. ok false: the state is not tracking or cannot be
	// frozen; it is written whole.
	FreezeDelta() (enc func(kg int, dst []byte) (out []byte, replace bool, err error), ok bool)
	// ApplyDelta applies one delta section to key-group index kg.
	ApplyDelta(kg int, src []byte) error
}

// KeyGroupClearer is implemented by states that can drop one key group's
// entries: a replace section ('R') restores into a cleared key group.
type KeyGroupClearer interface {
	ClearKeyGroup(kg int) error
}

// deltasApplied counts the delta sections restores applied (tests check
// that their incremental paths ran).
var deltasApplied atomic.Int64

// DeltaSectionsApplied is how many delta sections restores in this process
// have applied to registered states.
func DeltaSectionsApplied() int64 { return deltasApplied.Load() }

// segment is one section of restored data of a state not registered yet.
type segment struct {
	kind byte
	data []byte
}

// addSegment records a section for a pending state's key group: a full or
// replace section drops what came before it.
func addSegment(segs []segment, kind byte, data []byte) []segment {
	if kind != kindDelta {
		segs = segs[:0:0]
		if len(data) == 0 {
			return segs
		}
		kind = kindFull
	}
	return append(segs, segment{kind, data})
}

// applySection applies one section to a registered state's key-group index.
func applySection(sn Snapshotter, idx int, kind byte, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("decoding panicked: %v", r)
		}
	}()
	switch kind {
	case kindFull:
		return sn.RestoreKeyGroup(idx, data)
	case kindReplace:
		c, ok := sn.(KeyGroupClearer)
		if !ok {
			return fmt.Errorf("state %s cannot clear a key group for an incremental restore", sn.StateType())
		}
		if err := c.ClearKeyGroup(idx); err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
		return sn.RestoreKeyGroup(idx, data)
	case kindDelta:
		d, ok := sn.(DeltaTracker)
		if !ok {
			return fmt.Errorf("state %s cannot apply an incremental snapshot's delta", sn.StateType())
		}
		if err := d.ApplyDelta(idx, data); err != nil {
			return err
		}
		deltasApplied.Add(1)
		return nil
	}
	return corruptf("unknown section kind %#x", kind)
}

// ---- Table -------------------------------------------------------------------

func (t *Table[MK, V]) touch(kg int, mk MK, dv dirtyVal[V]) {
	l := &t.dirty[kg]
	if l.full {
		return
	}
	l.entries = append(l.entries, dirtyEntry[MK, V]{mk, dv})
	if n := len(l.entries); n > 64 && n > 2*len(t.maps[kg]) {
		l.entries, l.full = nil, true
	}
}

// StartTracking implements DeltaTracker.
func (t *Table[MK, V]) StartTracking() {
	t.dirty = make([]dirtyLog[MK, V], len(t.maps))
	t.tracking = true
}

// freezable says whether the table's values may be shared with an encoder
// on another goroutine (see Freeze).
func (t *Table[MK, V]) freezable() bool {
	return immutableType(reflect.TypeFor[MK]()) && (t.cow || immutableType(reflect.TypeFor[V]()))
}

// frozenDelta is what a delta captured of a tracked table: per key group
// the change log, or for key groups written whole a copy of their map.
type frozenDelta[MK comparable, V any] struct {
	logs  []dirtyLog[MK, V]
	whole []map[MK]V
}

// freezeDelta takes the recorded changes and starts recording anew; key
// groups whose log was dropped are copied whole (their maps, not the
// values: shared as Freeze shares them).
func (t *Table[MK, V]) freezeDelta() frozenDelta[MK, V] {
	f := frozenDelta[MK, V]{logs: t.dirty}
	t.dirty = make([]dirtyLog[MK, V], len(t.maps))
	for kg, l := range f.logs {
		if l.full {
			if f.whole == nil {
				f.whole = make([]map[MK]V, len(t.maps))
			}
			f.whole[kg] = maps.Clone(t.maps[kg])
		}
	}
	return f
}

// changeSet is a key group's recorded changes, each key's last one, in
// the order they were made: the encoder walks the log rather than a map
// of it, so it reads the values in about the order they were allocated,
// which the memory prefetcher follows (a map's order made every value a
// cache miss).
type changeSet[MK comparable, V any] struct {
	entries []dirtyEntry[MK, V]
	// last is each key's last entry; nil when no key repeats.
	last       map[MK]int32
	puts, dels int
}

// keep says whether entry i is its key's last change.
func (c *changeSet[MK, V]) keep(i int) bool {
	return c.last == nil || c.last[c.entries[i].k] == int32(i)
}

// last is key group kg's changes; whole says the key group is to be
// written whole (from f.whole[kg]).
func (f frozenDelta[MK, V]) last(kg int) (changes *changeSet[MK, V], whole bool, err error) {
	if kg < 0 || kg >= len(f.logs) {
		return nil, false, idxErr(kg, len(f.logs))
	}
	l := f.logs[kg]
	if l.full {
		return nil, true, nil
	}
	if len(l.entries) == 0 {
		return nil, false, nil
	}
	c := &changeSet[MK, V]{entries: l.entries, last: make(map[MK]int32, len(l.entries))}
	for i, e := range l.entries {
		c.last[e.k] = int32(i)
	}
	if len(c.last) == len(l.entries) {
		c.last = nil
	}
	for i, e := range l.entries {
		switch {
		case !c.keep(i):
		case e.del:
			c.dels++
		default:
			c.puts++
		}
	}
	return c, false, nil
}

// FreezeDelta implements DeltaTracker. The changes were recorded with their
// values as put (shared, as Freeze shares them: an owner that copies on
// write puts a new value rather than change one a snapshot holds), so the
// capture takes the logs and copies only key groups that changed too much
// to log.
func (t *Table[MK, V]) FreezeDelta() (func(kg int, dst []byte) ([]byte, bool, error), bool) {
	if !t.tracking || !t.freezable() {
		return nil, false
	}
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return nil, false
	}
	vc, err := s.vc.get()
	if err != nil {
		return nil, false
	}
	f := t.freezeDelta()
	t.epoch++
	return func(kg int, dst []byte) ([]byte, bool, error) {
		return f.encode(kg, dst, func(dst []byte, m map[MK]V) []byte { return appendEntries(dst, m, kc, vc) }, func(dst []byte, c *changeSet[MK, V]) []byte {
			return appendTableDelta(dst, c, kc, vc)
		})
	}, true
}

// appendTableDelta is a table's delta data: the changed entries, then the
// deleted keys.
func appendTableDelta[MK comparable, V any](dst []byte, c *changeSet[MK, V], kc codec.Codec[MK], vc codec.Codec[V]) []byte {
	dst = binary.AppendUvarint(dst, uint64(c.puts))
	for i, e := range c.entries {
		if !e.del && c.keep(i) {
			dst = kc.Append(dst, e.k)
			dst = vc.Append(dst, e.v)
		}
	}
	return appendDeleted(dst, c, kc)
}

// encode is a frozen delta's key group kg: nothing if unchanged, its
// changes (changes), or the whole key group (whole) with replace.
func (f frozenDelta[MK, V]) encode(kg int, dst []byte, whole func([]byte, map[MK]V) []byte, changes func([]byte, *changeSet[MK, V]) []byte) ([]byte, bool, error) {
	d, all, err := f.last(kg)
	switch {
	case err != nil:
		return dst, false, err
	case all:
		if len(f.whole[kg]) == 0 {
			return dst, true, nil
		}
		return whole(dst, f.whole[kg]), true, nil
	case d == nil:
		return dst, false, nil
	}
	return changes(dst, d), false, nil
}

// appendDeleted appends c's deleted keys, after their count.
func appendDeleted[K comparable, V any](dst []byte, c *changeSet[K, V], kc codec.Codec[K]) []byte {
	dst = binary.AppendUvarint(dst, uint64(c.dels))
	for i, e := range c.entries {
		if e.del && c.keep(i) {
			dst = kc.Append(dst, e.k)
		}
	}
	return dst
}

// ApplyDelta implements DeltaTracker.
func (t *Table[MK, V]) ApplyDelta(kg int, src []byte) error {
	if kg < 0 || kg >= len(t.maps) {
		return idxErr(kg, len(t.maps))
	}
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return err
	}
	d := decoder{b: src}
	n, err := t.restoreEntries(kg, &d)
	if err != nil {
		return err
	}
	if err := applyDeletes(&d, kc, s.kc.min, t.maps[kg]); err != nil {
		return fmt.Errorf("after %d entries: %w", n, err)
	}
	return nil
}

// applyDeletes reads a delta's deleted keys, the rest of d, and removes
// them from m.
func applyDeletes[K comparable, V any](d *decoder, kc codec.Codec[K], minKey int, m map[K]V) error {
	nDel, err := d.count(max(minKey, 1))
	if err != nil {
		return fmt.Errorf("number of deleted keys: %w", err)
	}
	for i := range nDel {
		k, err := decodeWith(d, kc)
		if err != nil {
			return fmt.Errorf("deleted key %d of %d: %w", i, nDel, err)
		}
		delete(m, k)
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last deleted key", d.rest())
	}
	return nil
}

// ClearKeyGroup implements KeyGroupClearer.
func (t *Table[MK, V]) ClearKeyGroup(kg int) error {
	if kg < 0 || kg >= len(t.maps) {
		return idxErr(kg, len(t.maps))
	}
	t.maps[kg] = map[MK]V{}
	return nil
}

// cloneMaps copies per-key-group maps, leaving empty ones nil.
func cloneMaps[MK comparable, V any](ms []map[MK]V) []map[MK]V {
	out := make([]map[MK]V, len(ms))
	for i, m := range ms {
		if len(m) > 0 {
			out[i] = maps.Clone(m)
		}
	}
	return out
}

// ---- clearing key groups of the other states -----------------------------------

// ClearKeyGroup implements KeyGroupClearer.
func (s *ttlTable[K, V]) ClearKeyGroup(kg int) error { return s.t.ClearKeyGroup(kg) }

// ClearKeyGroup implements KeyGroupClearer.
func (s *List[K, V]) ClearKeyGroup(kg int) error {
	if kg < 0 || kg >= s.b.rng.Len() {
		return idxErr(kg, s.b.rng.Len())
	}
	if s.timed {
		s.tl[kg] = map[K]*timedList[V]{}
	} else {
		s.plain[kg] = map[K][]V{}
	}
	return nil
}

// ClearKeyGroup implements KeyGroupClearer.
func (s *Map[K, UK, UV]) ClearKeyGroup(kg int) error {
	if kg < 0 || kg >= s.b.rng.Len() {
		return idxErr(kg, s.b.rng.Len())
	}
	if s.timed {
		s.tm[kg] = map[K]*timedMap[UK, UV]{}
	} else {
		s.plain[kg] = map[K]map[UK]UV{}
	}
	return nil
}

// ClearKeyGroup implements KeyGroupClearer: the key group's slots go back
// to the free list.
func (t *Namespaced[K, N, V]) ClearKeyGroup(kg int) error {
	if kg < 0 || kg >= len(t.index) {
		return idxErr(kg, len(t.index))
	}
	var zero V
	for _, slot := range t.index[kg] {
		t.vals[slot] = zero
		t.free = append(t.free, slot)
	}
	t.index[kg] = map[NsKey[K, N]]int32{}
	return nil
}

// ---- value, reducing and aggregating state -------------------------------------

// StartTracking implements DeltaTracker.
func (s *ttlTable[K, V]) StartTracking() { s.t.StartTracking() }

// FreezeDelta implements DeltaTracker for cells whose values hold no
// references (a put stores a copy, so the recorded values cannot change
// under the encoder). Delta data: SnapshotKeyGroup's format for the
// changed cells, then uvarint nDel and the deleted keys.
func (s *ttlTable[K, V]) FreezeDelta() (func(kg int, dst []byte) ([]byte, bool, error), bool) {
	if !s.t.tracking || !immutableType(reflect.TypeFor[K]()) || !immutableType(reflect.TypeFor[V]()) {
		return nil, false
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return nil, false
	}
	vc, err := s.vc.get()
	if err != nil {
		return nil, false
	}
	f := s.t.freezeDelta()
	anyExp := s.anyExp
	return func(kg int, dst []byte) ([]byte, bool, error) {
		return f.encode(kg, dst, func(dst []byte, m map[K]cell[V]) []byte { return appendCells(dst, m, kc, vc, anyExp) },
			func(dst []byte, c *changeSet[K, cell[V]]) []byte { return appendCellDelta(dst, c, kc, vc, anyExp) })
	}, true
}

// appendCellDelta is a value state's delta data: the changed cells in
// SnapshotKeyGroup's format, then the deleted keys.
func appendCellDelta[K comparable, V any](dst []byte, c *changeSet[K, cell[V]], kc codec.Codec[K], vc codec.Codec[V], anyExp bool) []byte {
	var flags byte
	if anyExp {
		flags = 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(c.puts))
	for i, e := range c.entries {
		if e.del || !c.keep(i) {
			continue
		}
		dst = kc.Append(dst, e.k)
		if flags != 0 {
			dst = binary.AppendVarint(dst, e.v.exp)
		}
		dst = vc.Append(dst, e.v.v)
	}
	return appendDeleted(dst, c, kc)
}

// ApplyDelta implements DeltaTracker.
func (s *ttlTable[K, V]) ApplyDelta(kg int, src []byte) error {
	if kg < 0 || kg >= len(s.t.maps) {
		return idxErr(kg, len(s.t.maps))
	}
	d := decoder{b: src}
	if err := s.restoreCells(kg, &d); err != nil {
		return err
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return err
	}
	return applyDeletes(&d, kc, s.b.keyMin, s.t.maps[kg])
}

// ---- live size ----------------------------------------------------------------

// EntryCounter is implemented by states that can count the entries a
// snapshot would write cheaply (a length per key group), so the
// incremental chain can estimate the live state's size (Keyed.Entries).
type EntryCounter interface {
	NumEntries() int
}

func (t *Table[MK, V]) NumEntries() int   { return t.Len() }
func (s *ttlTable[K, V]) NumEntries() int { return s.Entries() }
func (s *List[K, V]) NumEntries() int     { return s.Entries() }
func (s *Map[K, UK, UV]) NumEntries() int { return s.NumKeys() }
func (t *Namespaced[K, N, V]) NumEntries() int {
	n := 0
	for _, m := range t.index {
		n += len(m)
	}
	return n
}

// Entries is the number of entries (keys, or key and namespace pairs) of
// every registered state, for an estimate of how big a base would be now:
// a chain whose files outgrow the live state by far is better replaced
// by a new base, while one that grew with the state is not. ok is false
// when a state cannot count, or restored data waits for its state (it is
// in a base but in no count). List and map state count keys, not their
// elements, so for them the estimate follows the keys only (they are
// written whole in every delta anyway, which makes chains re-base soon).
func (b *Keyed[K]) Entries() (n int, ok bool) {
	if len(b.pendingOrder) > 0 {
		return 0, false
	}
	for _, name := range b.order {
		if d, ok := b.states[name].(Derived); ok && d.Derived() {
			continue
		}
		c, ok := b.states[name].(EntryCounter)
		if !ok {
			return 0, false
		}
		n += c.NumEntries()
	}
	return n, true
}
