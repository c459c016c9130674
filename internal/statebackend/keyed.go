// Package statebackend holds keyed state: the heap backend, which keeps each
// state in Go maps sharded by key group, so a snapshot is taken and restored
// per key group and a job restored with another parallelism only reassigns
// key-group ranges (see snapshot.go for the format).
package statebackend

import (
	"fmt"
	"reflect"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/keygroup"
)

// Keyed is the keyed state backend of one operator subtask. It holds the
// current key (set by the operator before it calls user code) and every
// registered state table.
type Keyed[K comparable] struct {
	hasher keygroup.Hasher[K]
	maxPar int
	rng    keygroup.Range
	key    K
	kgIdx  int
	hasKey bool
	states map[string]any
	order  []string
	// Now returns processing time for TTL; replaceable in tests.
	Now func() int64

	// Snapshots (snapshot.go).
	keyC         codec.Codec[K]
	keyErr       error
	keyMin       int
	keyResolved  bool
	pending      map[string]*pendingState // restored, not registered yet
	pendingOrder []string
	restored     []bool // per key-group index
	// chainOpen: a base of an incremental chain was taken, so a delta
	// may follow (incremental.go).
	chainOpen bool
	scratch   []byte            // a state's data while a snapshot is taken
	schemas   map[string]string // state name → schema JSON (schema.go)
	// schemaSection is the encoded schema section, kept until the set of
	// states changes (Register, a restore adding pending states).
	schemaSection []byte
}

// NewKeyed returns a backend owning key groups rng of maxParallelism.
func NewKeyed[K comparable](hasher keygroup.Hasher[K], maxParallelism int, rng keygroup.Range) *Keyed[K] {
	return &Keyed[K]{
		hasher: hasher,
		maxPar: maxParallelism,
		rng:    rng,
		states: map[string]any{},
		Now:    func() int64 { return time.Now().UnixMilli() },
	}
}

// KeyGroupOf returns the key group of k.
func (b *Keyed[K]) KeyGroupOf(k K) int { return keygroup.Of(b.hasher(k), b.maxPar) }

// SetCurrentKey makes k the key that state accesses refer to. A key outside
// the subtask's key-group range means records were partitioned wrongly; that
// is a bug, reported loudly.
func (b *Keyed[K]) SetCurrentKey(k K) {
	kg := keygroup.Of(b.hasher(k), b.maxPar)
	if !b.rng.Contains(kg) {
		panic(fmt.Errorf("statebackend: key %v belongs to key group %d outside this subtask's range %v", k, kg, b.rng))
	}
	b.key = k
	b.kgIdx = kg - b.rng.Start
	b.hasKey = true
}

// CurrentKey returns the current key.
func (b *Keyed[K]) CurrentKey() K { return b.key }

// HasCurrentKey reports whether a key has been set.
func (b *Keyed[K]) HasCurrentKey() bool { return b.hasKey }

// KeyGroupIndex is the current key's key group minus the range start.
func (b *Keyed[K]) KeyGroupIndex() int { return b.kgIdx }

// Range is the key-group range the backend owns.
func (b *Keyed[K]) Range() keygroup.Range { return b.rng }

// MaxParallelism is the number of key groups of the job.
func (b *Keyed[K]) MaxParallelism() int { return b.maxPar }

// Lookup returns a registered state by name.
func (b *Keyed[K]) Lookup(name string) (any, bool) {
	s, ok := b.states[name]
	return s, ok
}

// Register adds a state under a unique name; registering the same name again
// returns the existing state if it has the same Go type, else an error.
//
// States of this package resolve their codecs here (a type without a codec
// is reported by snapshots, not here). If a restored snapshot holds data of
// the state, it is restored into s now; an error doing so (another state
// type under that name, undecodable data) is returned and s is not
// registered.
func (b *Keyed[K]) Register(name string, s any) (any, error) {
	if old, ok := b.states[name]; ok {
		if reflect.TypeOf(old) != reflect.TypeOf(s) {
			return nil, fmt.Errorf("state %q already registered as %T, not %T", name, old, s)
		}
		return old, nil
	}
	if bd, ok := s.(binder); ok {
		bd.bind(b)
	}
	if err := b.claimPending(name, s); err != nil {
		delete(b.schemas, name) // cached for s, which is not registered
		return nil, err
	}
	b.states[name] = s
	b.order = append(b.order, name)
	b.schemaSection = nil // lists the states
	return s, nil
}

// StateNames lists registered states in registration order.
func (b *Keyed[K]) StateNames() []string { return append([]string(nil), b.order...) }

// NumStates is the number of registered states.
func (b *Keyed[K]) NumStates() int { return len(b.order) }

// Table is one state's data: a map per key group from the state key (the
// user key, or the user key with a namespace such as a window) to the value.
//
// A registered table snapshots with codecs for MK (the backend's key codec
// when MK is the backend's key type) and V (codec.For[V]); see SetCodecs and
// SetValueCodecFunc.
type Table[MK comparable, V any] struct {
	maps []map[MK]V
	snap *tableSnap[MK, V] // codecs and backend binding, made when needed
	// epoch counts the snapshots that froze the table (see Freeze); cow is
	// set by an owner that copies a value before changing it whenever the
	// value is older than the epoch.
	epoch uint32
	cow   bool
	// tracking is set while the table is in an incremental chain
	// (incremental.go): dirty then holds, per key group, the keys put or
	// deleted since the chain's last snapshot.
	tracking bool
	dirty    []dirtyLog[MK, V]
}

// dirtyVal is a changed key's value as last put (the value itself, so a
// delta's capture takes no lookups), or its deletion.
type dirtyVal[V any] struct {
	v   V
	del bool
}

// dirtyEntry is one recorded change.
type dirtyEntry[MK comparable, V any] struct {
	k MK
	dirtyVal[V]
}

// dirtyLog is a key group's changes since the chain's last snapshot, in
// order: appending costs a few nanoseconds where a map insert on every put
// cost q8 6 % of its CPU; the upload goroutine keeps each key's last.
// Once the log outgrows twice the key group's entries it is dropped and the
// key group is written whole (full): memory stays bounded by the state,
// and when most keys change a whole key group is no dearer.
type dirtyLog[MK comparable, V any] struct {
	entries []dirtyEntry[MK, V]
	full    bool
}

// NewTable returns a table for n key groups.
func NewTable[MK comparable, V any](n int) *Table[MK, V] {
	t := &Table[MK, V]{maps: make([]map[MK]V, n)}
	for i := range t.maps {
		t.maps[i] = map[MK]V{}
	}
	return t
}

// Get returns the value of mk in key group index kg.
func (t *Table[MK, V]) Get(kg int, mk MK) (V, bool) {
	v, ok := t.maps[kg][mk]
	return v, ok
}

// Put sets the value of mk.
func (t *Table[MK, V]) Put(kg int, mk MK, v V) {
	t.maps[kg][mk] = v
	if t.tracking {
		t.touch(kg, mk, dirtyVal[V]{v: v})
	}
}

// Delete removes mk.
func (t *Table[MK, V]) Delete(kg int, mk MK) {
	delete(t.maps[kg], mk)
	if t.tracking {
		t.touch(kg, mk, dirtyVal[V]{del: true})
	}
}

// KeyGroup returns the map of key group index kg (for snapshots and
// iteration by the owning operator; callers must not keep it).
func (t *Table[MK, V]) KeyGroup(kg int) map[MK]V { return t.maps[kg] }

// Len is the number of entries over all key groups.
func (t *Table[MK, V]) Len() int {
	n := 0
	for _, m := range t.maps {
		n += len(m)
	}
	return n
}

// NumKeyGroups is the number of key groups of the table.
func (t *Table[MK, V]) NumKeyGroups() int { return len(t.maps) }
