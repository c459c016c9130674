package statebackend

import (
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// NsKey is the key of namespaced state: the user key and a namespace (for
// window state, the window).
type NsKey[K, N comparable] struct {
	Key K
	NS  N
}

// Namespaced is keyed state with a namespace per entry — window contents,
// trigger state — stored per key group like every other state. It is built
// for the window operators' hot path: one map lookup per access, values in a
// slab reused through a free list (no allocation per entry once warm), and
// access through pointers so read-modify-write costs one lookup.
//
// Pointers returned by Get and Upsert are valid until the next Upsert (the
// slab may grow); callers must not keep them.
type Namespaced[K, N comparable, V any] struct {
	b     *Keyed[K]
	index []map[NsKey[K, N]]int32 // per key group index: slot in vals
	vals  []V
	free  []int32
	// Snapshot codecs (snapshot_states.go).
	nc  lazyCodec[N]
	vc  lazyCodec[V]
	tag string
}

// NewNamespaced returns namespaced state on b. Register it with b under a
// name so checkpoints find it.
func NewNamespaced[K, N comparable, V any](b *Keyed[K]) *Namespaced[K, N, V] {
	t := &Namespaced[K, N, V]{b: b, index: make([]map[NsKey[K, N]]int32, b.rng.Len()),
		nc: lazyCodec[N]{what: "namespace"}, vc: lazyCodec[V]{what: "value"},
		tag: typeTag("namespaced", reflect.TypeFor[K](), reflect.TypeFor[N](), reflect.TypeFor[V]())}
	for i := range t.index {
		t.index[i] = map[NsKey[K, N]]int32{}
	}
	return t
}

// SetCodecs sets the codecs of namespaces and values in snapshots (nil:
// codec.For of the type). Set them before registering the state.
func (t *Namespaced[K, N, V]) SetCodecs(nc codec.Codec[N], vc codec.Codec[V]) {
	t.nc.set(nc)
	t.vc.set(vc)
}

// Get returns the value of the current key in namespace ns, or nil.
func (t *Namespaced[K, N, V]) Get(ns N) *V {
	i, ok := t.index[t.b.kgIdx][NsKey[K, N]{t.b.key, ns}]
	if !ok {
		return nil
	}
	return &t.vals[i]
}

// Upsert returns the value of the current key in namespace ns, creating a
// zero value if there is none (created reports that).
func (t *Namespaced[K, N, V]) Upsert(ns N) (v *V, created bool) {
	m := t.index[t.b.kgIdx]
	k := NsKey[K, N]{t.b.key, ns}
	if i, ok := m[k]; ok {
		return &t.vals[i], false
	}
	return t.insert(m, k), true
}

// insert adds k to m with a zero value in a free slot.
func (t *Namespaced[K, N, V]) insert(m map[NsKey[K, N]]int32, k NsKey[K, N]) *V {
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		i = int32(len(t.vals))
		var zero V
		t.vals = append(t.vals, zero)
	}
	m[k] = i
	return &t.vals[i]
}

// upsertAt returns the value of k in key-group index kg, creating it.
func (t *Namespaced[K, N, V]) upsertAt(kg int, k NsKey[K, N]) *V {
	m := t.index[kg]
	if i, ok := m[k]; ok {
		return &t.vals[i]
	}
	return t.insert(m, k)
}

// Delete removes the current key's value in namespace ns.
func (t *Namespaced[K, N, V]) Delete(ns N) {
	m := t.index[t.b.kgIdx]
	k := NsKey[K, N]{t.b.key, ns}
	i, ok := m[k]
	if !ok {
		return
	}
	delete(m, k)
	var zero V
	t.vals[i] = zero
	t.free = append(t.free, i)
}

// Len is the number of entries over all key groups.
func (t *Namespaced[K, N, V]) Len() int {
	n := 0
	for _, m := range t.index {
		n += len(m)
	}
	return n
}

// NumKeyGroups is the number of key groups of the state.
func (t *Namespaced[K, N, V]) NumKeyGroups() int { return len(t.index) }

// ForEach calls fn for every entry of key group index kg (for snapshots);
// fn must not modify the state.
func (t *Namespaced[K, N, V]) ForEach(kg int, fn func(k NsKey[K, N], v *V)) {
	for k, i := range t.index[kg] {
		fn(k, &t.vals[i])
	}
}
