package state

import (
	"encoding"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/strom-dev/strom/codec"
)

// The default codec (codec.Of) encodes a struct's exported fields only: a
// struct that also has unexported fields encodes without them, and a
// restore would bring back values with those fields zeroed, silently. State
// is what a job must not lose, so a state type whose default codec would
// drop data is refused when the state is declared, with an error naming the
// state, the type and the field. Types that encode themselves
// (encoding.BinaryAppender or BinaryMarshaler with BinaryUnmarshaler, msgp)
// and state with its own Codec are not checked: they decide what to keep.

// dropCheck caches the check per type (reflect.Type → *dropped, nil when
// the type keeps all its data): state may be got on every record.
var dropCheck sync.Map

// dropped says where a type's default codec drops data.
type dropped struct {
	in    reflect.Type // the struct with the unexported field
	field string
}

// checkStateType refuses T as the type of state name if the default codec
// would drop data of it.
func checkStateType[T any](name string) error {
	t := reflect.TypeFor[T]()
	var d *dropped
	if v, ok := dropCheck.Load(t); ok {
		d = v.(*dropped)
	} else {
		d = findDropped(t, map[reflect.Type]bool{})
		dropCheck.Store(t, d)
	}
	if d == nil {
		return nil
	}
	where := ""
	if d.in != t {
		where = fmt.Sprintf(" (inside %v)", t)
	}
	return fmt.Errorf("state %q: type %v cannot be state with the default codec: field %s of %v%s is unexported, and the default codec would drop it from snapshots; export the field, tag it `codec:\"-\"` if it may be lost, implement encoding.BinaryAppender and encoding.BinaryUnmarshaler, or set a Codec on the descriptor",
		name, t, d.field, d.in, where)
}

// encodesItself mirrors the codec's rules 1 and 2 (see codec.Of): such a
// type's encoding is its own business.
func encodesItself(t reflect.Type) bool {
	if t == reflect.TypeFor[time.Time]() {
		return true
	}
	if t.Kind() == reflect.Interface || t.Kind() == reflect.Pointer {
		return false
	}
	pt := reflect.PointerTo(t)
	implements := func(i reflect.Type) bool { return pt.Implements(i) }
	if implements(reflect.TypeFor[encoding.BinaryUnmarshaler]()) &&
		(implements(reflect.TypeFor[encoding.BinaryAppender]()) || implements(reflect.TypeFor[encoding.BinaryMarshaler]())) {
		return true
	}
	return implements(reflect.TypeFor[msgp.Marshaler]()) && implements(reflect.TypeFor[msgp.Unmarshaler]())
}

// findDropped walks t as the codec does and returns the first unexported
// field with data it would skip, or nil.
func findDropped(t reflect.Type, seen map[reflect.Type]bool) *dropped {
	if seen[t] || encodesItself(t) {
		return nil
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return findDropped(t.Elem(), seen)
	case reflect.Map:
		if d := findDropped(t.Key(), seen); d != nil {
			return d
		}
		return findDropped(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_" || f.Tag.Get("codec") == "-" {
				continue // skipped on purpose
			}
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				// Embedded structs are flattened. A lock (sync.Mutex) has
				// no data worth keeping.
				if f.Type.PkgPath() == "sync" {
					continue
				}
				if d := findDropped(f.Type, seen); d != nil {
					return d
				}
				continue
			}
			if !f.IsExported() {
				if f.Type.Size() > 0 {
					return &dropped{in: t, field: f.Name}
				}
				continue
			}
			if d := findDropped(f.Type, seen); d != nil {
				return d
			}
		}
	}
	return nil
}

// checkCodec checks T for state name when the descriptor leaves its codec
// to the default.
func checkCodec[T any](name string, c codec.Codec[T]) error {
	if c != nil {
		return nil
	}
	return checkStateType[T](name)
}
