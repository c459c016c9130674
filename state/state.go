// Package state declares keyed state: values, lists, maps, reducing and
// aggregating state scoped to the current key of a keyed operator.
//
// State is declared with a descriptor (a name, unique within the operator,
// plus optional codec and TTL) and obtained from the operator's context:
//
//	var countDesc = state.ValueDescriptor[int64]{Name: "count"}
//
//	func (f *counter) ProcessElement(ctx *strom.KeyedContext[string, Out], v In) error {
//		count, err := state.GetValue(ctx, countDesc)
//		...
//		n, _ := count.Value()
//		count.Update(n + 1)
//	}
//
// Getting the same descriptor again returns the same state, so a function
// may get its state once in Open or on every call. State lives in the
// subtask's keyed state backend, sharded by key group, which is what
// checkpoints snapshot and what rescaling redistributes.
//
// Snapshots encode keys and values with codec.Of of their types unless the
// descriptor sets a Codec. A type the default codec cannot handle (one with
// func, chan or interface fields) works as state but makes snapshots fail
// with an error naming the state and the type; a struct type with
// unexported fields, which the default codec would silently leave out, is
// refused when the state is declared. Set a Codec (codec.JSON, codec.CBOR,
// or your own) for such types.
//
// Operator state (GetOperatorList, GetUnionList) is state of a non-keyed
// operator subtask: see OperatorStore.
package state

import (
	"fmt"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Scope is where keyed state lives: the context of a keyed function
// (strom.KeyedContext, and the contexts of window functions). State got
// through a Scope is that of the current key.
type Scope[K comparable] interface {
	// Key is the current key.
	Key() K
	// KeyedStateStore is the operator's keyed state.
	KeyedStateStore() *Store
}

// Store is the keyed state of one operator subtask. It is opaque: reach
// its states through GetValue, GetList, GetMap, GetReducing and
// GetAggregating.
type Store struct {
	backend any // *statebackend.Keyed[K]
}

func init() {
	statebackend.WrapStore = func(b any) any { return &Store{backend: b} }
}

// TTL expires state a while after it was written (processing time, as in
// Flink's StateTtlConfig with OnCreateAndWrite and NeverReturnExpired by
// default).
//
// What expires is what is written: the value of a ValueState,
// ReducingState or AggregatingState (per key), and each element of a
// ListState and each entry of a MapState on its own. Each carries its own
// expiry, the time it was last written plus TTL:
//
//   - ValueState.Update, ReducingState.Add and AggregatingState.Add write
//     the key's value;
//   - ListState.Add and AddAll write the elements they append (the list's
//     other elements keep their expiry); Update writes every element of the
//     new list;
//   - MapState.Put writes the entry it puts (the other entries keep
//     theirs).
//
// With UpdateOnRead a read refreshes the expiry of what it reads, if it has
// not expired: ValueState.Value, ReducingState.Get and AggregatingState.Get
// the key's value; ListState.Get every element; MapState.Get and Contains
// the entry read; MapState.Entries every entry (IsEmpty reads no entry and
// refreshes none).
//
// An expired value, element or entry is not returned: Get, Contains,
// Entries and IsEmpty skip it, and a list or map whose elements all
// expired is empty. ReturnExpired returns it instead as long as it has not
// been cleaned up (and UpdateOnRead does not refresh it).
//
// Cleanup is lazy, with no background work. A read without ReturnExpired
// removes what it finds expired: the value; the list's expired elements;
// the map entry read (Get, Contains), or the map's expired entries
// (Entries, IsEmpty when all expired). Writes remove too: a value is
// overwritten, ListState writes drop the list's expired elements, and
// MapState.Put sweeps the map's expired entries once it has had as many
// puts as half its size since the last sweep. A snapshot drops every
// expired list element and map entry of every key, from memory too, and
// does not write them; an expired value not cleaned up yet is written and
// expires after a restore as it would have. A key's list or map with no
// elements left is removed.
//
// Snapshots keep each value's, element's and entry's absolute expiry. If a
// state's TTL changes across a restore, restored data written with a TTL
// still expires when it would have and restored data written without one
// never expires; what is written after the restore follows the new TTL.
type TTL struct {
	// TTL is the time to live; zero disables expiry. State without TTL
	// reads no clock, and list and map state without TTL store no
	// expiries.
	TTL time.Duration
	// UpdateOnRead refreshes the expiry on reads too (OnReadAndWrite).
	UpdateOnRead bool
	// ReturnExpired returns expired values, elements and entries that have
	// not been cleaned up yet (ReturnExpiredIfNotCleanedUp).
	ReturnExpired bool
}

func (t TTL) internal() statebackend.TTL {
	return statebackend.TTL{TTLMillis: t.TTL.Milliseconds(), UpdateOnRead: t.UpdateOnRead, ReturnExpired: t.ReturnExpired}
}

// ValueState holds one value per key.
type ValueState[V any] interface {
	// Value returns the value and whether one is set.
	Value() (V, bool)
	Update(v V)
	Clear()
}

// ListState holds a list per key. With a TTL each element expires on its
// own, TTL after it was added (see TTL).
type ListState[V any] interface {
	// Get returns the list (nil when empty), without its expired elements,
	// in the order they were added; callers must not modify it. With
	// UpdateOnRead it refreshes every element returned.
	Get() []V
	// Add appends v, which expires TTL from now.
	Add(v V)
	// AddAll appends vs, which expire TTL from now.
	AddAll(vs []V)
	// Update replaces the list with a copy of vs (an empty vs clears it);
	// every element expires TTL from now.
	Update(vs []V)
	Clear()
}

// MapState holds a map per key. With a TTL each entry expires on its own,
// TTL after it was last put (see TTL).
type MapState[UK comparable, UV any] interface {
	// Get returns the value of k, if k has an entry that has not expired.
	// With UpdateOnRead it refreshes that entry.
	Get(k UK) (UV, bool)
	// Put sets the value of k; the entry expires TTL from now.
	Put(k UK, v UV)
	Remove(k UK)
	// Contains reports whether k has an entry that has not expired (a read,
	// as Get).
	Contains(k UK) bool
	// Entries returns the key's map without expired entries (nil when
	// empty); callers must not modify it. With UpdateOnRead it refreshes
	// every entry.
	Entries() map[UK]UV
	// IsEmpty reports whether every entry (if any) expired; it refreshes
	// none.
	IsEmpty() bool
	Clear()
}

// ReducingState folds added values into one with a reduce function.
type ReducingState[V any] interface {
	Get() (V, bool)
	Add(v V)
	Clear()
}

// AggregatingState adds inputs to an accumulator and reads a result.
type AggregatingState[IN, OUT any] interface {
	Get() (OUT, bool)
	Add(v IN)
	Clear()
}

// ValueDescriptor declares a ValueState.
type ValueDescriptor[V any] struct {
	Name string
	TTL  TTL
	// Codec encodes the values in snapshots; nil means codec.Of[V]().
	Codec codec.Codec[V]
}

// ListDescriptor declares a ListState.
type ListDescriptor[V any] struct {
	Name string
	TTL  TTL
	// Codec encodes the list elements in snapshots; nil means codec.Of[V]().
	Codec codec.Codec[V]
}

// MapDescriptor declares a MapState.
type MapDescriptor[UK comparable, UV any] struct {
	Name string
	TTL  TTL
	// KeyCodec encodes the map keys in snapshots; nil means codec.Of[UK]().
	KeyCodec codec.Codec[UK]
	// Codec encodes the map values in snapshots; nil means codec.Of[UV]().
	Codec codec.Codec[UV]
}

// ReducingDescriptor declares a ReducingState.
type ReducingDescriptor[V any] struct {
	Name   string
	Reduce func(a, b V) V
	TTL    TTL
	// Codec encodes the values in snapshots; nil means codec.Of[V]().
	Codec codec.Codec[V]
}

// Aggregator is an incremental aggregation: values are added to an
// accumulator, which yields the result (Flink's AggregateFunction).
type Aggregator[IN, ACC, OUT any] struct {
	Create func() ACC
	Add    func(acc ACC, v IN) ACC
	Result func(acc ACC) OUT
	// Merge combines two accumulators (needed by merging windows).
	Merge func(a, b ACC) ACC
}

// AggregatingDescriptor declares an AggregatingState.
type AggregatingDescriptor[IN, ACC, OUT any] struct {
	Name string
	Agg  Aggregator[IN, ACC, OUT]
	TTL  TTL
	// Codec encodes the accumulators in snapshots; nil means
	// codec.Of[ACC]().
	Codec codec.Codec[ACC]
}

func get[K comparable, S any](scope Scope[K], kind, name string, create func(b *statebackend.Keyed[K]) S) (S, error) {
	var zero S
	if name == "" {
		return zero, fmt.Errorf("state: %s state needs a name", kind)
	}
	st := scope.KeyedStateStore()
	if st == nil {
		return zero, fmt.Errorf("state %q: keyed state is only available on keyed streams", name)
	}
	b, ok := st.backend.(*statebackend.Keyed[K])
	if !ok || b == nil {
		return zero, fmt.Errorf("state %q: the scope's state store is not keyed by %T", name, *new(K))
	}
	if s, ok := b.Lookup(name); ok {
		if t, ok := s.(S); ok {
			return t, nil
		}
		return zero, fmt.Errorf("state %q is already registered as %T, not as %s state of this type", name, s, kind)
	}
	s := create(b)
	if _, err := b.Register(name, s); err != nil {
		return zero, err
	}
	return s, nil
}

// GetValue returns the operator's ValueState for d.
func GetValue[K comparable, V any](scope Scope[K], d ValueDescriptor[V]) (ValueState[V], error) {
	if err := checkCodec(d.Name, d.Codec); err != nil {
		return nil, err
	}
	return get(scope, "value", d.Name, func(b *statebackend.Keyed[K]) ValueState[V] {
		s := statebackend.NewValue[K, V](b, d.TTL.internal())
		s.SetCodec(d.Codec)
		return s
	})
}

// GetList returns the operator's ListState for d.
func GetList[K comparable, V any](scope Scope[K], d ListDescriptor[V]) (ListState[V], error) {
	if err := checkCodec(d.Name, d.Codec); err != nil {
		return nil, err
	}
	return get(scope, "list", d.Name, func(b *statebackend.Keyed[K]) ListState[V] {
		s := statebackend.NewList[K, V](b, d.TTL.internal())
		s.SetCodec(d.Codec)
		return s
	})
}

// GetMap returns the operator's MapState for d.
func GetMap[K, UK comparable, UV any](scope Scope[K], d MapDescriptor[UK, UV]) (MapState[UK, UV], error) {
	if err := checkCodec(d.Name, d.KeyCodec); err != nil {
		return nil, err
	}
	if err := checkCodec(d.Name, d.Codec); err != nil {
		return nil, err
	}
	return get(scope, "map", d.Name, func(b *statebackend.Keyed[K]) MapState[UK, UV] {
		s := statebackend.NewMap[K, UK, UV](b, d.TTL.internal())
		s.SetCodecs(d.KeyCodec, d.Codec)
		return s
	})
}

// GetReducing returns the operator's ReducingState for d.
func GetReducing[K comparable, V any](scope Scope[K], d ReducingDescriptor[V]) (ReducingState[V], error) {
	if d.Reduce == nil {
		return nil, fmt.Errorf("state %q: reducing state needs a Reduce function", d.Name)
	}
	if err := checkCodec(d.Name, d.Codec); err != nil {
		return nil, err
	}
	return get(scope, "reducing", d.Name, func(b *statebackend.Keyed[K]) ReducingState[V] {
		s := statebackend.NewReducing[K, V](b, d.TTL.internal(), d.Reduce)
		s.SetCodec(d.Codec)
		return s
	})
}

// GetAggregating returns the operator's AggregatingState for d.
func GetAggregating[K comparable, IN, ACC, OUT any](scope Scope[K], d AggregatingDescriptor[IN, ACC, OUT]) (AggregatingState[IN, OUT], error) {
	if d.Agg.Create == nil || d.Agg.Add == nil || d.Agg.Result == nil {
		return nil, fmt.Errorf("state %q: aggregating state needs Create, Add and Result", d.Name)
	}
	if err := checkCodec(d.Name, d.Codec); err != nil {
		return nil, err
	}
	return get(scope, "aggregating", d.Name, func(b *statebackend.Keyed[K]) AggregatingState[IN, OUT] {
		s := statebackend.NewAggregating[K, IN, ACC, OUT](b, d.TTL.internal(), d.Agg.Create, d.Agg.Add, d.Agg.Result)
		s.SetCodec(d.Codec)
		return s
	})
}
