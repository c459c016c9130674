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
//	Value, List, Map, Reducing, Aggregating (a table of cells with TTL):
//	  flags (1 byte: 1 = entries carry an expiry) | uvarint n
//	  n × { key | [varint expiry in epoch ms, 0 = never] | stored value }
//	  where the stored value is the value (Value, Reducing), the accumulator
//	  (Aggregating), uvarint count + elements (List) or uvarint count +
//	  key/value pairs (Map).
//	Table:      uvarint n, n × { key | value }
//	Namespaced: uvarint n, n × { key | namespace | value }
//
// Keys use the backend's key codec; restoring checks that every key hashes
// to the key group it is restored into.

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

// ---- cells with TTL: Value, List, Map, Reducing, Aggregating ---------------

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
	if !s.anyExp {
		dst = append(dst, 0)
		dst = binary.AppendUvarint(dst, uint64(len(m)))
		for k, c := range m {
			dst = kc.Append(dst, k)
			dst = vc.Append(dst, c.v)
		}
		return dst, nil
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, c := range m {
		dst = kc.Append(dst, k)
		dst = binary.AppendVarint(dst, c.exp)
		dst = vc.Append(dst, c.v)
	}
	return dst, nil
}

// RestoreKeyGroup implements Snapshotter.
func (s *ttlTable[K, V]) RestoreKeyGroup(kg int, src []byte) error {
	if kg < 0 || kg >= len(s.t.maps) {
		return idxErr(kg, len(s.t.maps))
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return err
	}
	vc, err := s.vc.get()
	if err != nil {
		return err
	}
	d := decoder{b: src}
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
		k, err := decodeWith(&d, kc)
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
		if c.v, err = decodeWith(&d, vc); err != nil {
			return fmt.Errorf("entry %d of %d (key %v), value: %w", i, n, k, err)
		}
		m[k] = c
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
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
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	for k, v := range m {
		dst = kc.Append(dst, k)
		dst = vc.Append(dst, v)
	}
	return dst, nil
}

// RestoreKeyGroup implements Snapshotter.
func (t *Table[MK, V]) RestoreKeyGroup(kg int, src []byte) error {
	if kg < 0 || kg >= len(t.maps) {
		return idxErr(kg, len(t.maps))
	}
	s := t.snapState()
	kc, err := s.kc.get()
	if err != nil {
		return err
	}
	vc, err := s.vc.get()
	if err != nil {
		return err
	}
	d := decoder{b: src}
	n, err := d.count(s.kc.min + s.vc.min)
	if err != nil {
		return fmt.Errorf("number of entries: %w", err)
	}
	m := t.maps[kg]
	if len(m) == 0 {
		m = make(map[MK]V, min(n, len(src)))
		t.maps[kg] = m
	}
	for i := range n {
		k, err := decodeWith(&d, kc)
		if err != nil {
			return fmt.Errorf("entry %d of %d, key: %w", i, n, err)
		}
		if s.kgOf != nil {
			if got, want := s.kgOf(k), s.base+kg; got != want {
				return corruptf("entry %d: key %v belongs to key group %d, not %d (did the key hash or codec change?)", i, k, got, want)
			}
		}
		v, err := decodeWith(&d, vc)
		if err != nil {
			return fmt.Errorf("entry %d of %d (key %v), value: %w", i, n, k, err)
		}
		m[k] = v
	}
	if d.rest() != 0 {
		return corruptf("%d bytes after the last entry", d.rest())
	}
	return nil
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
