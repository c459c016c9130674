package statebackend

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
	"slices"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/keygroup"
)

// Snapshots of keyed state, per key group.
//
// Every state a Keyed backend holds implements Snapshotter: it writes the
// entries of one key group to bytes and reads them back. Keyed.Snapshot
// writes the whole backend (its key-group range) as one stream:
//
//	header  = magic "STRMKEYS" | version (1 byte, 4)
//	          | uvarint maxParallelism | uvarint rangeStart | uvarint rangeEnd
//	          | uvarint flags (version 4; bit 0: a delta stream)
//	          | crc32c(header fields) (4 bytes, little endian)
//	schemas = 'S' | uvarint len | { name, type tag, schema JSON per state }
//	          | crc32c (version 3; see schema.go)
//	chunk   = 'G' | uvarint keyGroup | uvarint len(payload) | payload
//	          | crc32c('G' … payload)
//	trailer = 'E' | uvarint number of chunks | crc32c('E' … count)
//	payload = uvarint numStates
//	          { string name | string typeTag | kind (version 4)
//	            | uvarint len(data) | data }
//	string  = uvarint length | bytes
//
// There is one chunk per key group of the range, in increasing order (an
// empty key group has numStates = 0); a state with no entries in a key
// group is left out of that chunk. data is the state's SnapshotKeyGroup
// output. Keys, namespaces and values are encoded with codec.Codec (the
// state's codecs, codec.For of the type by default); the state-level
// framing (entry counts, TTL expiries) uses varints.
//
// Versions: 1 wrote one expiry per key for list and map state with TTL;
// 2 writes one per list element and map entry (a new flags value in their
// data, see snapshot_states.go). Version 1 data is valid version 2 data,
// so version 1 snapshots restore, and restored data of states not
// registered yet is written into later snapshots as it is. 3 adds the
// schema section after the header, with each state's type tag and schema
// (codec.Schema of its key, namespace and value types), so a snapshot can
// be read without the job's Go types (ReadSnapshotContents) and a restore
// refuses data whose types' encoding changed (ErrIncompatibleState); the
// chunks are those of version 2, and version 1 and 2 streams restore. 4
// adds the header's flags and each section's kind byte, for incremental
// snapshots (incremental.go); a full stream's sections are of kind 'F'.
//
// Restore reads such a stream and takes the key groups in the backend's own
// range, skipping the others, so a job snapshotted with one parallelism
// restores with another: every new subtask reads the snapshots of the old
// subtasks whose ranges overlap its own. Data of states not registered yet
// is kept (per state name and key group) until the state is registered —
// states are registered lazily, on first use — and it is written again by
// later snapshots meanwhile, so it is never lost.

// Snapshotter is implemented by every state a Keyed backend can snapshot.
//
// Key groups are passed as indexes into the backend's range (key group
// minus Range().Start), the way the tables store them.
type Snapshotter interface {
	// StateType is the type tag written with the state's data, such as
	// "value<string,int64>"; restoring data written under another tag is
	// an error, so a state cannot be read back as another kind or type.
	StateType() string
	// SnapshotKeyGroup appends the entries of key-group index kg to dst.
	// It appends nothing when the key group has no entries. It fails (and
	// does not panic) when a key, namespace or value type has no codec.
	// It may first drop expired TTL state of the key group from memory
	// (list and map state do).
	SnapshotKeyGroup(kg int, dst []byte) ([]byte, error)
	// RestoreKeyGroup adds the entries in src — exactly one non-empty
	// SnapshotKeyGroup output — to key-group index kg, replacing entries
	// with the same key. Bad input returns an error wrapping
	// ErrCorruptSnapshot; it never panics.
	RestoreKeyGroup(kg int, src []byte) error
}

// SnapshotPreparer is implemented by states that index their entries by key
// group only for a snapshot (timers keep one heap over all key groups).
// Keyed.Snapshot calls PrepareSnapshot before the first SnapshotKeyGroup
// and FinishSnapshot after the last; without them SnapshotKeyGroup must
// still work, only slower.
type SnapshotPreparer interface {
	PrepareSnapshot()
	FinishSnapshot()
}

// binder is implemented by the states of this package: Register binds them
// to the backend (for its key codec and key groups) and resolves their
// codecs once.
type binder interface{ bind(b any) }

// ErrCorruptSnapshot is wrapped by every error for snapshot bytes that are
// not a complete, valid snapshot: bad magic, checksum mismatch, truncation,
// undecodable entries. The message says which key group and state.
var ErrCorruptSnapshot = errors.New("statebackend: corrupt or truncated state snapshot")

// ErrUnsupportedVersion is wrapped by the error for a snapshot written in a
// format version this build cannot read.
var ErrUnsupportedVersion = errors.New("statebackend: unsupported state snapshot version")

const (
	snapshotMagic   = "STRMKEYS"
	snapshotVersion = 4
	// oldestVersion is the oldest version this build reads.
	oldestVersion = 1
	// schemaVersion is the first version with a schema section.
	schemaVersion = 3
	// kindVersion is the first version with flags and section kinds.
	kindVersion = 4
	tagKeyGroup = 'G'
	tagEnd      = 'E'
	tagSchemas  = 'S'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// pendingState is restored data of a state that is not registered yet.
type pendingState struct {
	typ    string
	schema string            // schema JSON from the snapshot, "" if it had none
	data   map[int][]segment // key-group index → sections, in order
}

// KeyCodec returns the codec of the backend's keys: the one set with
// SetKeyCodec, else codec.For[K] (resolved once).
func (b *Keyed[K]) KeyCodec() (codec.Codec[K], error) {
	if !b.keyResolved {
		if b.keyC == nil {
			b.keyC, b.keyErr = codec.For[K]()
			if b.keyErr != nil {
				b.keyErr = fmt.Errorf("no codec for key type %v: %w", reflect.TypeFor[K](), b.keyErr)
			}
		}
		if b.keyErr == nil {
			b.keyMin = minSize(b.keyC)
		}
		b.keyResolved = true
	}
	return b.keyC, b.keyErr
}

// SetKeyCodec overrides the codec of the backend's keys in snapshots (nil
// restores the default, codec.For[K]).
func (b *Keyed[K]) SetKeyCodec(c codec.Codec[K]) {
	b.keyC, b.keyErr, b.keyResolved = c, nil, false
}

// SnapshotKeyGroup appends the payload of key group kg (absolute, within
// the backend's range) to dst: every registered state's entries, plus
// restored data of states not registered yet. Keyed.Snapshot frames and
// checksums it; it is exported for snapshot writers that store key groups
// separately.
func (b *Keyed[K]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	if !b.rng.Contains(kg) {
		return dst, fmt.Errorf("statebackend: key group %d is outside this backend's range %v", kg, b.rng)
	}
	return b.snapshotKeyGroup(kg, dst)
}

func (b *Keyed[K]) snapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	scratch := b.scratch[:0]
	defer func() { b.scratch = scratch[:0] }()
	idx := kg - b.rng.Start
	lenAt := len(dst)
	dst = append(dst, 0) // numStates; fixed by finishChunk
	n := 0
	for _, name := range b.order {
		sn, err := b.snapshotter(name)
		if err != nil {
			return dst, err
		}
		if sn == nil {
			continue
		}
		scratch, err = snapshotState(sn, idx, scratch[:0])
		if err != nil {
			return dst, fmt.Errorf("statebackend: snapshot of state %q (%s), key group %d: %w", name, sn.StateType(), kg, err)
		}
		if len(scratch) == 0 {
			continue
		}
		dst = appendSection(dst, name, sn.StateType(), 0, scratch)
		n++
	}
	for _, name := range b.pendingOrder {
		p := b.pending[name]
		for _, seg := range p.data[idx] {
			if seg.kind != kindFull {
				return dst, fmt.Errorf("statebackend: state %q has restored incremental data, which a key group's payload cannot hold", name)
			}
			dst = appendSection(dst, name, p.typ, 0, seg.data)
			n++
		}
	}
	return finishChunk(dst, lenAt, n), nil
}

// snapshotter is the registered state name as a Snapshotter, nil for a
// derived state (left out of snapshots).
func (b *Keyed[K]) snapshotter(name string) (Snapshotter, error) {
	s := b.states[name]
	sn, ok := s.(Snapshotter)
	if !ok {
		return nil, fmt.Errorf("statebackend: state %q (%T) cannot be snapshotted", name, s)
	}
	if d, ok := s.(Derived); ok && d.Derived() {
		return nil, nil
	}
	return sn, nil
}

// finishChunk writes n, the number of sections of the key-group payload
// that starts at dst[lenAt] (where one byte was reserved for it).
func finishChunk(dst []byte, lenAt, n int) []byte {
	if n < 0x80 {
		dst[lenAt] = byte(n)
		return dst
	}
	var tmp [binary.MaxVarintLen64]byte
	enc := binary.AppendUvarint(tmp[:0], uint64(n))
	dst = slices.Insert(dst, lenAt+1, enc[1:]...)
	copy(dst[lenAt:], enc)
	return dst
}

// snapshotState calls SnapshotKeyGroup, turning a panic (a user codec's
// Append, e.g. codec.EncodeError) into an error.
func snapshotState(s Snapshotter, idx int, dst []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("encoding panicked: %v", r)
		}
	}()
	return s.SnapshotKeyGroup(idx, dst)
}

// restoreState calls RestoreKeyGroup, turning a panic (a user codec's
// Decode) into an ErrCorruptSnapshot error.
func restoreState(s Snapshotter, idx int, src []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("decoding panicked: %v", r)
		}
	}()
	return s.RestoreKeyGroup(idx, src)
}

// appendSection appends a state's section; kind 0 leaves the kind byte
// out (the payload of Keyed.SnapshotKeyGroup, which has no version).
func appendSection(dst []byte, name, typ string, kind byte, data []byte) []byte {
	dst = appendString(dst, name)
	dst = appendString(dst, typ)
	if kind != 0 {
		dst = append(dst, kind)
	}
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// RestoreKeyGroup restores the payload of key group kg (as written by
// SnapshotKeyGroup) into the backend: registered states get their data at
// once, the data of other states waits for their registration. kg must be
// in the backend's range and not restored before.
func (b *Keyed[K]) RestoreKeyGroup(kg int, payload []byte) error {
	if !b.rng.Contains(kg) {
		return fmt.Errorf("statebackend: key group %d is outside this backend's range %v", kg, b.rng)
	}
	secs, err := parsePayload(payload, false)
	if err != nil {
		return fmt.Errorf("key group %d: %w", kg, err)
	}
	return b.applyKeyGroup(kg, secs, nil, false)
}

type section struct {
	name, typ string
	kind      byte
	data      []byte
}

// parsePayload splits a key group's payload into its states' sections
// (with kinds: version 4 streams; without, every section is full). The
// sections' data alias payload.
func parsePayload(p []byte, kinds bool) ([]section, error) {
	d := decoder{b: p}
	n, err := d.count(3) // a section is at least 3 bytes
	if err != nil {
		return nil, fmt.Errorf("number of states: %w", err)
	}
	secs := make([]section, 0, n)
	for i := range n {
		name, err := d.string()
		if err != nil {
			return nil, fmt.Errorf("name of state %d: %w", i, err)
		}
		typ, err := d.string()
		if err != nil {
			return nil, fmt.Errorf("type of state %q: %w", name, err)
		}
		kind := byte(kindFull)
		if kinds {
			if kind, err = d.byte(); err != nil {
				return nil, fmt.Errorf("kind of state %q: %w", name, err)
			}
			if kind != kindFull && kind != kindReplace && kind != kindDelta {
				return nil, corruptf("state %q: unknown section kind %#x", name, kind)
			}
		}
		data, err := d.bytes()
		if err != nil {
			return nil, fmt.Errorf("data of state %q: %w", name, err)
		}
		if len(data) == 0 && kind != kindReplace {
			return nil, corruptf("state %q: empty section", name)
		}
		// A state's sections: at most one full or replace section, first,
		// then deltas.
		for _, s := range secs {
			if s.name == name && (kind != kindDelta || s.typ != typ) {
				return nil, corruptf("state %q appears twice", name)
			}
		}
		secs = append(secs, section{name, typ, kind, data})
	}
	if d.rest() != 0 {
		return nil, corruptf("%d bytes after the last state", d.rest())
	}
	return secs, nil
}

// applyKeyGroup restores the sections of key group kg; stored is what the
// stream's schema section says of its states (nil before version 3). A
// delta stream's key groups follow their base's, so they may be restored
// already.
func (b *Keyed[K]) applyKeyGroup(kg int, secs []section, stored map[string]storedState, delta bool) error {
	idx := kg - b.rng.Start
	if b.restored == nil {
		b.restored = make([]bool, b.rng.Len())
	}
	if b.restored[idx] && !delta {
		return fmt.Errorf("statebackend: key group %d restored twice", kg)
	}
	b.restored[idx] = true
	for _, s := range secs {
		if st, ok := b.states[s.name]; ok {
			sn, ok := st.(Snapshotter)
			if !ok {
				return fmt.Errorf("statebackend: state %q (%T) cannot be restored", s.name, st)
			}
			if err := b.checkCompatible(s.name, s.typ, stored[s.name].Schema, sn); err != nil {
				return err
			}
			if err := applySection(sn, idx, s.kind, s.data); err != nil {
				return fmt.Errorf("statebackend: restoring state %q (%s), key group %d: %w", s.name, s.typ, kg, err)
			}
			continue
		}
		p, ok := b.pending[s.name]
		if !ok {
			if b.pending == nil {
				b.pending = map[string]*pendingState{}
			}
			p = &pendingState{typ: s.typ, schema: stored[s.name].Schema, data: map[int][]segment{}}
			b.pending[s.name] = p
			b.pendingOrder = append(b.pendingOrder, s.name)
			b.schemaSection = nil
		} else if p.typ != s.typ {
			return fmt.Errorf("statebackend: state %q has type %s in key group %d but %s in others", s.name, s.typ, kg, p.typ)
		}
		p.data[idx] = addSegment(p.data[idx], s.kind, s.data)
	}
	return nil
}

// claimPending restores the waiting data of state name into s, which is
// being registered.
func (b *Keyed[K]) claimPending(name string, s any) error {
	p, ok := b.pending[name]
	if !ok {
		return nil
	}
	sn, ok := s.(Snapshotter)
	if !ok {
		return fmt.Errorf("statebackend: state %q has restored data but %T cannot be restored", name, s)
	}
	if err := b.checkCompatible(name, p.typ, p.schema, sn); err != nil {
		return err
	}
	idxs := make([]int, 0, len(p.data))
	for idx := range p.data {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	for _, idx := range idxs {
		for _, seg := range p.data[idx] {
			if err := applySection(sn, idx, seg.kind, seg.data); err != nil {
				return fmt.Errorf("statebackend: restoring state %q (%s), key group %d: %w", name, p.typ, b.rng.Start+idx, err)
			}
		}
	}
	delete(b.pending, name)
	b.pendingOrder = slices.DeleteFunc(b.pendingOrder, func(n string) bool { return n == name })
	return nil
}

// PendingStates lists the states that have restored data but are not
// registered yet.
func (b *Keyed[K]) PendingStates() []string { return append([]string(nil), b.pendingOrder...) }

// Snapshot writes the state of every key group of the backend's range to w
// in the snapshot format (see the top of snapshot.go). It runs on the task
// goroutine, between records. On error, what was written is not a valid
// snapshot.
func (b *Keyed[K]) Snapshot(w io.Writer) error {
	write, err := b.SnapshotAsync()
	if err != nil {
		return err
	}
	return write(w)
}

// Derived is implemented by states whose contents their operator rebuilds
// from its other state after a restore (the timers a window operator
// re-registers for its windows): while Derived reports true, snapshots
// leave the state out, which saves encoding what a restore can recompute.
type Derived interface{ Derived() bool }

// Freezer is implemented by states that can leave the encoding of a
// snapshot to another goroutine. Freeze captures the state as it is now,
// cheaply (its maps are copied, not its values), and returns the encoder of
// that capture (SnapshotKeyGroup's output for key-group index kg), which
// may run on any goroutine while the task goes on changing the state. ok
// false means the state cannot be captured that way now: it is encoded at
// once instead.
type Freezer interface {
	Freeze() (enc func(kg int, dst []byte) ([]byte, error), ok bool)
}

// frozenState is a state captured by Freeze for a snapshot's later part.
type frozenState struct {
	name, typ string
	kind      byte
	enc       func(kg int, dst []byte) ([]byte, error)
	// deltaEnc, set instead of enc for a delta, may replace a key group.
	deltaEnc func(kg int, dst []byte) ([]byte, bool, error)
}

// encode encodes key-group index idx, turning a panic (a user codec's
// Append) into an error, and returns the section's kind.
func (f frozenState) encode(idx int, dst []byte) (out []byte, kind byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("encoding panicked: %v", r)
		}
	}()
	if f.deltaEnc == nil {
		out, err = f.enc(idx, dst)
		return out, f.kind, err
	}
	out, replace, err := f.deltaEnc(idx, dst)
	if replace {
		return out, kindReplace, err
	}
	return out, kindDelta, err
}

// SnapshotAsync is Snapshot in two parts, for asynchronous checkpoints. It
// captures the state now — encoding the states that cannot be frozen
// (Freezer) and copying the maps of those that can — and returns write,
// which writes the snapshot of that moment to w. write may run on another
// goroutine while the task goes on using the backend, and runs at most
// once. An error from a state's encoding in the synchronous part is
// returned at once; one in the frozen part, by write. It is
// SnapshotAsyncMode(SnapshotFull).
func (b *Keyed[K]) SnapshotAsync() (write func(w io.Writer) error, err error) {
	write, _, err = b.SnapshotAsyncMode(SnapshotFull)
	return write, err
}

// SnapshotAsyncMode is SnapshotAsync for the modes of incremental
// snapshots (incremental.go). delta says whether write writes a delta of
// the open chain (SnapshotDelta without an open chain writes a base). On
// error no chain changes: the next delta still holds every change.
func (b *Keyed[K]) SnapshotAsyncMode(mode SnapshotMode) (write func(w io.Writer) error, delta bool, err error) {
	delta = mode == SnapshotDelta && b.chainOpen
	defer func() {
		if err != nil && delta {
			// Deltas may have been frozen (their keys no longer recorded):
			// the chain cannot go on, the next snapshot is a base.
			b.chainOpen = false
		}
	}()
	// Per registered state: how it is written. Nothing is frozen (which
	// moves epochs and restarts tracking) until every state is known to
	// be snapshottable.
	type plan struct {
		sn    Snapshotter
		kind  byte
		eager bool
	}
	plans := make([]plan, len(b.order))
	for i, name := range b.order {
		sn, err := b.snapshotter(name)
		if err != nil {
			return nil, false, err
		}
		plans[i] = plan{sn: sn, kind: kindFull}
		if delta {
			plans[i].kind = kindReplace
		}
	}
	var frozen []frozenState
	var trackers []DeltaTracker
	for i, name := range b.order {
		pl := &plans[i]
		if pl.sn == nil {
			continue
		}
		st := b.states[name]
		if dt, ok := st.(DeltaTracker); ok && delta {
			if enc, ok := dt.FreezeDelta(); ok {
				frozen = append(frozen, frozenState{name: name, typ: pl.sn.StateType(), kind: kindDelta, deltaEnc: enc})
				continue
			}
		}
		if f, ok := st.(Freezer); ok {
			if enc, ok := f.Freeze(); ok {
				frozen = append(frozen, frozenState{name: name, typ: pl.sn.StateType(), kind: pl.kind, enc: enc})
				if dt, ok := st.(DeltaTracker); ok && mode != SnapshotFull {
					trackers = append(trackers, dt)
				}
				continue
			}
		}
		pl.eager = true
		if p, ok := pl.sn.(SnapshotPreparer); ok {
			p.PrepareSnapshot()
			defer p.FinishSnapshot()
		}
	}
	var flags uint64
	if delta {
		flags |= flagDelta
	}
	head := append(make([]byte, 0, 64), snapshotMagic...)
	head = append(head, snapshotVersion)
	head = binary.AppendUvarint(head, uint64(b.maxPar))
	head = binary.AppendUvarint(head, uint64(b.rng.Start))
	head = binary.AppendUvarint(head, uint64(b.rng.End))
	head = binary.AppendUvarint(head, flags)
	head = binary.LittleEndian.AppendUint32(head, crc32.Checksum(head[len(snapshotMagic):], castagnoli))
	head = b.appendSchemaSection(head)

	// The eager part: per key group, the sections of the states encoded
	// now and of restored data not registered yet (immutable, and in a
	// delta unchanged since the base, which holds it), back to back in one
	// buffer.
	var eagerBuf []byte
	ends := make([]int, b.rng.Len())
	counts := make([]int, b.rng.Len())
	scratch := b.scratch[:0]
	defer func() { b.scratch = scratch[:0] }()
	for idx := range b.rng.Len() {
		kg := b.rng.Start + idx
		for i, name := range b.order {
			pl := plans[i]
			if !pl.eager {
				continue
			}
			scratch, err = snapshotState(pl.sn, idx, scratch[:0])
			if err != nil {
				return nil, false, fmt.Errorf("statebackend: snapshot of state %q (%s), key group %d: %w", name, pl.sn.StateType(), kg, err)
			}
			if len(scratch) > 0 || pl.kind == kindReplace {
				eagerBuf = appendSection(eagerBuf, name, pl.sn.StateType(), pl.kind, scratch)
				counts[idx]++
			}
		}
		if !delta {
			for _, name := range b.pendingOrder {
				p := b.pending[name]
				for _, seg := range p.data[idx] {
					eagerBuf = appendSection(eagerBuf, name, p.typ, seg.kind, seg.data)
					counts[idx]++
				}
			}
		}
		ends[idx] = len(eagerBuf)
	}
	// Only now, with nothing left to fail, does a chain start.
	for _, dt := range trackers {
		dt.StartTracking()
	}
	if mode == SnapshotBase || mode == SnapshotDelta && !delta {
		b.chainOpen = true
		for i, name := range b.order {
			// Eager states that track (a table that could not be frozen
			// this time) start from this base too.
			if dt, ok := b.states[name].(DeltaTracker); ok && plans[i].eager {
				dt.StartTracking()
			}
		}
	}
	rng := b.rng
	return func(w io.Writer) error {
		if _, err := w.Write(head); err != nil {
			return err
		}
		// Each chunk is built after a reserved prefix, where its header
		// is written once the payload length is known, so it goes out in
		// one Write.
		const reserve = 1 + 2*binary.MaxVarintLen64
		buf := make([]byte, 0, 4096)
		var scratch []byte
		from := 0
		for idx := range rng.Len() {
			kg := rng.Start + idx
			buf = append(buf[:reserve], 0) // numStates; fixed by finishChunk
			buf = append(buf, eagerBuf[from:ends[idx]]...)
			from = ends[idx]
			n := counts[idx]
			for _, f := range frozen {
				var err error
				kind := f.kind
				scratch, kind, err = f.encode(idx, scratch[:0])
				if err != nil {
					return fmt.Errorf("statebackend: snapshot of state %q (%s), key group %d: %w", f.name, f.typ, kg, err)
				}
				if len(scratch) > 0 || kind == kindReplace {
					buf = appendSection(buf, f.name, f.typ, kind, scratch)
					n++
				}
			}
			buf = finishChunk(buf, reserve, n)
			var hdr [reserve]byte
			h := append(hdr[:0], tagKeyGroup)
			h = binary.AppendUvarint(h, uint64(kg))
			h = binary.AppendUvarint(h, uint64(len(buf)-reserve))
			start := reserve - len(h)
			copy(buf[start:], h)
			buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf[start:], castagnoli))
			if _, err := w.Write(buf[start:]); err != nil {
				return err
			}
		}
		buf = append(buf[:0], tagEnd)
		buf = binary.AppendUvarint(buf, uint64(rng.Len()))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
		_, err := w.Write(buf)
		return err
	}, delta, nil
}

// SnapshotInfo describes a snapshot stream's header.
type SnapshotInfo struct {
	Version        int
	MaxParallelism int
	// Range is the key-group range of the backend that wrote it.
	Range keygroup.Range
	// Delta says the stream is a delta of an incremental chain: restore
	// it after its base and the deltas before it.
	Delta bool
}

// Restore reads one snapshot written by Snapshot (of a backend with the
// same maxParallelism and any range) and restores the key groups that lie
// in this backend's range; the others are read, checked and skipped. Call
// it once per snapshot whose range overlaps this backend's (after a
// rescale, several). The whole snapshot is read and checksummed before any
// key group is applied, so a corrupt snapshot changes nothing; an error
// while applying (a state registered with another type, data its codec
// cannot decode) leaves the backend partially restored. Restore reads past
// the end of the snapshot unless r is an io.ByteReader.
func (b *Keyed[K]) Restore(r io.Reader) error {
	type kgPayload struct {
		kg   int
		secs []section
	}
	var mine []kgPayload
	var stored map[string]storedState
	var head SnapshotInfo
	err := walkSnapshot(r, func(info SnapshotInfo, states []storedState) error {
		head = info
		if info.MaxParallelism != b.maxPar {
			return fmt.Errorf("statebackend: snapshot has maxParallelism %d, this job %d: key groups do not line up", info.MaxParallelism, b.maxPar)
		}
		stored = make(map[string]storedState, len(states))
		for _, s := range states {
			stored[s.Name] = s
		}
		return nil
	}, func(kg int, payload []byte) error {
		if !b.rng.Contains(kg) {
			return nil
		}
		secs, err := parsePayload(payload, head.Version >= kindVersion)
		if err != nil {
			return fmt.Errorf("key group %d: %w", kg, err)
		}
		if b.restored != nil && b.restored[kg-b.rng.Start] && !head.Delta {
			return fmt.Errorf("statebackend: key group %d restored twice", kg)
		}
		mine = append(mine, kgPayload{kg, secs})
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range mine {
		if err := b.applyKeyGroup(p.kg, p.secs, stored, head.Delta); err != nil {
			return err
		}
	}
	return nil
}

// walkSnapshot reads a whole snapshot stream: it passes the header and the
// schema section (nil before version 3) to head, then every key group's
// payload, in order, to chunk, and checks the trailer. An error of head or
// chunk stops the walk and is returned.
func walkSnapshot(r io.Reader, head func(SnapshotInfo, []storedState) error, chunk func(kg int, payload []byte) error) error {
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	info, err := readHeader(br)
	if err != nil {
		return err
	}
	var states []storedState
	if info.Version >= schemaVersion {
		if states, err = readSchemaSection(br); err != nil {
			return err
		}
	}
	if err := head(info, states); err != nil {
		return err
	}
	next := info.Range.Start // chunks come in key-group order, one each
	for {
		tag, err := br.ReadByte()
		if err != nil {
			return corruptf("truncated after key group %d: %v", next-1, noEOF(err))
		}
		switch tag {
		case tagKeyGroup:
		case tagEnd:
			if err := readTrailer(br, next-info.Range.Start); err != nil {
				return err
			}
			if next != info.Range.End+1 {
				return corruptf("snapshot ends after key group %d, its range is %d..%d", next-1, info.Range.Start, info.Range.End)
			}
			return nil
		default:
			return corruptf("bad chunk tag %#x after key group %d", tag, next-1)
		}
		kg, payload, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("key group %d: %w", next, err)
		}
		if kg != next {
			return corruptf("chunk of key group %d where %d was expected", kg, next)
		}
		next++
		if err := chunk(kg, payload); err != nil {
			return err
		}
	}
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadSnapshotInfo reads the header of a snapshot.
func ReadSnapshotInfo(r io.Reader) (SnapshotInfo, error) {
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return readHeader(br)
}

func readHeader(br byteReader) (SnapshotInfo, error) {
	var magic [len(snapshotMagic) + 1]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return SnapshotInfo{}, corruptf("reading header: %v", noEOF(err))
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return SnapshotInfo{}, corruptf("not a keyed-state snapshot (magic %q)", magic[:len(snapshotMagic)])
	}
	v := magic[len(snapshotMagic)]
	if v < oldestVersion || v > snapshotVersion {
		return SnapshotInfo{}, fmt.Errorf("%w %d (this build reads versions %d to %d)", ErrUnsupportedVersion, v, oldestVersion, snapshotVersion)
	}
	nvals := 3
	if v >= kindVersion {
		nvals = 4 // and the flags
	}
	var vals [4]uint64
	for i := range vals[:nvals] {
		v, err := binary.ReadUvarint(br)
		if err != nil {
			return SnapshotInfo{}, corruptf("reading header: %v", noEOF(err))
		}
		vals[i] = v
	}
	h := []byte{v}
	for _, v := range vals[:nvals] {
		h = binary.AppendUvarint(h, v)
	}
	if err := checkCRC(br, h); err != nil {
		return SnapshotInfo{}, fmt.Errorf("header: %w", err)
	}
	const limit = keygroup.UpperBoundMaxParallelism
	maxPar, start, end := vals[0], vals[1], vals[2]
	if maxPar < 1 || maxPar > limit || start > end || end >= maxPar {
		return SnapshotInfo{}, corruptf("header: bad key-group range %d..%d of %d", start, end, maxPar)
	}
	if vals[3] > flagDelta {
		return SnapshotInfo{}, corruptf("header: unknown flags %#x", vals[3])
	}
	return SnapshotInfo{Version: int(v), MaxParallelism: int(maxPar), Range: keygroup.Range{Start: int(start), End: int(end)}, Delta: vals[3]&flagDelta != 0}, nil
}

func checkCRC(br byteReader, covered []byte) error {
	var c [4]byte
	if _, err := io.ReadFull(br, c[:]); err != nil {
		return corruptf("reading checksum: %v", noEOF(err))
	}
	if got, want := binary.LittleEndian.Uint32(c[:]), crc32.Checksum(covered, castagnoli); got != want {
		return corruptf("checksum mismatch (stored %08x, computed %08x)", got, want)
	}
	return nil
}

// readChunk reads a key-group chunk after its tag.
func readChunk(br byteReader) (int, []byte, error) {
	kg, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, nil, corruptf("reading chunk header: %v", noEOF(err))
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, nil, corruptf("reading chunk header: %v", noEOF(err))
	}
	if kg >= keygroup.UpperBoundMaxParallelism || n > 1<<40 {
		return 0, nil, corruptf("bad chunk header (key group %d, %d bytes)", kg, n)
	}
	// The chunk is read with its header in front, so the checksum covers
	// one contiguous buffer.
	h := append(make([]byte, 0, 2*binary.MaxVarintLen64+1), tagKeyGroup)
	h = binary.AppendUvarint(h, kg)
	h = binary.AppendUvarint(h, n)
	buf, err := readN(br, h, n)
	if err != nil {
		return 0, nil, corruptf("reading %d bytes of key group %d: %v", n, kg, noEOF(err))
	}
	if err := checkCRC(br, buf); err != nil {
		return 0, nil, err
	}
	return int(kg), buf[len(h):], nil
}

// readN appends n bytes of r to prefix. Large lengths are read in steps, so
// a corrupt length fails at the end of the input instead of allocating it.
func readN(r io.Reader, prefix []byte, n uint64) ([]byte, error) {
	const step = 1 << 20
	if n <= step {
		buf := make([]byte, len(prefix)+int(n))
		copy(buf, prefix)
		_, err := io.ReadFull(r, buf[len(prefix):])
		return buf, err
	}
	buf := prefix
	for n > 0 {
		k := min(n, step)
		buf = slices.Grow(buf, int(k))
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+int(k)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
		n -= k
	}
	return buf, nil
}

func readTrailer(br byteReader, chunks int) error {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return corruptf("reading trailer: %v", noEOF(err))
	}
	h := binary.AppendUvarint([]byte{tagEnd}, n)
	if err := checkCRC(br, h); err != nil {
		return fmt.Errorf("trailer: %w", err)
	}
	if n != uint64(chunks) {
		return corruptf("trailer counts %d key groups, the snapshot has %d", n, chunks)
	}
	return nil
}
