package statebackend

import (
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// TTL configures state time-to-live (processing time, as in Flink).
type TTL struct {
	// TTL is how long a value lives after it was written (or read, with
	// UpdateOnRead). Zero disables TTL.
	TTLMillis int64
	// UpdateOnRead also refreshes the expiry when the value is read.
	UpdateOnRead bool
	// ReturnExpired returns expired values not yet cleaned up instead of
	// hiding them.
	ReturnExpired bool
}

type cell[V any] struct {
	v   V
	exp int64 // expiry in epoch ms; 0 = never
}

// ttlTable wraps a table of cells with expiry bookkeeping.
type ttlTable[K comparable, V any] struct {
	b   *Keyed[K]
	t   *Table[K, cell[V]]
	ttl TTL
	// vc encodes the stored value in snapshots (snapshot_states.go).
	vc lazyCodec[V]
	// anyExp is set once a cell with an expiry was stored, so snapshots of
	// state without TTL write no expiries.
	anyExp bool
	tag    string
}

func newTTLTable[K comparable, V any](b *Keyed[K], ttl TTL, kind string, types ...reflect.Type) ttlTable[K, V] {
	return ttlTable[K, V]{
		b: b, t: NewTable[K, cell[V]](b.rng.Len()), ttl: ttl, anyExp: ttl.TTLMillis > 0,
		vc:  lazyCodec[V]{what: "value"},
		tag: typeTag(kind, append([]reflect.Type{reflect.TypeFor[K]()}, types...)...),
	}
}

// StateType implements Snapshotter.
func (s *ttlTable[K, V]) StateType() string { return s.tag }

func (s *ttlTable[K, V]) get() (V, bool) {
	c, ok := s.t.maps[s.b.kgIdx][s.b.key]
	if !ok {
		var zero V
		return zero, false
	}
	if c.exp != 0 {
		now := s.b.Now()
		if now >= c.exp {
			if !s.ttl.ReturnExpired {
				delete(s.t.maps[s.b.kgIdx], s.b.key)
				var zero V
				return zero, false
			}
		} else if s.ttl.UpdateOnRead {
			c.exp = now + s.ttl.TTLMillis
			s.t.maps[s.b.kgIdx][s.b.key] = c
		}
	}
	return c.v, true
}

func (s *ttlTable[K, V]) put(v V) {
	c := cell[V]{v: v}
	if s.ttl.TTLMillis > 0 {
		c.exp = s.b.Now() + s.ttl.TTLMillis
	}
	s.t.maps[s.b.kgIdx][s.b.key] = c
}

func (s *ttlTable[K, V]) clear() { delete(s.t.maps[s.b.kgIdx], s.b.key) }

// Table exposes the underlying table (snapshots, tests).
func (s *ttlTable[K, V]) Entries() int { return s.t.Len() }

// Value is ValueState for the current key.
type Value[K comparable, V any] struct{ ttlTable[K, V] }

// NewValue returns a value state on b.
func NewValue[K comparable, V any](b *Keyed[K], ttl TTL) *Value[K, V] {
	return &Value[K, V]{newTTLTable[K, V](b, ttl, "value", reflect.TypeFor[V]())}
}

// SetCodec sets the codec of the values in snapshots (nil: codec.For[V]).
// Set it before registering the state.
func (s *Value[K, V]) SetCodec(c codec.Codec[V]) { s.vc.set(c) }

func (s *Value[K, V]) Value() (V, bool) { return s.get() }
func (s *Value[K, V]) Update(v V)       { s.put(v) }
func (s *Value[K, V]) Clear()           { s.clear() }

// List is ListState for the current key.
type List[K comparable, V any] struct{ ttlTable[K, []V] }

// NewList returns a list state on b.
func NewList[K comparable, V any](b *Keyed[K], ttl TTL) *List[K, V] {
	l := &List[K, V]{newTTLTable[K, []V](b, ttl, "list", reflect.TypeFor[V]())}
	l.SetCodec(nil)
	return l
}

// SetCodec sets the codec of the list elements in snapshots (nil:
// codec.For[V]). Set it before registering the state.
func (s *List[K, V]) SetCodec(c codec.Codec[V]) {
	s.vc.setMake(func() (codec.Codec[[]V], error) {
		e := lazyCodec[V]{override: c, what: "list element"}
		ec, err := e.get()
		if err != nil {
			return nil, err
		}
		return listCodec[V]{elem: ec, min: e.min}, nil
	})
}

func (s *List[K, V]) Get() []V {
	v, _ := s.get()
	return v
}

func (s *List[K, V]) Add(v V) {
	l, _ := s.get()
	s.put(append(l, v))
}

func (s *List[K, V]) AddAll(vs []V) {
	l, _ := s.get()
	s.put(append(l, vs...))
}

func (s *List[K, V]) Update(vs []V) {
	if len(vs) == 0 {
		s.clear()
		return
	}
	s.put(append([]V(nil), vs...))
}

func (s *List[K, V]) Clear() { s.clear() }

// Map is MapState for the current key.
type Map[K, UK comparable, UV any] struct{ ttlTable[K, map[UK]UV] }

// NewMap returns a map state on b.
func NewMap[K, UK comparable, UV any](b *Keyed[K], ttl TTL) *Map[K, UK, UV] {
	m := &Map[K, UK, UV]{newTTLTable[K, map[UK]UV](b, ttl, "map", reflect.TypeFor[UK](), reflect.TypeFor[UV]())}
	m.SetCodecs(nil, nil)
	return m
}

// SetCodecs sets the codecs of the map keys and values in snapshots (nil:
// codec.For of the type). Set them before registering the state.
func (s *Map[K, UK, UV]) SetCodecs(kc codec.Codec[UK], vc codec.Codec[UV]) {
	s.vc.setMake(func() (codec.Codec[map[UK]UV], error) {
		k := lazyCodec[UK]{override: kc, what: "map key"}
		v := lazyCodec[UV]{override: vc, what: "map value"}
		kcc, err := k.get()
		if err != nil {
			return nil, err
		}
		vcc, err := v.get()
		if err != nil {
			return nil, err
		}
		return mapCodec[UK, UV]{k: kcc, v: vcc, min: max(k.min, v.min)}, nil
	})
}

func (s *Map[K, UK, UV]) Get(uk UK) (UV, bool) {
	m, _ := s.get()
	v, ok := m[uk]
	return v, ok
}

func (s *Map[K, UK, UV]) Put(uk UK, uv UV) {
	m, ok := s.get()
	if !ok || m == nil {
		m = map[UK]UV{}
	}
	m[uk] = uv
	s.put(m)
}

func (s *Map[K, UK, UV]) Remove(uk UK) {
	m, ok := s.get()
	if !ok {
		return
	}
	delete(m, uk)
	if len(m) == 0 {
		s.clear()
	}
}

func (s *Map[K, UK, UV]) Contains(uk UK) bool {
	_, ok := s.Get(uk)
	return ok
}

// Entries returns the current key's map (read-only for callers).
func (s *Map[K, UK, UV]) Entries() map[UK]UV {
	m, _ := s.get()
	return m
}

func (s *Map[K, UK, UV]) IsEmpty() bool {
	m, _ := s.get()
	return len(m) == 0
}

func (s *Map[K, UK, UV]) Clear() { s.clear() }

// Reducing is ReducingState: Add folds the value into the stored one.
type Reducing[K comparable, V any] struct {
	ttlTable[K, V]
	reduce func(a, b V) V
}

// NewReducing returns a reducing state on b.
func NewReducing[K comparable, V any](b *Keyed[K], ttl TTL, reduce func(a, b V) V) *Reducing[K, V] {
	return &Reducing[K, V]{newTTLTable[K, V](b, ttl, "reducing", reflect.TypeFor[V]()), reduce}
}

// SetCodec sets the codec of the values in snapshots (nil: codec.For[V]).
// Set it before registering the state.
func (s *Reducing[K, V]) SetCodec(c codec.Codec[V]) { s.vc.set(c) }

func (s *Reducing[K, V]) Get() (V, bool) { return s.get() }

func (s *Reducing[K, V]) Add(v V) {
	if old, ok := s.get(); ok {
		v = s.reduce(old, v)
	}
	s.put(v)
}

func (s *Reducing[K, V]) Clear() { s.clear() }

// Aggregating is AggregatingState: inputs are added to an accumulator and the
// result is derived from it.
type Aggregating[K comparable, IN, ACC, OUT any] struct {
	ttlTable[K, ACC]
	create func() ACC
	add    func(ACC, IN) ACC
	result func(ACC) OUT
}

// NewAggregating returns an aggregating state on b.
func NewAggregating[K comparable, IN, ACC, OUT any](b *Keyed[K], ttl TTL, create func() ACC, add func(ACC, IN) ACC, result func(ACC) OUT) *Aggregating[K, IN, ACC, OUT] {
	a := &Aggregating[K, IN, ACC, OUT]{newTTLTable[K, ACC](b, ttl, "aggregating", reflect.TypeFor[ACC]()), create, add, result}
	a.vc.what = "accumulator"
	return a
}

// SetCodec sets the codec of the accumulators in snapshots (nil:
// codec.For[ACC]). Set it before registering the state.
func (s *Aggregating[K, IN, ACC, OUT]) SetCodec(c codec.Codec[ACC]) { s.vc.set(c) }

func (s *Aggregating[K, IN, ACC, OUT]) Get() (OUT, bool) {
	acc, ok := s.get()
	if !ok {
		var zero OUT
		return zero, false
	}
	return s.result(acc), true
}

func (s *Aggregating[K, IN, ACC, OUT]) Add(v IN) {
	acc, ok := s.get()
	if !ok {
		acc = s.create()
	}
	s.put(s.add(acc, v))
}

func (s *Aggregating[K, IN, ACC, OUT]) Clear() { s.clear() }
