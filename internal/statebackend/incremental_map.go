package statebackend

import (
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
)

// ---- map state ------------------------------------------------------------------
//
// Map state is tracked per user key: a map per key can hold every auction
// of a window (Nexmark q5), so writing each changed key's whole map would
// still write everything. After a base, each Put, Remove and Clear of a
// map without TTL appends an operation to its key group's log (mapLog), with
// the value itself when keys and values hold no references (a copy then
// cannot change under the encoder). A delta's capture swaps the logs; the
// upload goroutine writes the operations in order, and a restore replays
// them. A log that outgrows twice its key group's entries is dropped and the
// key group is copied at the capture (a replace section), as a Table's is.
// Maps with TTL are not tracked: their expiries change on reads.

// Operations of a map delta.
const (
	mapOpPut    = 'P'
	mapOpRemove = 'X'
	mapOpClear  = 'C'
)

// mapChange is one logged operation on key k's map.
type mapChange[K, UK comparable, UV any] struct {
	k  K
	uk UK
	uv UV
	op byte
}

// mapLog is a key group's operations since the chain's last snapshot.
type mapLog[K, UK comparable, UV any] struct {
	ops  []mapChange[K, UK, UV]
	full bool
	// check is the log length at which the key group's entries are
	// counted again to see whether the log outgrew them.
	check int
}

// mapLogFirstCheck is the log length of the first size check: counting a
// key group's entries walks its keys, so it is done at doublings only.
var mapLogFirstCheck = 1024

func (s *Map[K, UK, UV]) touch(op byte, uk UK, uv UV) {
	l := &s.dlog[s.b.kgIdx]
	if l.full {
		return
	}
	l.ops = append(l.ops, mapChange[K, UK, UV]{k: s.b.key, uk: uk, uv: uv, op: op})
	if n := len(l.ops); n >= max(l.check, mapLogFirstCheck) {
		if n > 2*s.kgEntries(s.b.kgIdx) {
			l.ops, l.full = nil, true
			return
		}
		l.check = 2 * n
	}
}

// kgEntries is the number of user entries in key-group index kg.
func (s *Map[K, UK, UV]) kgEntries(kg int) int {
	n := 0
	if s.timed {
		for _, t := range s.tm[kg] {
			n += len(t.vals)
		}
		return n
	}
	for _, um := range s.plain[kg] {
		n += len(um)
	}
	return n
}

// NumEntries implements EntryCounter: user entries, as a snapshot writes
// them (it walks the keys).
func (s *Map[K, UK, UV]) NumEntries() int {
	n := 0
	for kg := range s.b.rng.Len() {
		n += s.kgEntries(kg)
	}
	return n
}

// trackable says whether the map's changes can be logged for deltas.
func (s *Map[K, UK, UV]) trackable() bool {
	return !s.timed && immutableType(reflect.TypeFor[K]()) && immutableType(reflect.TypeFor[UK]()) && immutableType(reflect.TypeFor[UV]())
}

// StartTracking implements DeltaTracker.
func (s *Map[K, UK, UV]) StartTracking() {
	s.tracking = s.trackable()
	s.dlog = nil
	if s.tracking {
		s.dlog = make([]mapLog[K, UK, UV], s.b.rng.Len())
	}
}

// FreezeDelta implements DeltaTracker. Delta data of a key group: uvarint
// n, then n operations in order: op byte, key, and for a put the map key
// and value, for a removal the map key.
func (s *Map[K, UK, UV]) FreezeDelta() (func(kg int, dst []byte) ([]byte, bool, error), bool) {
	if !s.tracking || !s.trackable() {
		return nil, false
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return nil, false
	}
	ukc, err := s.kc.get()
	if err != nil {
		return nil, false
	}
	uvc, err := s.vc.get()
	if err != nil {
		return nil, false
	}
	logs := s.dlog
	s.dlog = make([]mapLog[K, UK, UV], len(logs))
	var whole []map[K]map[UK]UV
	for kg, l := range logs {
		if !l.full {
			continue
		}
		if whole == nil {
			whole = make([]map[K]map[UK]UV, len(logs))
		}
		c := make(map[K]map[UK]UV, len(s.plain[kg]))
		for k, um := range s.plain[kg] {
			c[k] = maps.Clone(um)
		}
		whole[kg] = c
	}
	appendMap := func(dst []byte, um map[UK]UV) []byte {
		dst = binary.AppendUvarint(dst, uint64(len(um)))
		for uk, uv := range um {
			dst = ukc.Append(dst, uk)
			dst = uvc.Append(dst, uv)
		}
		return dst
	}
	return func(kg int, dst []byte) ([]byte, bool, error) {
		if kg < 0 || kg >= len(logs) {
			return dst, false, idxErr(kg, len(logs))
		}
		l := logs[kg]
		if l.full {
			if len(whole[kg]) == 0 {
				return dst, true, nil
			}
			return appendCollections(dst, kc, flagsPlain, whole[kg], appendMap), true, nil
		}
		if len(l.ops) == 0 {
			return dst, false, nil
		}
		dst = binary.AppendUvarint(dst, uint64(len(l.ops)))
		for _, c := range l.ops {
			dst = append(dst, c.op)
			dst = kc.Append(dst, c.k)
			switch c.op {
			case mapOpPut:
				dst = ukc.Append(dst, c.uk)
				dst = uvc.Append(dst, c.uv)
			case mapOpRemove:
				dst = ukc.Append(dst, c.uk)
			}
		}
		return dst, false, nil
	}, true
}

// ApplyDelta implements DeltaTracker: the operations are replayed in order
// (a map with TTL gets entries that never expire, as the state they were
// taken of had no TTL).
func (s *Map[K, UK, UV]) ApplyDelta(kg int, src []byte) error {
	if kg < 0 || kg >= s.b.rng.Len() {
		return idxErr(kg, s.b.rng.Len())
	}
	kc, err := s.b.KeyCodec()
	if err != nil {
		return err
	}
	ukc, err := s.kc.get()
	if err != nil {
		return err
	}
	uvc, err := s.vc.get()
	if err != nil {
		return err
	}
	d := decoder{b: src}
	n, err := d.count(2) // an op byte and a key at least
	if err != nil {
		return fmt.Errorf("map delta: operation count: %w", err)
	}
	for i := range n {
		op, err := d.byte()
		if err != nil {
			return fmt.Errorf("map delta: operation %d: %w", i, err)
		}
		k, err := decodeWith(&d, kc)
		if err != nil {
			return fmt.Errorf("map delta: operation %d key: %w", i, err)
		}
		switch op {
		case mapOpPut:
			uk, err := decodeWith(&d, ukc)
			if err != nil {
				return fmt.Errorf("map delta: operation %d map key: %w", i, err)
			}
			uv, err := decodeWith(&d, uvc)
			if err != nil {
				return fmt.Errorf("map delta: operation %d value: %w", i, err)
			}
			s.restorePut(kg, k, uk, uv)
		case mapOpRemove:
			uk, err := decodeWith(&d, ukc)
			if err != nil {
				return fmt.Errorf("map delta: operation %d map key: %w", i, err)
			}
			s.restoreRemove(kg, k, uk)
		case mapOpClear:
			s.clearKey(kg, k)
		default:
			return corruptf("map delta: operation %d: unknown kind %#x", i, op)
		}
	}
	if d.rest() != 0 {
		return corruptf("map delta: %d bytes after the operations", d.rest())
	}
	return nil
}

func (s *Map[K, UK, UV]) restorePut(kg int, k K, uk UK, uv UV) {
	if !s.timed {
		um := s.plain[kg][k]
		if um == nil {
			um = map[UK]UV{}
			s.plain[kg][k] = um
		}
		um[uk] = uv
		return
	}
	t := s.tm[kg][k]
	if t == nil {
		t = &timedMap[UK, UV]{vals: map[UK]UV{}, exps: map[UK]int64{}, next: neverExpires}
		s.tm[kg][k] = t
	}
	t.vals[uk] = uv
	t.exps[uk] = neverExpires
}

func (s *Map[K, UK, UV]) restoreRemove(kg int, k K, uk UK) {
	if !s.timed {
		if um, ok := s.plain[kg][k]; ok {
			delete(um, uk)
			if len(um) == 0 {
				delete(s.plain[kg], k)
			}
		}
		return
	}
	if t := s.tm[kg][k]; t != nil {
		delete(t.vals, uk)
		delete(t.exps, uk)
		if len(t.vals) == 0 {
			delete(s.tm[kg], k)
		}
	}
}
