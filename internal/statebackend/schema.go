package statebackend

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/strom-dev/strom/codec"
)

// State schemas: what a snapshot records of each state's types, so that the
// snapshot can be read without the job's Go types (savepoint inspection)
// and a restore can tell a changed type from the one that wrote the data.
//
// Format version 3 writes a schema section right after the header, once per
// stream (not per key group, so its cost does not grow with the state):
//
//	schemas = 'S' | uvarint len(payload) | payload | crc32c('S' … payload)
//	payload = uvarint numStates
//	          { string name | string typeTag | string schema JSON ("" if none) }
//
// It lists every state the backend holds when the snapshot is taken —
// registered ones in registration order, then restored ones not registered
// yet — including states with no entries. The schema JSON is a StateSchema.

// ErrIncompatibleState is wrapped by the error of registering a state whose
// restored data was written for other types: another type tag (e.g.
// value<string,int64> restored as value<string,string>), or, for snapshots
// that record schemas, the same Go type names with another encoding (a
// struct that gained, lost or retyped a field). The message names the
// state and the old and new types.
var ErrIncompatibleState = errors.New("statebackend: restored state is incompatible with the registered state")

// StateSchema describes the encoding of one state's entries (see the data
// layouts at the top of snapshot_states.go).
type StateSchema struct {
	// Kind is the state kind, the type tag's prefix: value, reducing,
	// aggregating, list, map, table or namespaced.
	Kind string `json:"kind"`
	// Key is the key's schema (for table state, the table key's).
	Key *codec.Schema `json:"key,omitempty"`
	// Namespace is the namespace's, for namespaced state.
	Namespace *codec.Schema `json:"namespace,omitempty"`
	// MapKey is the user key's, for map state.
	MapKey *codec.Schema `json:"map_key,omitempty"`
	// Value is the value's (value, reducing, table, namespaced state), the
	// accumulator's (aggregating), the element's (list) or the user
	// value's (map).
	Value *codec.Schema `json:"value,omitempty"`
}

// SchemaDescriber is implemented by states that can describe their
// encoding; the states of this package do. Snapshots record the schema of
// states that implement it.
type SchemaDescriber interface {
	StateSchema() StateSchema
}

// schemaOf is the schema of the codec a lazyCodec resolved, or nil when the
// type has none (its snapshots fail anyway).
func schemaOf[T any](c codec.Codec[T], err error) *codec.Schema {
	if err != nil {
		return nil
	}
	return codec.CodecSchema(c)
}

// tagKind is the kind part of a type tag: "value" of value<string,int64>.
func tagKind(tag string) string {
	kind, _, _ := strings.Cut(tag, "<")
	return kind
}

// StateSchema implements SchemaDescriber.
func (s *ttlTable[K, V]) StateSchema() StateSchema {
	return StateSchema{Kind: tagKind(s.tag), Key: schemaOf(s.b.KeyCodec()), Value: schemaOf(s.vc.get())}
}

// StateSchema implements SchemaDescriber.
func (s *List[K, V]) StateSchema() StateSchema {
	return StateSchema{Kind: "list", Key: schemaOf(s.b.KeyCodec()), Value: schemaOf(s.ec.get())}
}

// StateSchema implements SchemaDescriber.
func (s *Map[K, UK, UV]) StateSchema() StateSchema {
	return StateSchema{Kind: "map", Key: schemaOf(s.b.KeyCodec()), MapKey: schemaOf(s.kc.get()), Value: schemaOf(s.vc.get())}
}

// StateSchema implements SchemaDescriber.
func (t *Table[MK, V]) StateSchema() StateSchema {
	s := t.snapState()
	return StateSchema{Kind: "table", Key: schemaOf(s.kc.get()), Value: schemaOf(s.vc.get())}
}

// StateSchema implements SchemaDescriber.
func (t *Namespaced[K, N, V]) StateSchema() StateSchema {
	return StateSchema{Kind: "namespaced", Key: schemaOf(t.b.KeyCodec()), Namespace: schemaOf(t.nc.get()), Value: schemaOf(t.vc.get())}
}

// stateSchemaJSON returns the schema JSON of state s registered (or being
// registered) as name, "" for states that describe none. It is computed
// once per state: codecs are fixed at registration.
func (b *Keyed[K]) stateSchemaJSON(name string, s any) string {
	if js, ok := b.schemas[name]; ok {
		return js
	}
	js := ""
	if d, ok := s.(SchemaDescriber); ok {
		if data, err := json.Marshal(d.StateSchema()); err == nil {
			js = string(data)
		}
	}
	if b.schemas == nil {
		b.schemas = map[string]string{}
	}
	b.schemas[name] = js
	return js
}

// storedState is what a snapshot's schema section says of one state.
type storedState struct {
	Name, Type, Schema string
}

// appendSchemaSection appends the schema section of the backend's states.
// It is encoded once for a set of states (type tags and schemas do not
// change once registered), so periodic snapshots only copy it.
func (b *Keyed[K]) appendSchemaSection(dst []byte) []byte {
	if b.schemaSection == nil {
		b.schemaSection = b.encodeSchemaSection(nil)
	}
	return append(dst, b.schemaSection...)
}

func (b *Keyed[K]) encodeSchemaSection(dst []byte) []byte {
	start := len(dst)
	var payload []byte
	payload = binary.AppendUvarint(payload, uint64(len(b.order)+len(b.pendingOrder)))
	for _, name := range b.order {
		tag := ""
		if sn, ok := b.states[name].(Snapshotter); ok {
			tag = sn.StateType()
		}
		payload = appendString(payload, name)
		payload = appendString(payload, tag)
		payload = appendString(payload, b.stateSchemaJSON(name, b.states[name]))
	}
	for _, name := range b.pendingOrder {
		p := b.pending[name]
		payload = appendString(payload, name)
		payload = appendString(payload, p.typ)
		payload = appendString(payload, p.schema)
	}
	dst = append(dst, tagSchemas)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	dst = append(dst, payload...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// readSchemaSection reads the schema section of a version 3 stream.
func readSchemaSection(br byteReader) ([]storedState, error) {
	tag, err := br.ReadByte()
	if err != nil {
		return nil, corruptf("reading schema section: %v", noEOF(err))
	}
	if tag != tagSchemas {
		return nil, corruptf("bad schema section tag %#x", tag)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > 1<<32 {
		return nil, corruptf("reading schema section length: %v", noEOF(err))
	}
	h := binary.AppendUvarint([]byte{tagSchemas}, n)
	buf, err := readN(br, h, n)
	if err != nil {
		return nil, corruptf("reading %d bytes of schema section: %v", n, noEOF(err))
	}
	if err := checkCRC(br, buf); err != nil {
		return nil, fmt.Errorf("schema section: %w", err)
	}
	d := decoder{b: buf[len(h):]}
	cnt, err := d.count(3)
	if err != nil {
		return nil, fmt.Errorf("schema section: number of states: %w", err)
	}
	out := make([]storedState, 0, cnt)
	for i := range cnt {
		var s storedState
		for _, f := range []*string{&s.Name, &s.Type, &s.Schema} {
			if *f, err = d.string(); err != nil {
				return nil, fmt.Errorf("schema section, state %d: %w", i, err)
			}
		}
		out = append(out, s)
	}
	if d.rest() != 0 {
		return nil, corruptf("schema section: %d bytes after the last state", d.rest())
	}
	return out, nil
}

// checkCompatible checks that data of state name, written under type tag
// oldTyp with schema oldSchema ("" if unknown), can be restored into the
// registered state s.
func (b *Keyed[K]) checkCompatible(name, oldTyp, oldSchema string, s Snapshotter) error {
	if newTyp := s.StateType(); newTyp != oldTyp {
		return fmt.Errorf("%w: state %q was snapshotted as %s but is registered as %s", ErrIncompatibleState, name, oldTyp, newTyp)
	}
	newSchema := b.stateSchemaJSON(name, s)
	if oldSchema == "" || newSchema == "" || oldSchema == newSchema {
		return nil
	}
	var o, n StateSchema
	if json.Unmarshal([]byte(oldSchema), &o) != nil || json.Unmarshal([]byte(newSchema), &n) != nil {
		return fmt.Errorf("%w: state %q (%s): its recorded schema %s differs from the registered state's %s", ErrIncompatibleState, name, oldTyp, oldSchema, newSchema)
	}
	for _, part := range []struct {
		what     string
		old, new *codec.Schema
	}{{"key", o.Key, n.Key}, {"namespace", o.Namespace, n.Namespace}, {"map key", o.MapKey, n.MapKey}, {"value", o.Value, n.Value}} {
		oj, _ := json.Marshal(part.old)
		nj, _ := json.Marshal(part.new)
		if string(oj) != string(nj) {
			return fmt.Errorf("%w: state %q (%s): the encoding of its %s type changed (a field added, removed, reordered or retyped?): snapshot %s, now %s",
				ErrIncompatibleState, name, oldTyp, part.what, oj, nj)
		}
	}
	return fmt.Errorf("%w: state %q (%s): its recorded schema %s differs from the registered state's %s", ErrIncompatibleState, name, oldTyp, oldSchema, newSchema)
}
