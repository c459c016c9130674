package statebackend

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/strom-dev/strom/codec"
)

// Reading a keyed snapshot stream without the job's Go types, for tools
// (strom savepoint inspect): the states it holds, with the schemas version
// 3 records, and each state's entries as raw key, namespace and value
// bytes, split with the schemas.

// SnapshotContents is a whole snapshot stream, checked (checksums, order,
// trailer) but not decoded.
type SnapshotContents struct {
	Info SnapshotInfo
	// States are the states of the schema section (version 3), then any
	// state that has data but is not listed there (always the case before
	// version 3), in order of first appearance.
	States []StateDesc
	// Sections are the states' data per key group, in stream order.
	Sections []Section
}

// StateDesc is one state of a snapshot.
type StateDesc struct {
	Name string
	// Type is the type tag, e.g. value<string,int64>.
	Type string
	// Schema is nil when the snapshot records none: before version 3, or
	// for states that describe none (timers, window contents).
	Schema *StateSchema
}

// Section is one state's data in one key group.
type Section struct {
	State, Type string
	KeyGroup    int
	Data        []byte
	// Delta marks a section of an incremental snapshot that holds only
	// the entries changed since the section before it (of the same state
	// and key group, in this stream or the chain's earlier ones) and,
	// after them, the keys deleted. Savepoints have such sections only
	// for restored data of a state the job never used after restoring
	// from an incremental checkpoint. Entries reads the changed entries.
	Delta bool
	// Replace marks a section of an incremental snapshot that replaces
	// whatever the chain held of the state's key group (its Data may be
	// empty: the key group became empty).
	Replace bool
}

// ReadSnapshotContents reads a whole snapshot stream.
func ReadSnapshotContents(r io.Reader) (*SnapshotContents, error) {
	c := &SnapshotContents{}
	seen := map[string]bool{}
	err := walkSnapshot(r, func(info SnapshotInfo, states []storedState) error {
		c.Info = info
		for _, s := range states {
			d := StateDesc{Name: s.Name, Type: s.Type}
			if s.Schema != "" {
				d.Schema = new(StateSchema)
				if err := json.Unmarshal([]byte(s.Schema), d.Schema); err != nil {
					return corruptf("schema of state %q: %v", s.Name, err)
				}
			}
			if seen[s.Name] {
				return corruptf("schema section lists state %q twice", s.Name)
			}
			seen[s.Name] = true
			c.States = append(c.States, d)
		}
		return nil
	}, func(kg int, payload []byte) error {
		secs, err := parsePayload(payload, c.Info.Version >= kindVersion)
		if err != nil {
			return fmt.Errorf("key group %d: %w", kg, err)
		}
		for _, s := range secs {
			if !seen[s.name] {
				seen[s.name] = true
				c.States = append(c.States, StateDesc{Name: s.name, Type: s.typ})
			}
			c.Sections = append(c.Sections, Section{State: s.name, Type: s.typ, KeyGroup: kg, Data: s.data,
				Delta: s.kind == kindDelta, Replace: s.kind == kindReplace})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ErrNoEntries is wrapped by the error of Entries for a state whose data
// cannot be split into entries: a kind this package does not write
// (timers, window contents), no recorded schema, or a codec without one.
var ErrNoEntries = errors.New("statebackend: the state's entries cannot be read without its Go types")

// NumKeys returns the number of keys of the section (for namespaced state,
// of key and namespace pairs), read from its header; ok is false for kinds
// this package does not write.
func (s Section) NumKeys() (n int, ok bool) {
	if len(s.Data) == 0 {
		return 0, true // a replace section of an emptied key group
	}
	d := decoder{b: s.Data}
	switch tagKind(s.Type) {
	case "value", "reducing", "aggregating", "list", "map":
		if _, err := d.byte(); err != nil {
			return 0, false
		}
	case "table", "namespaced":
	default:
		return 0, false
	}
	v, err := d.uvarint()
	return int(v), err == nil
}

// Entry is one entry of a state: for value, reducing and aggregating state
// one per key; for list state one per element, for map state one per map
// entry (a key with several has several Entries); for table state one per
// table key; for namespaced state one per key and namespace. Byte slices
// alias the snapshot.
type Entry struct {
	KeyGroup  int
	Key       []byte
	Namespace []byte // namespaced state
	MapKey    []byte // map state
	Value     []byte
	// Expiry is the TTL expiry in epoch milliseconds, 0 for never.
	Expiry int64
	// Deleted marks a key a delta section deleted (only Key is set).
	Deleted bool
}

// Entries splits the section into entries with the state's schema (see
// Entry) and calls visit with each. Corrupt data returns an error wrapping
// ErrCorruptSnapshot; data it cannot split, one wrapping ErrNoEntries.
func (s Section) Entries(schema *StateSchema, visit func(Entry) error) error {
	kind := tagKind(s.Type)
	if schema == nil {
		return fmt.Errorf("%w: state %q (%s) has no recorded schema", ErrNoEntries, s.State, s.Type)
	}
	if schema.Kind != kind {
		return corruptf("state %q: schema of a %s state for data of %s", s.State, schema.Kind, s.Type)
	}
	if len(s.Data) == 0 {
		return nil // a replace section of an emptied key group
	}
	r := entryReader{d: decoder{b: s.Data}, state: s.State}
	var err error
	switch kind {
	case "value", "reducing", "aggregating":
		err = r.flat(s.KeyGroup, schema, true, false, visit)
	case "list", "map":
		err = r.collections(s.KeyGroup, schema, kind == "map", visit)
	case "table", "namespaced":
		err = r.flat(s.KeyGroup, schema, false, kind == "namespaced", visit)
	default:
		return fmt.Errorf("%w: state %q has kind %s", ErrNoEntries, s.State, kind)
	}
	if err == nil && s.Delta {
		err = r.deleted(s.KeyGroup, schema, visit)
	}
	if err != nil {
		return fmt.Errorf("state %q, key group %d: %w", s.State, s.KeyGroup, err)
	}
	if r.d.rest() != 0 {
		return corruptf("state %q, key group %d: %d bytes after the last entry", s.State, s.KeyGroup, r.d.rest())
	}
	return nil
}

// deleted reads the deleted keys at the end of a delta section.
func (r *entryReader) deleted(kg int, sc *StateSchema, visit func(Entry) error) error {
	n, err := r.d.count(1)
	if err != nil {
		return fmt.Errorf("number of deleted keys: %w", err)
	}
	for i := range n {
		e := Entry{KeyGroup: kg, Deleted: true}
		if e.Key, err = r.next(sc.Key, "deleted key"); err != nil {
			return fmt.Errorf("deleted key %d: %w", i, err)
		}
		if err := visit(e); err != nil {
			return err
		}
	}
	return nil
}

// MergedEntries visits the entries of state d in c as a restore would see
// them: per key group, a delta section's entries replace those of the
// same key before it and its deleted keys drop them. Key groups come in
// order; within one, entries in the order their keys first appeared.
func MergedEntries(c *SnapshotContents, d StateDesc, visit func(Entry) error) error {
	var kgSecs []Section
	flush := func() error {
		defer func() { kgSecs = kgSecs[:0] }()
		delta := slices.ContainsFunc(kgSecs, func(s Section) bool { return s.Delta })
		if !delta {
			for _, sec := range kgSecs {
				if err := sec.Entries(d.Schema, visit); err != nil {
					return err
				}
			}
			return nil
		}
		var order []string
		byKey := map[string]Entry{}
		for _, sec := range kgSecs {
			if !sec.Delta {
				order, byKey = order[:0], map[string]Entry{}
			}
			err := sec.Entries(d.Schema, func(e Entry) error {
				k := string(e.Key) + "\x00" + string(e.Namespace) + "\x00" + string(e.MapKey)
				if e.Deleted {
					delete(byKey, k)
					return nil
				}
				if _, ok := byKey[k]; !ok {
					order = append(order, k)
				}
				byKey[k] = e
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, k := range order {
			if e, ok := byKey[k]; ok {
				delete(byKey, k) // a key deleted and put again is listed once
				if err := visit(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, sec := range c.Sections {
		if sec.State != d.Name {
			continue
		}
		if len(kgSecs) > 0 && kgSecs[0].KeyGroup != sec.KeyGroup {
			if err := flush(); err != nil {
				return err
			}
		}
		kgSecs = append(kgSecs, sec)
	}
	return flush()
}

type entryReader struct {
	d     decoder
	state string
}

// next returns the bytes of one value of schema sc.
func (r *entryReader) next(sc *codec.Schema, what string) ([]byte, error) {
	if sc == nil {
		return nil, fmt.Errorf("%w: no schema for the %s", ErrNoEntries, what)
	}
	rest := r.d.b[r.d.off:]
	_, n, err := codec.DecodeDynamic(sc, rest)
	if errors.Is(err, codec.ErrNoSchema) {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoEntries, what, err)
	}
	if err != nil {
		return nil, corruptf("%s at byte %d: %v", what, r.d.off, err)
	}
	r.d.off += n
	return rest[:n:n], nil
}

// flat reads entries of one key each: with cells, the flags byte and
// expiries of value, reducing and aggregating state; with namespaced, a
// namespace after each key.
func (r *entryReader) flat(kg int, sc *StateSchema, cells, namespaced bool, visit func(Entry) error) error {
	var flags byte
	if cells {
		var err error
		if flags, err = r.d.byte(); err != nil {
			return err
		}
		if flags > 1 {
			return corruptf("unknown flags %#x", flags)
		}
	}
	n, err := r.d.count(0)
	if err != nil {
		return err
	}
	for i := range n {
		e := Entry{KeyGroup: kg}
		if e.Key, err = r.next(sc.Key, "key"); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if flags == 1 {
			if e.Expiry, err = r.d.varint(); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		if namespaced {
			if e.Namespace, err = r.next(sc.Namespace, "namespace"); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		if e.Value, err = r.next(sc.Value, "value"); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if err := visit(e); err != nil {
			return err
		}
	}
	return nil
}

func (r *entryReader) collections(kg int, sc *StateSchema, isMap bool, visit func(Entry) error) error {
	flags, err := readFlags(&r.d)
	if err != nil {
		return err
	}
	n, err := r.d.count(0)
	if err != nil {
		return err
	}
	for i := range n {
		key, err := r.next(sc.Key, "key")
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		var keyExp int64
		if flags == flagsPerKey {
			if keyExp, err = r.d.varint(); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		cnt, err := r.d.count(0)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		prev := int64(0)
		for j := range cnt {
			e := Entry{KeyGroup: kg, Key: key, Expiry: keyExp}
			if isMap {
				if e.MapKey, err = r.next(sc.MapKey, "map key"); err != nil {
					return fmt.Errorf("entry %d, element %d: %w", i, j, err)
				}
			}
			if flags == flagsPerEntry {
				delta, err := r.d.varint()
				if err != nil {
					return fmt.Errorf("entry %d, element %d: %w", i, j, err)
				}
				prev += delta
				e.Expiry = prev
			}
			if e.Value, err = r.next(sc.Value, "value"); err != nil {
				return fmt.Errorf("entry %d, element %d: %w", i, j, err)
			}
			if err := visit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// MergeChain merges the contents of an incremental chain — a base and its
// deltas, in order — into what a restore would see: per state and key
// group, the last full or replace section and the delta sections after it
// (Delta still set: their changed entries, not the key group's whole
// state). States are listed once, in order of first appearance.
func MergeChain(chain []*SnapshotContents) *SnapshotContents {
	if len(chain) == 1 {
		return chain[0]
	}
	out := &SnapshotContents{Info: chain[len(chain)-1].Info}
	out.Info.Delta = false
	seen := map[string]int{}
	type key struct {
		state string
		kg    int
	}
	secs := map[key][]Section{}
	for _, c := range chain {
		for _, d := range c.States {
			if i, ok := seen[d.Name]; ok {
				if out.States[i].Schema == nil {
					out.States[i].Schema = d.Schema
				}
				continue
			}
			seen[d.Name] = len(out.States)
			out.States = append(out.States, d)
		}
		for _, sec := range c.Sections {
			k := key{sec.State, sec.KeyGroup}
			if sec.Delta {
				secs[k] = append(secs[k], sec)
			} else {
				secs[k] = []Section{sec}
			}
		}
	}
	keys := make([]key, 0, len(secs))
	for k := range secs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.kg != b.kg {
			return a.kg - b.kg
		}
		return seen[a.state] - seen[b.state]
	})
	for _, k := range keys {
		out.Sections = append(out.Sections, secs[k]...)
	}
	return out
}
