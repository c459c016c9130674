package statebackend

import (
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// TTL configures state time-to-live (processing time, as in Flink). Value,
// Reducing and Aggregating state expire per key (one cell); List and Map
// state per element and entry (collections.go). state.TTL documents the
// semantics.
type TTL struct {
	// TTL is how long a value, list element or map entry lives after it
	// was written (or read, with UpdateOnRead). Zero disables TTL.
	TTLMillis int64
	// UpdateOnRead also refreshes the expiry when it is read.
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
				s.t.Delete(s.b.kgIdx, s.b.key)
				var zero V
				return zero, false
			}
		} else if s.ttl.UpdateOnRead {
			c.exp = now + s.ttl.TTLMillis
			s.t.Put(s.b.kgIdx, s.b.key, c)
		}
	}
	return c.v, true
}

func (s *ttlTable[K, V]) put(v V) {
	c := cell[V]{v: v}
	if s.ttl.TTLMillis > 0 {
		c.exp = s.b.Now() + s.ttl.TTLMillis
	}
	s.t.Put(s.b.kgIdx, s.b.key, c)
}

func (s *ttlTable[K, V]) clear() { s.t.Delete(s.b.kgIdx, s.b.key) }

// Entries is the number of keys with a cell, over all key groups.
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
