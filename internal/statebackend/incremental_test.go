package statebackend_test

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/statebackend"
)

// incStates are the states of the incremental tests: a table (tracked:
// delta sections) and a value and a list state (replace sections).
type incStates struct {
	b   *statebackend.Keyed[string]
	tbl *statebackend.Table[string, int64]
	val *statebackend.Value[string, int64]
	lst *statebackend.List[string, int64]
}

func newIncStates(t *testing.T, maxPar, p, i int) *incStates {
	b, _ := newStringBackend(t, maxPar, p, i)
	return &incStates{b: b,
		tbl: statebackend.NewTable[string, int64](b.Range().Len()),
		val: statebackend.NewValue[string, int64](b, statebackend.TTL{}),
		lst: statebackend.NewList[string, int64](b, statebackend.TTL{}),
	}
}

func (s *incStates) register(t *testing.T) {
	t.Helper()
	for name, st := range map[string]any{"tbl": s.tbl, "val": s.val, "lst": s.lst} {
		_, err := s.b.Register(name, st)
		require.NoError(t, err)
	}
}

// incModel is what the states should hold.
type incModel struct {
	tbl, val map[string]int64
	lst      map[string][]int64
}

func (m incModel) clone() incModel {
	c := incModel{tbl: maps.Clone(m.tbl), val: maps.Clone(m.val), lst: map[string][]int64{}}
	for k, v := range m.lst {
		c.lst[k] = slices.Clone(v)
	}
	return c
}

// check compares the states with the model for the keys in the backend's
// range.
func (s *incStates) check(t *testing.T, m incModel, ks []string, what string) {
	t.Helper()
	for _, k := range ks {
		if !s.b.Range().Contains(s.b.KeyGroupOf(k)) {
			continue
		}
		s.b.SetCurrentKey(k)
		got, ok := s.tbl.Get(s.b.KeyGroupIndex(), k)
		want, wok := m.tbl[k]
		require.Equal(t, wok, ok, "%s: table key %s present", what, k)
		require.Equal(t, want, got, "%s: table key %s", what, k)
		v, ok := s.val.Value()
		wv, wok := m.val[k]
		require.Equal(t, wok, ok, "%s: value key %s present", what, k)
		require.Equal(t, wv, v, "%s: value key %s", what, k)
		require.Equal(t, m.lst[k], s.lst.Get(), "%s: list key %s", what, k)
	}
}

// restoreChain restores the streams into a fresh backend of subtask i of
// p, registering the states before the restore or after it (the data then
// waits as pending segments).
func restoreChain(t *testing.T, chain [][]byte, p, i int, registerFirst bool) *incStates {
	t.Helper()
	s := newIncStates(t, 16, p, i)
	if registerFirst {
		s.register(t)
	}
	for _, c := range chain {
		require.NoError(t, s.b.Restore(bytes.NewReader(c)))
	}
	if !registerFirst {
		s.register(t)
	}
	return s
}

// Random changes, snapshots in random modes written late (while the
// states change on), failed uploads: restoring the chain's base and deltas,
// in any parallelism and with the states registered before or after, gives
// exactly the states at the last snapshot; a full snapshot taken in the
// middle of a chain is self-contained and does not disturb the chain.
func TestIncrementalChainRestoresExactly(t *testing.T) {
	// Many keys changed now and then (changes logged key by key), and a
	// few keys changed again and again (logs outgrow their key groups,
	// which are written whole).
	t.Run("sparse", func(t *testing.T) { incrementalChains(t, keys(60), 20) })
	t.Run("hot", func(t *testing.T) { incrementalChains(t, keys(6), 300) })
}

func incrementalChains(t *testing.T, ks []string, every int) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newIncStates(t, 16, 1, 0)
		s.register(t)
		m := incModel{tbl: map[string]int64{}, val: map[string]int64{}, lst: map[string][]int64{}}
		var chain [][]byte
		deltas, bases := 0, 0
		forceBase, opened := false, false
		type pendingWrite struct {
			write func(*bytes.Buffer) error
			mode  statebackend.SnapshotMode
			delta bool
			model incModel
		}
		var pend *pendingWrite
		finish := func() {
			if pend == nil {
				return
			}
			p := pend
			pend = nil
			var buf bytes.Buffer
			require.NoError(t, p.write(&buf), "seed %d", seed)
			what := "seed " + strconv.Itoa(int(seed))
			if p.mode == statebackend.SnapshotFull {
				restoreChain(t, [][]byte{buf.Bytes()}, 1, 0, true).check(t, p.model, ks, what+" savepoint")
				return
			}
			if rng.IntN(10) == 0 {
				// The upload failed: the chain cannot go on.
				forceBase, chain = true, nil
				return
			}
			if p.delta {
				require.NotEmpty(t, chain, "%s: a delta needs a base", what)
				chain = append(chain, buf.Bytes())
				deltas++
			} else {
				chain = [][]byte{buf.Bytes()}
				bases++
			}
			info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(buf.Bytes()))
			require.NoError(t, err)
			require.Equal(t, p.delta, info.Delta)
			for _, first := range []bool{true, false} {
				restoreChain(t, chain, 1, 0, first).check(t, p.model, ks, what+" chain")
				for i := range 2 {
					restoreChain(t, chain, 2, i, first).check(t, p.model, ks, what+" rescaled chain")
				}
			}
		}
		for step := range 30 * every {
			k := ks[rng.IntN(len(ks))]
			s.b.SetCurrentKey(k)
			kg := s.b.KeyGroupIndex()
			switch rng.IntN(6) {
			case 0, 1:
				v := int64(step)
				s.tbl.Put(kg, k, v)
				m.tbl[k] = v
			case 2:
				s.tbl.Delete(kg, k)
				delete(m.tbl, k)
			case 3:
				s.val.Update(int64(step))
				m.val[k] = int64(step)
			case 4:
				if rng.IntN(3) == 0 {
					s.val.Clear()
					delete(m.val, k)
					s.lst.Clear()
					delete(m.lst, k)
				} else {
					s.lst.Add(int64(step))
					m.lst[k] = append(m.lst[k], int64(step))
				}
			}
			if step%every == every-1 {
				finish() // the previous upload ends before the next snapshot
				mode := statebackend.SnapshotDelta
				switch r := rng.IntN(10); {
				case forceBase || r == 0:
					mode = statebackend.SnapshotBase
				case r == 1:
					mode = statebackend.SnapshotFull
				}
				if mode != statebackend.SnapshotFull {
					forceBase = false
				}
				w, delta, err := s.b.SnapshotAsyncMode(mode)
				require.NoError(t, err)
				// A delta needs an open chain: a base or delta-mode
				// snapshot before.
				require.Equal(t, mode == statebackend.SnapshotDelta && opened, delta)
				if mode != statebackend.SnapshotFull {
					opened = true
				}
				pend = &pendingWrite{write: func(b *bytes.Buffer) error { return w(b) }, mode: mode, delta: delta, model: m.clone()}
			}
		}
		finish()
		require.Positive(t, deltas, "seed %d: deltas were written", seed)
		require.Positive(t, bases, "seed %d: bases were written", seed)
	}
}

// A delta holds what changed, not the whole state.
func TestIncrementalDeltaIsSmall(t *testing.T) {
	ks := keys(5000)
	s := newIncStates(t, 16, 1, 0)
	s.register(t)
	for i, k := range ks {
		s.b.SetCurrentKey(k)
		s.tbl.Put(s.b.KeyGroupIndex(), k, int64(i))
	}
	size := func(mode statebackend.SnapshotMode) (int, bool) {
		w, delta, err := s.b.SnapshotAsyncMode(mode)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, w(&buf))
		return buf.Len(), delta
	}
	base, delta := size(statebackend.SnapshotBase)
	require.False(t, delta)
	for _, k := range ks[:10] {
		s.b.SetCurrentKey(k)
		s.tbl.Put(s.b.KeyGroupIndex(), k, -1)
	}
	d, delta := size(statebackend.SnapshotDelta)
	require.True(t, delta)
	require.Less(t, d, base/20, "a delta of 10 of 5000 keys")
	empty, delta := size(statebackend.SnapshotDelta)
	require.True(t, delta)
	require.Less(t, empty, d)
}

// A corrupt delta is refused as a corrupt snapshot.
func TestIncrementalCorruptDelta(t *testing.T) {
	s := newIncStates(t, 16, 1, 0)
	s.register(t)
	s.b.SetCurrentKey("a")
	s.tbl.Put(s.b.KeyGroupIndex(), "a", 1)
	var base, delta bytes.Buffer
	w, _, err := s.b.SnapshotAsyncMode(statebackend.SnapshotBase)
	require.NoError(t, err)
	require.NoError(t, w(&base))
	s.tbl.Delete(s.b.KeyGroupIndex(), "a")
	w, _, err = s.b.SnapshotAsyncMode(statebackend.SnapshotDelta)
	require.NoError(t, err)
	require.NoError(t, w(&delta))
	d := delta.Bytes()
	for i := len("STRMKEYS") + 1; i < len(d); i += 7 {
		c := slices.Clone(d)
		c[i] ^= 0x40
		r := newIncStates(t, 16, 1, 0)
		r.register(t)
		require.NoError(t, r.b.Restore(bytes.NewReader(base.Bytes())))
		require.ErrorIs(t, r.b.Restore(bytes.NewReader(c)), statebackend.ErrCorruptSnapshot, "byte %d flipped", i)
	}
}

// opaqueState is a state that cannot count its entries.
type opaqueState struct{}

func (opaqueState) StateType() string                                   { return "opaque" }
func (opaqueState) SnapshotKeyGroup(kg int, dst []byte) ([]byte, error) { return dst, nil }
func (opaqueState) RestoreKeyGroup(kg int, src []byte) error            { return nil }

// Entries counts what every registered state holds, and gives up (ok
// false) for a state that cannot count and for restored data still
// waiting for its state: the chain then falls back to the base's size.
func TestKeyedEntries(t *testing.T) {
	ks := keys(300)
	s := newIncStates(t, 16, 1, 0)
	s.register(t)
	n, ok := s.b.Entries()
	require.True(t, ok)
	require.Zero(t, n)
	for i, k := range ks {
		s.b.SetCurrentKey(k)
		s.tbl.Put(s.b.KeyGroupIndex(), k, int64(i))
		if i%2 == 0 {
			s.val.Update(1)
		}
		if i%3 == 0 {
			s.lst.Add(1)
		}
	}
	n, ok = s.b.Entries()
	require.True(t, ok)
	require.Equal(t, 300+150+100, n)

	var buf bytes.Buffer
	require.NoError(t, s.b.Snapshot(&buf))
	r := newIncStates(t, 16, 1, 0)
	require.NoError(t, r.b.Restore(bytes.NewReader(buf.Bytes())))
	_, ok = r.b.Entries()
	require.False(t, ok, "restored data not registered yet is in no count")
	r.register(t)
	n, ok = r.b.Entries()
	require.True(t, ok)
	require.Equal(t, 550, n)

	_, err := r.b.Register("opaque", opaqueState{})
	require.NoError(t, err)
	_, ok = r.b.Entries()
	require.False(t, ok, "a state that cannot count")
}
