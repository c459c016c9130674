package statebackend

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// The Snapshotter implementations of the states of this package. Data of
// one key group, per state kind:
//
//	Value, Reducing, Aggregating (a table of cells with TTL):
//	  flags (1 byte: 1 = entries carry an expiry) | uvarint n
//	  n × { key | [varint expiry in epoch ms, 0 = never] | value }
//	  where the value is the value (Value, Reducing) or the accumulator
//	  (Aggregating).
//	List, Map:
//	  flags (1 byte) | uvarint n | n × { key | collection }
//	  where the key's list or map is, by flags:
//	  0 (no expiries: state without TTL):
//	    uvarint count | count × element (List), or
//	    uvarint count | count × { map key | map value } (Map)
//	  1 (one expiry for the whole collection, written by format version 1):
//	    varint expiry in epoch ms, 0 = never | as for 0
//	  2 (an expiry per element or entry, format version 2):
//	    uvarint count | count × { varint Δexpiry | element } (List), or
//	    uvarint count | count × { map key | varint Δexpiry | map value } (Map)
//	    where Δexpiry is the element's expiry (epoch ms, 0 = never) minus
//	    the previous element's of the collection (the first's: minus 0).
//	Table:      uvarint n, n × { key | value }
//	Namespaced: uvarint n, n × { key | namespace | value }
//
// Keys use the backend's key codec; restoring checks that every key hashes
// to the key group it is restored into. A snapshot of list or map state
// with TTL first drops the elements expired at the time of the snapshot,
// from memory too, so it writes no expired element; expired Value,
// Reducing and Aggregating cells not cleaned up yet are written, and expire
// after restore as they would have.

func idxErr(kg, n int) error {
	return fmt.Errorf("key-group index %d out of range [0, %d)", kg, n)
}

// checkKeyGroup reports a restored key that does not belong to the key
// group it came in.
func checkKeyGroup[K comparable](b *Keyed[K], k K, kg, entry int) error {
	if got, want := b.KeyGroupOf(k), b.rng.Start+kg; got != want {
		return corruptf("entry %d: key %v belongs to key group %d, not %d (did the key hash or codec change?)", entry, k, got, want)
	}
	return nil
}

// ---- cells with TTL: Value, Reducing, Aggregating ---------------------------

func (s *ttlTable[K, V]) bind(any) {
	s.b.KeyCodec()
	s.vc.get()
}

// SnapshotKeyGroup implements Snapshotter. Cells keep their expiry (an
// expired cell not cleaned up yet is written too, and expires after restore
// as it would have).
func (s *ttlTable[K, V]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if kg < 0 || kg >= len(s.t.maps) {
		return dst, idxErr(kg, len(s.t.maps))
	}
	m := s.t.maps[kg]
	if len(m) == 0 {
		return dst, nil
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return dst, err
	}
	vc, err := s.vc.get()
	if err != nil {
		return dst, err
	}
	return appendCells(dst, m, kc, vc, s.anyExp), nil
}

// appendCells is a key group's cells in SnapshotKeyGroup's format: a flags
// byte (1: with expiries), the count, and each key, expiry and value.
func appendCells[K comparable, V any](dst []byte, m map[K]cell[V], kc codec.Codec[K], vc codec.Codec[V], withExp bool) []byte {
	if !withExp {
		dst = append(dst, 0)
		dst = binary.AppendUvarint(dst, uint64(len(m)))
		for k, c := range m {
			dst = kc.Append(dst, k)
			dst = vc.Append(dst, c.v)
		}
		return dst
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, c := range m {
		dst = kc.Append(dst, k)
		dst = binary.AppendVarint(dst, c.exp)
		dst = vc.Append(dst, c.v)
	}
	return dst
}

// RestoreKeyGroup implements Snapshotter.
func (s *ttlTable[K, V]) RestoreKeyGroup(kg int, src []byte) error {
	if kg < 0 || kg >= len(s.t.maps) {
		return idxErr(kg, len(s.t.maps))
	}
	d := decoder{b: src}
	if err := s.restoreCells(kg, &d); err != nil {
		return err
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
	}
	return nil
}

// restoreCells decodes SnapshotKeyGroup's output from d into key-group
// index kg, replacing cells with the same key.
func (s *ttlTable[K, V]) restoreCells(kg int, d *decoder) error {
	src := d.b[d.off:]
	kc, err := s.b.KeyCodec()
	if err != nil {
		return err
	}
	vc, err := s.vc.get()
	if err != nil {
		return err
	}
	flags, err := d.byte()
	if err != nil {
		return err
	}
	if flags > 1 {
		return corruptf("unknown flags %#x", flags)
	}
	n, err := d.count(s.b.keyMin + s.vc.min + int(flags))
	if err != nil {
		return fmt.Errorf("number of entries: %w", err)
	}
	m := s.t.maps[kg]
	if len(m) == 0 {
		m = make(map[K]cell[V], min(n, len(src)))
		s.t.maps[kg] = m
	}
	for i := range n {
		k, err := decodeWith(d, kc)
		if err != nil {
			return fmt.Errorf("entry %d of %d, key: %w", i, n, err)
		}
		if err := checkKeyGroup(s.b, k, kg, i); err != nil {
			return err
		}
		var c cell[V]
		if flags != 0 {
			if c.exp, err = d.varint(); err != nil {
				return fmt.Errorf("entry %d of %d, expiry: %w", i, n, err)
			}
			if c.exp != 0 {
				s.anyExp = true
			}
		}
		if c.v, err = decodeWith(d, vc); err != nil {
			return fmt.Errorf("entry %d of %d (key %v), value: %w", i, n, k, err)
		}
		m[k] = c
	}
	return nil
}

// ---- Table -------------------------------------------------------------------

// tableSnap is what a Table needs for snapshots only.
type tableSnap[MK comparable, V any] struct {
	kc   lazyCodec[MK]
	vc   lazyCodec[V]
	kgOf func(MK) int // set when bound to a Keyed[MK]
	base int
	tag  string
}

func (t *Table[MK, V]) snapState() *tableSnap[MK, V] {
	if t.snap == nil {
		t.snap = &tableSnap[MK, V]{
			kc:  lazyCodec[MK]{what: "key"},
			vc:  lazyCodec[V]{what: "value"},
			tag: typeTag("table", reflect.TypeFor[MK](), reflect.TypeFor[V]()),
		}
	}
	return t.snap
}

// SetCodecs sets the codecs of the table's keys and values in snapshots
// (nil: the backend's key codec for keys of its key type, else codec.For of
// the type). Set them before registering the table.
func (t *Table[MK, V]) SetCodecs(kc codec.Codec[MK], vc codec.Codec[V]) {
	s := t.snapState()
	s.kc.set(kc)
	s.vc.set(vc)
}

// SetValueCodecFunc makes fn build the codec of the table's values, for
// owners whose value codec is made of other codecs. fn runs once, when the
// table is registered; an error from it is returned by every snapshot and
// restore of the table (so a type without a codec fails checkpoints, not
// the job).
func (t *Table[MK, V]) SetValueCodecFunc(fn func() (codec.Codec[V], error)) {
	t.snapState().vc.setMake(fn)
}

func (t *Table[MK, V]) bind(b any) {
	s := t.snapState()
	if kb, ok := b.(*Keyed[MK]); ok {
		s.kc.setMake(kb.KeyCodec)
		s.kgOf, s.base = kb.KeyGroupOf, kb.rng.Start
	}
	s.kc.get()
	s.vc.get()
}

// StateType implements Snapshotter.
func (t *Table[MK, V]) StateType() string { return t.snapState().tag }

// SnapshotKeyGroup implements Snapshotter.
func (t *Table[MK, V]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if kg < 0 || kg >= len(t.maps) {
		return dst, idxErr(kg, len(t.maps))
	}
	m := t.maps[kg]
	if len(m) == 0 {
		return dst, nil
	}
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return dst, err
	}
	vc, err := s.vc.get()
	if err != nil {
		return dst, err
	}
	return appendEntries(dst, m, kc, vc), nil
}

// appendEntries is a table's key-group data: uvarint count, then each key
// and value.
func appendEntries[MK comparable, V any](dst []byte, m map[MK]V, kc codec.Codec[MK], vc codec.Codec[V]) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, v := range m {
		dst = kc.Append(dst, k)
		dst = vc.Append(dst, v)
	}
	return dst
}

// SetCopyOnWrite is the owner's promise that makes a table with pointers
// in its values freezable (Freeze): it never changes a value reached from
// the table in place once Epoch has moved past the epoch the value was
// made in, but puts a changed copy instead. Tables whose key and value
// types hold no references (strings aside) need no promise.
func (t *Table[MK, V]) SetCopyOnWrite() { t.cow = true }

// Epoch is the number of snapshots that froze the table so far: a value
// made (or copied) before the current epoch may be read by a snapshot's
// encoding on another goroutine and must not be changed.
func (t *Table[MK, V]) Epoch() uint32 { return t.epoch }

// Freeze implements Freezer: a copy of the per-key-group maps, encoded
// later with the codecs resolved now. The values are shared, which is safe
// when they hold no references or the owner copies on write.
func (t *Table[MK, V]) Freeze() (func(kg int, dst []byte) ([]byte, error), bool) {
	if !t.freezable() {
		return nil, false
	}
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return nil, false // encoded at once, which reports the error
	}
	vc, err := s.vc.get()
	if err != nil {
		return nil, false
	}
	frozen := cloneMaps(t.maps)
	t.epoch++
	return func(kg int, dst []byte) ([]byte, error) {
		if kg < 0 || kg >= len(frozen) {
			return dst, idxErr(kg, len(frozen))
		}
		if len(frozen[kg]) == 0 {
			return dst, nil
		}
		return appendEntries(dst, frozen[kg], kc, vc), nil
	}, true
}

// HoldsNoReferences reports whether values of t hold nothing another
// goroutine could change through them: no pointers, slices, maps, channels,
// funcs or interfaces (strings are immutable). A copy of such a value is
// independent of the original.
func HoldsNoReferences(t reflect.Type) bool { return immutableType(t) }

func immutableType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return immutableType(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !immutableType(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// RestoreKeyGroup implements Snapshotter.
func (t *Table[MK, V]) RestoreKeyGroup(kg int, src []byte) error {
	if kg < 0 || kg >= len(t.maps) {
		return idxErr(kg, len(t.maps))
	}
	d := decoder{b: src}
	if _, err := t.restoreEntries(kg, &d); err != nil {
		return err
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
	}
	return nil
}

// restoreEntries decodes appendEntries' output from d into key-group index
// kg, replacing entries with the same key, and returns their number.
func (t *Table[MK, V]) restoreEntries(kg int, d *decoder) (int, error) {
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return 0, err
	}
	vc, err := s.vc.get()
	if err != nil {
		return 0, err
	}
	n, err := d.count(s.kc.min + s.vc.min)
	if err != nil {
		return 0, fmt.Errorf("number of entries: %w", err)
	}
	m := t.maps[kg]
	if len(m) == 0 {
		m = make(map[MK]V, min(n, d.rest()))
		t.maps[kg] = m
	}
	for i := range n {
		k, err := decodeWith(d, kc)
		if err != nil {
			return 0, fmt.Errorf("entry %d of %d, key: %w", i, n, err)
		}
		if s.kgOf != nil {
			if got, want := s.kgOf(k), s.base+kg; got != want {
				return 0, corruptf("entry %d: key %v belongs to key group %d, not %d (did the key hash or codec change?)", i, k, got, want)
			}
		}
		v, err := decodeWith(d, vc)
		if err != nil {
			return 0, fmt.Errorf("entry %d of %d (key %v), value: %w", i, n, k, err)
		}
		m[k] = v
	}
	return n, nil
}

// ---- Namespaced --------------------------------------------------------------

func (t *Namespaced[K, N, V]) bind(any) {
	t.b.KeyCodec()
	t.nc.get()
	t.vc.get()
}

// StateType implements Snapshotter.
func (t *Namespaced[K, N, V]) StateType() string { return t.tag }

// SnapshotKeyGroup implements Snapshotter.
func (t *Namespaced[K, N, V]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if kg < 0 || kg >= len(t.index) {
		return dst, idxErr(kg, len(t.index))
	}
	m := t.index[kg]
	if len(m) == 0 {
		return dst, nil
	}
	kc, err := t.b.KeyCodec()
	if err != nil {
		return dst, err
	}
	nc, err := t.nc.get()
	if err != nil {
		return dst, err
	}
	vc, err := t.vc.get()
	if err != nil {
		return dst, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, i := range m {
		dst = kc.Append(dst, k.Key)
		dst = nc.Append(dst, k.NS)
		dst = vc.Append(dst, t.vals[i])
	}
	return dst, nil
}

// RestoreKeyGroup implements Snapshotter.
func (t *Namespaced[K, N, V]) RestoreKeyGroup(kg int, src []byte) error {
	if kg < 0 || kg >= len(t.index) {
		return idxErr(kg, len(t.index))
	}
	kc, err := t.b.KeyCodec()
	if err != nil {
		return err
	}
	nc, err := t.nc.get()
	if err != nil {
		return err
	}
	vc, err := t.vc.get()
	if err != nil {
		return err
	}
	d := decoder{b: src}
	n, err := d.count(t.b.keyMin + t.nc.min + t.vc.min)
	if err != nil {
		return fmt.Errorf("number of entries: %w", err)
	}
	for i := range n {
		var k NsKey[K, N]
		if k.Key, err = decodeWith(&d, kc); err != nil {
			return fmt.Errorf("entry %d of %d, key: %w", i, n, err)
		}
		if err := checkKeyGroup(t.b, k.Key, kg, i); err != nil {
			return err
		}
		if k.NS, err = decodeWith(&d, nc); err != nil {
			return fmt.Errorf("entry %d of %d (key %v), namespace: %w", i, n, k.Key, err)
		}
		v, err := decodeWith(&d, vc)
		if err != nil {
			return fmt.Errorf("entry %d of %d (key %v, namespace %v), value: %w", i, n, k.Key, k.NS, err)
		}
		*t.upsertAt(kg, k) = v
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
	}
	return nil
}

// ---- List and Map --------------------------------------------------------------

// Flags of the data of list and map state (see the top of this file).
const (
	flagsPlain    = 0
	flagsPerKey   = 1
	flagsPerEntry = 2
)

// toDisk and fromDisk convert an expiry between memory and snapshots,
// where 0 means never.
func toDisk(exp int64) int64 {
	if exp == neverExpires {
		return 0
	}
	return exp
}

func fromDisk(exp int64) int64 {
	if exp == 0 {
		return neverExpires
	}
	return exp
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readFlags reads the flags of list or map data.
func readFlags(d *decoder) (byte, error) {
	flags, err := d.byte()
	if err != nil {
		return 0, err
	}
	if flags > flagsPerEntry {
		return 0, corruptf("unknown flags %#x", flags)
	}
	return flags, nil
}

// appendCollections writes one key group of list or map state: the flags,
// the number of keys, then per key its encoding and what appendEntry writes
// of its collection. List and Map share this framing; they differ only in
// their elements.
func appendCollections[K comparable, C any](dst []byte, kc codec.Codec[K], flags byte, m map[K]C, appendEntry func([]byte, C) []byte) []byte {
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, c := range m {
		dst = kc.Append(dst, k)
		dst = appendEntry(dst, c)
	}
	return dst
}

// dropExpired expires the elements of every timed collection of a key
// group (live expires one and returns how many elements are left) and
// drops the keys left empty, before a snapshot.
func dropExpired[K comparable, C any](m map[K]C, live func(C) int) {
	for k, c := range m {
		if live(c) == 0 {
			delete(m, k)
		}
	}
}

// collectionReader decodes one key's collection: exp is the key's expiry
// (flagsPerKey data) or neverExpires; with perEntry every element carries
// its own. entryMin is the fewest bytes an element takes.
type collectionReader[K comparable] struct {
	entryMin int
	prepare  func(flags byte, n int)
	read     func(d *decoder, k K, cnt int, exp int64, perEntry bool, where string) error
}

// restoreCollections reads what appendCollections wrote, and the per-key
// expiry layout of format version 1, into the key group kg.
func restoreCollections[K comparable](b *Keyed[K], kg int, src []byte, r collectionReader[K]) error {
	if kg < 0 || kg >= b.rng.Len() {
		return idxErr(kg, b.rng.Len())
	}
	kc, err := b.KeyCodec()
	if err != nil {
		return err
	}
	d := decoder{b: src}
	flags, err := readFlags(&d)
	if err != nil {
		return err
	}
	n, err := d.count(b.keyMin + 1 + boolInt(flags == flagsPerKey))
	if err != nil {
		return fmt.Errorf("number of entries: %w", err)
	}
	r.prepare(flags, min(n, len(src)))
	perEntry := flags == flagsPerEntry
	for i := range n {
		k, err := decodeWith(&d, kc)
		if err != nil {
			return fmt.Errorf("entry %d of %d, key: %w", i, n, err)
		}
		if err := checkKeyGroup(b, k, kg, i); err != nil {
			return err
		}
		where := fmt.Sprintf("entry %d of %d (key %v)", i, n, k)
		exp := int64(neverExpires)
		if flags == flagsPerKey {
			e, err := d.varint()
			if err != nil {
				return fmt.Errorf("%s, expiry: %w", where, err)
			}
			exp = fromDisk(e)
		}
		cnt, err := d.count(r.entryMin + boolInt(perEntry))
		if err != nil {
			return fmt.Errorf("%s, size: %w", where, err)
		}
		if err := r.read(&d, k, cnt, exp, perEntry, where); err != nil {
			return err
		}
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
	}
	return nil
}

// readExpiry reads the delta-encoded expiry of one element.
func readExpiry(d *decoder, prev *int64) (int64, error) {
	delta, err := d.varint()
	if err != nil {
		return 0, err
	}
	*prev += delta
	return fromDisk(*prev), nil
}

func (s *List[K, V]) bind(any) {
	s.b.KeyCodec()
	s.ec.get()
}

// SnapshotKeyGroup implements Snapshotter.
func (s *List[K, V]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if kg < 0 || kg >= s.b.rng.Len() {
		return dst, idxErr(kg, s.b.rng.Len())
	}
	n := 0
	if s.timed {
		now := s.b.Now()
		dropExpired(s.tl[kg], func(l *timedList[V]) int { l.expire(now); return len(l.vals) })
		n = len(s.tl[kg])
	} else {
		n = len(s.plain[kg])
	}
	if n == 0 {
		return dst, nil
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return dst, err
	}
	ec, err := s.ec.get()
	if err != nil {
		return dst, err
	}
	if !s.timed {
		return appendCollections(dst, kc, flagsPlain, s.plain[kg], func(dst []byte, vs []V) []byte {
			dst = binary.AppendUvarint(dst, uint64(len(vs)))
			for _, v := range vs {
				dst = ec.Append(dst, v)
			}
			return dst
		}), nil
	}
	return appendCollections(dst, kc, flagsPerEntry, s.tl[kg], func(dst []byte, l *timedList[V]) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(l.vals)))
		prev := int64(0)
		for i, v := range l.vals {
			e := toDisk(l.exps[i])
			dst = binary.AppendVarint(dst, e-prev)
			prev = e
			dst = ec.Append(dst, v)
		}
		return dst
	}), nil
}

// RestoreKeyGroup implements Snapshotter. Data with expiries makes a state
// without TTL keep expiries (see makeTimed); data without makes elements
// that never expire.
func (s *List[K, V]) RestoreKeyGroup(kg int, src []byte) error {
	ec, err := s.ec.get()
	if err != nil {
		return err
	}
	return restoreCollections(s.b, kg, src, collectionReader[K]{
		entryMin: s.ec.min,
		prepare: func(flags byte, n int) {
			if flags != flagsPlain && !s.timed {
				s.makeTimed()
			}
			switch {
			case !s.timed && len(s.plain[kg]) == 0:
				s.plain[kg] = make(map[K][]V, n)
			case s.timed && len(s.tl[kg]) == 0:
				s.tl[kg] = make(map[K]*timedList[V], n)
			}
		},
		read: func(d *decoder, k K, cnt int, exp int64, perEntry bool, where string) error {
			vals := make([]V, 0, min(cnt, 4096))
			var exps []int64
			if perEntry {
				exps = make([]int64, 0, min(cnt, 4096))
			}
			prev := int64(0)
			for j := range cnt {
				if perEntry {
					e, err := readExpiry(d, &prev)
					if err != nil {
						return fmt.Errorf("%s, element %d expiry: %w", where, j, err)
					}
					exps = append(exps, e)
				}
				v, err := decodeWith(d, ec)
				if err != nil {
					return fmt.Errorf("%s, element %d: %w", where, j, err)
				}
				vals = append(vals, v)
			}
			switch {
			case cnt == 0:
				s.clearKey(kg, k)
			case !s.timed:
				s.plain[kg][k] = vals
			case perEntry:
				l := &timedList[V]{vals: vals, exps: exps}
				l.reindex()
				s.tl[kg][k] = l
			default:
				s.tl[kg][k] = newTimedList(vals, exp)
			}
			return nil
		},
	})
}

// clearKey removes key k of key-group index kg.
func (s *List[K, V]) clearKey(kg int, k K) {
	if s.timed {
		delete(s.tl[kg], k)
	} else {
		delete(s.plain[kg], k)
	}
}

func (s *Map[K, UK, UV]) bind(any) {
	s.b.KeyCodec()
	s.kc.get()
	s.vc.get()
}

// SnapshotKeyGroup implements Snapshotter.
func (s *Map[K, UK, UV]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if kg < 0 || kg >= s.b.rng.Len() {
		return dst, idxErr(kg, s.b.rng.Len())
	}
	n := 0
	if s.timed {
		now := s.b.Now()
		dropExpired(s.tm[kg], func(t *timedMap[UK, UV]) int { t.expire(now); return len(t.vals) })
		n = len(s.tm[kg])
	} else {
		n = len(s.plain[kg])
	}
	if n == 0 {
		return dst, nil
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return dst, err
	}
	ukc, err := s.kc.get()
	if err != nil {
		return dst, err
	}
	uvc, err := s.vc.get()
	if err != nil {
		return dst, err
	}
	if !s.timed {
		return appendCollections(dst, kc, flagsPlain, s.plain[kg], func(dst []byte, um map[UK]UV) []byte {
			dst = binary.AppendUvarint(dst, uint64(len(um)))
			for uk, uv := range um {
				dst = ukc.Append(dst, uk)
				dst = uvc.Append(dst, uv)
			}
			return dst
		}), nil
	}
	return appendCollections(dst, kc, flagsPerEntry, s.tm[kg], func(dst []byte, t *timedMap[UK, UV]) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(t.vals)))
		prev := int64(0)
		for uk, uv := range t.vals {
			dst = ukc.Append(dst, uk)
			e := toDisk(t.exps[uk])
			dst = binary.AppendVarint(dst, e-prev)
			prev = e
			dst = uvc.Append(dst, uv)
		}
		return dst
	}), nil
}

// RestoreKeyGroup implements Snapshotter, as List's.
func (s *Map[K, UK, UV]) RestoreKeyGroup(kg int, src []byte) error {
	ukc, err := s.kc.get()
	if err != nil {
		return err
	}
	uvc, err := s.vc.get()
	if err != nil {
		return err
	}
	return restoreCollections(s.b, kg, src, collectionReader[K]{
		entryMin: s.kc.min + s.vc.min,
		prepare: func(flags byte, n int) {
			if flags != flagsPlain && !s.timed {
				s.makeTimed()
			}
			switch {
			case !s.timed && len(s.plain[kg]) == 0:
				s.plain[kg] = make(map[K]map[UK]UV, n)
			case s.timed && len(s.tm[kg]) == 0:
				s.tm[kg] = make(map[K]*timedMap[UK, UV], n)
			}
		},
		read: func(d *decoder, k K, cnt int, exp int64, perEntry bool, where string) error {
			vals := make(map[UK]UV, min(cnt, 1024))
			var exps map[UK]int64
			if s.timed {
				exps = make(map[UK]int64, min(cnt, 1024))
			}
			next, prev := int64(neverExpires), int64(0)
			for j := range cnt {
				uk, err := decodeWith(d, ukc)
				if err != nil {
					return fmt.Errorf("%s, map entry %d key: %w", where, j, err)
				}
				if perEntry {
					if exp, err = readExpiry(d, &prev); err != nil {
						return fmt.Errorf("%s, map entry %d expiry: %w", where, j, err)
					}
				}
				uv, err := decodeWith(d, uvc)
				if err != nil {
					return fmt.Errorf("%s, map entry %d value: %w", where, j, err)
				}
				vals[uk] = uv
				if exps != nil {
					exps[uk] = exp
					next = min(next, exp)
				}
			}
			switch {
			case len(vals) == 0:
				s.clearKey(kg, k)
			case !s.timed:
				s.plain[kg][k] = vals
			default:
				s.tm[kg][k] = &timedMap[UK, UV]{vals: vals, exps: exps, next: next}
			}
			return nil
		},
	})
}

// clearKey removes key k of key-group index kg.
func (s *Map[K, UK, UV]) clearKey(kg int, k K) {
	if s.timed {
		delete(s.tm[kg], k)
	} else {
		delete(s.plain[kg], k)
	}
}
