package statebackend

import (
	"math"
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// List and Map state keep two representations of a key's collection:
//
//   - plain: a []V or map[UK]UV, for state without TTL, which so pays
//     nothing for TTL (no per-element expiry, no clock reads);
//   - timed: the same with an expiry per element or entry (timedList,
//     timedMap), for state with TTL.
//
// A state is timed from the start when its TTL is set. A state without TTL
// becomes timed when restored data carries expiries (it was snapshotted
// with a TTL): the restored elements keep expiring when they would have, as
// Value cells do; what is written afterwards never expires.
//
// Expired elements and entries are cleaned up lazily, without background
// work:
//
//   - reads without ReturnExpired: List.Get drops the list's expired
//     elements; Map.Get and Contains the entry read if it expired;
//     Map.Entries the map's expired entries; Map.IsEmpty the map if all its
//     entries expired;
//   - writes, also with ReturnExpired: List.Add and AddAll drop the list's
//     expired elements (those at its front, cheaply, as elements are added
//     in time order); Map.Put sweeps the map's expired entries once there
//     have been as many puts as half the map's size since the last sweep,
//     which keeps a map within about twice its live entries;
//   - snapshots drop every expired element and entry of their key group
//     from memory and do not write them.
//
// A key's collection left with no elements is removed.

// neverExpires is the expiry of an element that does not expire (on disk
// it is written as 0).
const neverExpires = math.MaxInt64

// expiryAt is the expiry of an element written or read at now.
func expiryAt(ttl TTL, now int64) int64 {
	if ttl.TTLMillis <= 0 {
		return neverExpires
	}
	if e := now + ttl.TTLMillis; e > now {
		return e
	}
	return neverExpires
}

// timedList is a list with an expiry per element.
type timedList[V any] struct {
	vals []V     // handed out by Get: never modified in place, only appended to
	exps []int64 // exps[i] is the expiry of vals[i] (epoch ms)
	// next is at most the earliest expiry in exps: no element has expired
	// before it (neverExpires: none ever does).
	next int64
	// sorted: exps is non-decreasing, so the expired elements are a prefix.
	// Elements are appended with the current time, so this holds unless the
	// clock went back or restored elements that never expire come first.
	sorted bool
}

func newTimedList[V any](vals []V, exp int64) *timedList[V] {
	exps := make([]int64, len(vals))
	for i := range exps {
		exps[i] = exp
	}
	return &timedList[V]{vals: vals, exps: exps, next: exp, sorted: true}
}

func (l *timedList[V]) push(v V, exp int64) {
	if n := len(l.exps); n > 0 && exp < l.exps[n-1] {
		l.sorted = false
	}
	l.vals = append(l.vals, v)
	l.exps = append(l.exps, exp)
	l.next = min(l.next, exp)
}

// expire drops the elements expired at now.
func (l *timedList[V]) expire(now int64) {
	if now < l.next {
		return
	}
	if l.sorted {
		i := 0
		for i < len(l.exps) && l.exps[i] <= now {
			i++
		}
		// Reslicing keeps the slices Get handed out intact; the dropped
		// prefix is freed when an append reallocates.
		l.vals, l.exps = l.vals[i:], l.exps[i:]
		l.next = neverExpires
		if len(l.exps) > 0 {
			l.next = l.exps[0]
		}
		return
	}
	live := 0
	for _, e := range l.exps {
		if e > now {
			live++
		}
	}
	vals, exps := l.vals, l.exps
	if live < len(exps) {
		// Copies, so that slices Get handed out stay as they were.
		vals, exps = make([]V, 0, live), make([]int64, 0, live)
		for i, e := range l.exps {
			if e > now {
				vals = append(vals, l.vals[i])
				exps = append(exps, e)
			}
		}
	}
	l.vals, l.exps = vals, exps
	l.reindex()
}

// reindex recomputes next and sorted.
func (l *timedList[V]) reindex() {
	l.next, l.sorted = neverExpires, true
	for i, e := range l.exps {
		l.next = min(l.next, e)
		if i > 0 && e < l.exps[i-1] {
			l.sorted = false
		}
	}
}

// touch gives the elements alive at now the expiry exp (UpdateOnRead).
func (l *timedList[V]) touch(now, exp int64) {
	next := int64(neverExpires)
	for i, e := range l.exps {
		if e > now && e != neverExpires {
			l.exps[i] = exp
		}
		next = min(next, l.exps[i])
	}
	l.next = next
	// Still sorted if it was: the expired ones (kept with ReturnExpired)
	// come first and are ≤ now < exp, those that never expire come last.
}

// List is ListState for the current key. See the top of this file for how
// its elements expire.
type List[K comparable, V any] struct {
	b     *Keyed[K]
	ttl   TTL
	timed bool
	plain []map[K][]V           // per key-group index, when !timed
	tl    []map[K]*timedList[V] // per key-group index, when timed
	ec    lazyCodec[V]          // elements, in snapshots
	tag   string
}

// NewList returns a list state on b.
func NewList[K comparable, V any](b *Keyed[K], ttl TTL) *List[K, V] {
	l := &List[K, V]{
		b: b, ttl: ttl,
		ec:  lazyCodec[V]{what: "list element"},
		tag: typeTag("list", reflect.TypeFor[K](), reflect.TypeFor[V]()),
	}
	if ttl.TTLMillis > 0 {
		l.makeTimed()
	} else {
		l.plain = make([]map[K][]V, b.rng.Len())
		for i := range l.plain {
			l.plain[i] = map[K][]V{}
		}
	}
	return l
}

// makeTimed switches the state to the timed representation; the elements
// it has never expire.
func (s *List[K, V]) makeTimed() {
	s.tl = make([]map[K]*timedList[V], s.b.rng.Len())
	for i := range s.tl {
		s.tl[i] = map[K]*timedList[V]{}
		if s.plain != nil {
			for k, vs := range s.plain[i] {
				s.tl[i][k] = newTimedList(vs, neverExpires)
			}
		}
	}
	s.plain, s.timed = nil, true
}

// SetCodec sets the codec of the list elements in snapshots (nil:
// codec.For[V]). Set it before registering the state.
func (s *List[K, V]) SetCodec(c codec.Codec[V]) { s.ec.set(c) }

// StateType implements Snapshotter.
func (s *List[K, V]) StateType() string { return s.tag }

// Entries is the number of keys with a (non-empty) list, over all key
// groups, expired ones not cleaned up yet included.
func (s *List[K, V]) Entries() int {
	n := 0
	for i := range s.b.rng.Len() {
		if s.timed {
			n += len(s.tl[i])
		} else {
			n += len(s.plain[i])
		}
	}
	return n
}

// timedGet returns the current key's list with its expired elements
// dropped (unless ReturnExpired), or nil.
func (s *List[K, V]) timedGet(now int64) *timedList[V] {
	m := s.tl[s.b.kgIdx]
	l := m[s.b.key]
	if l != nil && !s.ttl.ReturnExpired && now >= l.next {
		l.expire(now)
		if len(l.vals) == 0 {
			delete(m, s.b.key)
			return nil
		}
	}
	return l
}

func (s *List[K, V]) Get() []V {
	if !s.timed {
		return s.plain[s.b.kgIdx][s.b.key]
	}
	now := s.b.Now()
	l := s.timedGet(now)
	if l == nil {
		return nil
	}
	if s.ttl.UpdateOnRead && s.ttl.TTLMillis > 0 {
		l.touch(now, expiryAt(s.ttl, now))
	}
	return l.vals
}

// timedAdd returns the list to append to at now, with its expired elements
// dropped (also with ReturnExpired: writes clean up).
func (s *List[K, V]) timedAdd(now int64) *timedList[V] {
	m := s.tl[s.b.kgIdx]
	l := m[s.b.key]
	if l == nil {
		l = &timedList[V]{next: neverExpires, sorted: true}
		m[s.b.key] = l
	} else {
		l.expire(now)
	}
	return l
}

func (s *List[K, V]) Add(v V) {
	if !s.timed {
		m := s.plain[s.b.kgIdx]
		m[s.b.key] = append(m[s.b.key], v)
		return
	}
	now := s.b.Now()
	s.timedAdd(now).push(v, expiryAt(s.ttl, now))
}

func (s *List[K, V]) AddAll(vs []V) {
	if len(vs) == 0 {
		return
	}
	if !s.timed {
		m := s.plain[s.b.kgIdx]
		m[s.b.key] = append(m[s.b.key], vs...)
		return
	}
	now := s.b.Now()
	l, exp := s.timedAdd(now), expiryAt(s.ttl, now)
	for _, v := range vs {
		l.push(v, exp)
	}
}

func (s *List[K, V]) Update(vs []V) {
	if len(vs) == 0 {
		s.Clear()
		return
	}
	vs = append([]V(nil), vs...)
	if !s.timed {
		s.plain[s.b.kgIdx][s.b.key] = vs
		return
	}
	s.tl[s.b.kgIdx][s.b.key] = newTimedList(vs, expiryAt(s.ttl, s.b.Now()))
}

func (s *List[K, V]) Clear() {
	if !s.timed {
		delete(s.plain[s.b.kgIdx], s.b.key)
		return
	}
	delete(s.tl[s.b.kgIdx], s.b.key)
}

// timedMap is a map with an expiry per entry.
type timedMap[UK comparable, UV any] struct {
	vals map[UK]UV    // handed out by Entries
	exps map[UK]int64 // the same keys; the expiry of each entry (epoch ms)
	// next is at most the earliest expiry in exps (neverExpires: no entry
	// ever expires).
	next int64
	// writes counts Puts since the last sweep.
	writes int
}

// expire drops the entries expired at now.
func (t *timedMap[UK, UV]) expire(now int64) {
	t.writes = 0
	if now < t.next {
		return
	}
	t.next = neverExpires
	for k, e := range t.exps {
		if e <= now {
			delete(t.exps, k)
			delete(t.vals, k)
		} else {
			t.next = min(t.next, e)
		}
	}
}

// Map is MapState for the current key. See the top of this file for how
// its entries expire.
type Map[K, UK comparable, UV any] struct {
	b     *Keyed[K]
	ttl   TTL
	timed bool
	plain []map[K]map[UK]UV         // per key-group index, when !timed
	tm    []map[K]*timedMap[UK, UV] // per key-group index, when timed
	kc    lazyCodec[UK]             // map keys, in snapshots
	vc    lazyCodec[UV]             // map values, in snapshots
	tag   string
}

// NewMap returns a map state on b.
func NewMap[K, UK comparable, UV any](b *Keyed[K], ttl TTL) *Map[K, UK, UV] {
	m := &Map[K, UK, UV]{
		b: b, ttl: ttl,
		kc:  lazyCodec[UK]{what: "map key"},
		vc:  lazyCodec[UV]{what: "map value"},
		tag: typeTag("map", reflect.TypeFor[K](), reflect.TypeFor[UK](), reflect.TypeFor[UV]()),
	}
	if ttl.TTLMillis > 0 {
		m.makeTimed()
	} else {
		m.plain = make([]map[K]map[UK]UV, b.rng.Len())
		for i := range m.plain {
			m.plain[i] = map[K]map[UK]UV{}
		}
	}
	return m
}

// makeTimed switches the state to the timed representation; the entries it
// has never expire.
func (s *Map[K, UK, UV]) makeTimed() {
	s.tm = make([]map[K]*timedMap[UK, UV], s.b.rng.Len())
	for i := range s.tm {
		s.tm[i] = map[K]*timedMap[UK, UV]{}
		if s.plain != nil {
			for k, vals := range s.plain[i] {
				exps := make(map[UK]int64, len(vals))
				for uk := range vals {
					exps[uk] = neverExpires
				}
				s.tm[i][k] = &timedMap[UK, UV]{vals: vals, exps: exps, next: neverExpires}
			}
		}
	}
	s.plain, s.timed = nil, true
}

// SetCodecs sets the codecs of the map keys and values in snapshots (nil:
// codec.For of the type). Set them before registering the state.
func (s *Map[K, UK, UV]) SetCodecs(kc codec.Codec[UK], vc codec.Codec[UV]) {
	s.kc.set(kc)
	s.vc.set(vc)
}

// StateType implements Snapshotter.
func (s *Map[K, UK, UV]) StateType() string { return s.tag }

// NumKeys is the number of keys with a (non-empty) map, over all key
// groups, expired ones not cleaned up yet included.
func (s *Map[K, UK, UV]) NumKeys() int {
	n := 0
	for i := range s.b.rng.Len() {
		if s.timed {
			n += len(s.tm[i])
		} else {
			n += len(s.plain[i])
		}
	}
	return n
}

// remove deletes entry uk of the current key's map t.
func (s *Map[K, UK, UV]) remove(t *timedMap[UK, UV], uk UK) {
	delete(t.vals, uk)
	delete(t.exps, uk)
	if len(t.vals) == 0 {
		delete(s.tm[s.b.kgIdx], s.b.key)
	}
}

func (s *Map[K, UK, UV]) Get(uk UK) (UV, bool) {
	if !s.timed {
		v, ok := s.plain[s.b.kgIdx][s.b.key][uk]
		return v, ok
	}
	t := s.tm[s.b.kgIdx][s.b.key]
	if t == nil {
		var zero UV
		return zero, false
	}
	v, ok := t.vals[uk]
	if !ok {
		return v, false
	}
	now := s.b.Now()
	if now < t.next && !s.ttl.UpdateOnRead {
		return v, true
	}
	e := t.exps[uk]
	if e <= now {
		if !s.ttl.ReturnExpired {
			s.remove(t, uk)
			var zero UV
			return zero, false
		}
		return v, true // expired entries are not refreshed
	}
	if s.ttl.UpdateOnRead && s.ttl.TTLMillis > 0 && e != neverExpires {
		e = expiryAt(s.ttl, now)
		t.exps[uk] = e
		t.next = min(t.next, e)
	}
	return v, true
}

func (s *Map[K, UK, UV]) Put(uk UK, uv UV) {
	if !s.timed {
		m := s.plain[s.b.kgIdx]
		um := m[s.b.key]
		if um == nil {
			um = map[UK]UV{}
			m[s.b.key] = um
		}
		um[uk] = uv
		return
	}
	now := s.b.Now()
	m := s.tm[s.b.kgIdx]
	t := m[s.b.key]
	if t == nil {
		t = &timedMap[UK, UV]{vals: map[UK]UV{}, exps: map[UK]int64{}, next: neverExpires}
		m[s.b.key] = t
	} else if now >= t.next && t.writes >= len(t.vals)/2 {
		// Sweeping costs the map's size, paid for by as many writes.
		t.expire(now)
	}
	e := expiryAt(s.ttl, now)
	t.vals[uk] = uv
	t.exps[uk] = e
	t.next = min(t.next, e)
	t.writes++
}

func (s *Map[K, UK, UV]) Remove(uk UK) {
	if !s.timed {
		m := s.plain[s.b.kgIdx]
		um, ok := m[s.b.key]
		if !ok {
			return
		}
		delete(um, uk)
		if len(um) == 0 {
			delete(m, s.b.key)
		}
		return
	}
	if t := s.tm[s.b.kgIdx][s.b.key]; t != nil {
		s.remove(t, uk)
	}
}

// Contains reports whether the map has uk (a read: with UpdateOnRead it
// refreshes the entry).
func (s *Map[K, UK, UV]) Contains(uk UK) bool {
	_, ok := s.Get(uk)
	return ok
}

// Entries returns the current key's map (read-only for callers).
func (s *Map[K, UK, UV]) Entries() map[UK]UV {
	if !s.timed {
		return s.plain[s.b.kgIdx][s.b.key]
	}
	m := s.tm[s.b.kgIdx]
	t := m[s.b.key]
	if t == nil {
		return nil
	}
	now := s.b.Now()
	if !s.ttl.ReturnExpired && now >= t.next {
		t.expire(now)
		if len(t.vals) == 0 {
			delete(m, s.b.key)
			return nil
		}
	}
	if s.ttl.UpdateOnRead && s.ttl.TTLMillis > 0 {
		exp, next := expiryAt(s.ttl, now), int64(neverExpires)
		for k, e := range t.exps {
			if e > now && e != neverExpires {
				e = exp
				t.exps[k] = e
			}
			next = min(next, e)
		}
		t.next = next
	}
	return t.vals
}

// IsEmpty reports whether the current key's map has no entries that have
// not expired (with ReturnExpired: no entries). It reads no entry, so it
// refreshes none.
func (s *Map[K, UK, UV]) IsEmpty() bool {
	if !s.timed {
		return len(s.plain[s.b.kgIdx][s.b.key]) == 0
	}
	m := s.tm[s.b.kgIdx]
	t := m[s.b.key]
	if t == nil {
		return true
	}
	if s.ttl.ReturnExpired {
		return false
	}
	now := s.b.Now()
	if now < t.next {
		return false
	}
	for _, e := range t.exps {
		if e > now {
			return false
		}
	}
	delete(m, s.b.key) // every entry expired
	return true
}

func (s *Map[K, UK, UV]) Clear() {
	if !s.timed {
		delete(s.plain[s.b.kgIdx], s.b.key)
		return
	}
	delete(s.tm[s.b.kgIdx], s.b.key)
}
