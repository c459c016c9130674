package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Snapshots of timers, per key group. Timers.State returns a
// statebackend.Snapshotter over the timer service; an operator registers it
// with its keyed backend (under TimersStateName) and the backend's
// snapshots carry the timers with the state:
//
//	data  = uvarint nEvent | nEvent × timer | uvarint nProc | nProc × timer
//	timer = key | namespace | varint time
//
// Keys use the backend's key codec, namespaces codec.For[N] (or the codec
// set with SetNamespaceCodec). The watermark is not part of it: after a
// restore the operator starts again from MinWatermark, as in Flink.

// TimersStateName is the name operators register their timer service's
// state under in the keyed backend.
const TimersStateName = "_timers"

// TimerState is the keyed-state view of a Timers: it snapshots and restores
// the timers per key group.
type TimerState[K, N comparable] struct {
	t          *Timers[K, N]
	nsOverride codec.Codec[N]
	nc         codec.Codec[N]
	nsErr      error
	resolved   bool
	tag        string
	// buckets hold the live timers per key-group index while a snapshot is
	// taken (PrepareSnapshot … FinishSnapshot).
	event, proc [][]Timer[K, N]
	derived     bool
}

// SetDerived says whether the operator registers its timers again from its
// other state after a restore (a window operator whose trigger is the
// default one has a timer per window): derived timers are left out of
// snapshots (statebackend.Derived). Timers restored from an older snapshot
// that has them are still loaded; a timer registered twice is one timer.
func (s *TimerState[K, N]) SetDerived(d bool) { s.derived = d }

// Derived implements statebackend.Derived.
func (s *TimerState[K, N]) Derived() bool { return s.derived }

// NumEntries implements statebackend.EntryCounter: the timers a snapshot
// writes.
func (s *TimerState[K, N]) NumEntries() int {
	if s.derived {
		return 0
	}
	return s.t.NumEventTimers() + s.t.NumProcessingTimers()
}

// State returns the timers' snapshot view. Register it with the backend:
//
//	b.Register(runtime.TimersStateName, timers.State())
func (t *Timers[K, N]) State() *TimerState[K, N] {
	return &TimerState[K, N]{t: t, tag: fmt.Sprintf("timers<%v,%v>", reflect.TypeFor[K](), reflect.TypeFor[N]())}
}

// SetNamespaceCodec sets the codec of the timers' namespaces in snapshots
// (nil: codec.For[N]).
func (s *TimerState[K, N]) SetNamespaceCodec(c codec.Codec[N]) {
	s.nsOverride, s.resolved = c, false
}

func (s *TimerState[K, N]) nsCodec() (codec.Codec[N], error) {
	if !s.resolved {
		s.resolved = true
		s.nc, s.nsErr = s.nsOverride, nil
		if s.nc == nil {
			s.nc, s.nsErr = codec.For[N]()
			if s.nsErr != nil {
				s.nsErr = fmt.Errorf("no codec for timer namespace type %v: %w", reflect.TypeFor[N](), s.nsErr)
			}
		}
	}
	return s.nc, s.nsErr
}

// StateType implements statebackend.Snapshotter.
func (s *TimerState[K, N]) StateType() string { return s.tag }

// PrepareSnapshot implements statebackend.SnapshotPreparer: it sorts the
// live timers into key groups once, so the per-key-group snapshots do not
// each scan every timer.
func (s *TimerState[K, N]) PrepareSnapshot() {
	t := s.t
	rng := t.backend.Range()
	s.event = bucket(t.backend, rng.Start, rng.Len(), t.event.set)
	s.proc = bucket(t.backend, rng.Start, rng.Len(), t.proc.set)
}

// FinishSnapshot implements statebackend.SnapshotPreparer.
func (s *TimerState[K, N]) FinishSnapshot() { s.event, s.proc = nil, nil }

func bucket[K, N comparable](b *statebackend.Keyed[K], start, n int, set map[Timer[K, N]]struct{}) [][]Timer[K, N] {
	out := make([][]Timer[K, N], n)
	for tm := range set {
		i := b.KeyGroupOf(tm.Key) - start
		if i >= 0 && i < n {
			out[i] = append(out[i], tm)
		}
	}
	return out
}

// SnapshotKeyGroup implements statebackend.Snapshotter: the pending event-
// and processing-time timers of key-group index kg.
func (s *TimerState[K, N]) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) {
	t := s.t
	rng := t.backend.Range()
	if kg < 0 || kg >= rng.Len() {
		return dst, fmt.Errorf("key-group index %d out of range [0, %d)", kg, rng.Len())
	}
	var ev, pr []Timer[K, N]
	if s.event != nil {
		ev, pr = s.event[kg], s.proc[kg]
	} else {
		ev = inKeyGroup(t.backend, rng.Start+kg, t.event.set)
		pr = inKeyGroup(t.backend, rng.Start+kg, t.proc.set)
	}
	if len(ev) == 0 && len(pr) == 0 {
		return dst, nil
	}
	kc, err := t.backend.KeyCodec()
	if err != nil {
		return dst, err
	}
	nc, err := s.nsCodec()
	if err != nil {
		return dst, err
	}
	for _, l := range [2][]Timer[K, N]{ev, pr} {
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		for _, tm := range l {
			dst = kc.Append(dst, tm.Key)
			dst = nc.Append(dst, tm.NS)
			dst = binary.AppendVarint(dst, tm.TS)
		}
	}
	return dst, nil
}

func inKeyGroup[K, N comparable](b *statebackend.Keyed[K], kg int, set map[Timer[K, N]]struct{}) []Timer[K, N] {
	var out []Timer[K, N]
	for tm := range set {
		if b.KeyGroupOf(tm.Key) == kg {
			out = append(out, tm)
		}
	}
	return out
}

// RestoreKeyGroup implements statebackend.Snapshotter: it registers the
// timers in src (processing-time ones with the task's service too).
func (s *TimerState[K, N]) RestoreKeyGroup(kg int, src []byte) error {
	t := s.t
	rng := t.backend.Range()
	if kg < 0 || kg >= rng.Len() {
		return fmt.Errorf("key-group index %d out of range [0, %d)", kg, rng.Len())
	}
	kc, err := t.backend.KeyCodec()
	if err != nil {
		return err
	}
	nc, err := s.nsCodec()
	if err != nil {
		return err
	}
	var timers [2][]Timer[K, N]
	off := 0
	for q := range timers {
		n, k := binary.Uvarint(src[off:])
		if k <= 0 {
			return corruptf("timer count at byte %d", off)
		}
		off += k
		if n > uint64(len(src)-off) { // a timer takes at least its time byte
			return corruptf("%d timers in %d bytes", n, len(src)-off)
		}
		l := make([]Timer[K, N], 0, int(n))
		for i := range int(n) {
			var tm Timer[K, N]
			if tm.Key, k, err = kc.Decode(src[off:]); err != nil || k < 0 || k > len(src)-off {
				return corruptf("timer %d, key at byte %d: %v", i, off, decodeErr(err))
			}
			off += k
			if got, want := t.backend.KeyGroupOf(tm.Key), rng.Start+kg; got != want {
				return corruptf("timer %d: key %v belongs to key group %d, not %d", i, tm.Key, got, want)
			}
			if tm.NS, k, err = nc.Decode(src[off:]); err != nil || k < 0 || k > len(src)-off {
				return corruptf("timer %d (key %v), namespace at byte %d: %v", i, tm.Key, off, decodeErr(err))
			}
			off += k
			ts, k := binary.Varint(src[off:])
			if k <= 0 {
				return corruptf("timer %d (key %v), time at byte %d", i, tm.Key, off)
			}
			off += k
			tm.TS = ts
			l = append(l, tm)
		}
		timers[q] = l
	}
	if off != len(src) {
		return corruptf("%d bytes after the last timer", len(src)-off)
	}
	for _, tm := range timers[0] {
		t.event.add(tm)
	}
	for _, tm := range timers[1] {
		t.proc.add(tm)
		if tm.TS < t.ptScheduled {
			t.ptScheduled = tm.TS
			t.pt.Register(tm.TS, t.fireProcessing)
		}
	}
	return nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{statebackend.ErrCorruptSnapshot}, args...)...)
}

func decodeErr(err error) error {
	if err == nil {
		return errors.New("codec consumed more bytes than given")
	}
	return err
}

// ClearKeyGroup implements statebackend.KeyGroupClearer: an incremental
// restore replaces a key group's timers with those of a later snapshot
// (timers that fired in between must not come back). The queues drop
// removed timers lazily.
func (s *TimerState[K, N]) ClearKeyGroup(kg int) error {
	t := s.t
	rng := t.backend.Range()
	if kg < 0 || kg >= rng.Len() {
		return fmt.Errorf("key-group index %d out of range [0, %d)", kg, rng.Len())
	}
	for _, q := range []*timerQueue[K, N]{&t.event, &t.proc} {
		for _, tm := range inKeyGroup(t.backend, rng.Start+kg, q.set) {
			q.remove(tm)
		}
	}
	return nil
}
