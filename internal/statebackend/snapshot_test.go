package statebackend_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

type avg struct{ Sum, N int }

type winNS struct {
	Start, End int64
	Name       string
}

// allStates is one of every state kind, registered on one backend.
type allStates struct {
	b     *statebackend.Keyed[string]
	val   *statebackend.Value[string, int64]
	ttl   *statebackend.Value[string, string]
	list  *statebackend.List[string, string]
	m     *statebackend.Map[string, string, int]
	red   *statebackend.Reducing[string, int]
	agg   *statebackend.Aggregating[string, int, avg, float64]
	ns    *statebackend.Namespaced[string, winNS, []int64]
	table *statebackend.Table[string, []int]
}

func newAllStates(t testing.TB, b *statebackend.Keyed[string], register bool) *allStates {
	s := &allStates{
		b:    b,
		val:  statebackend.NewValue[string, int64](b, statebackend.TTL{}),
		ttl:  statebackend.NewValue[string, string](b, statebackend.TTL{TTLMillis: 100}),
		list: statebackend.NewList[string, string](b, statebackend.TTL{}),
		m:    statebackend.NewMap[string, string, int](b, statebackend.TTL{TTLMillis: 1000, UpdateOnRead: true}),
		red:  statebackend.NewReducing[string, int](b, statebackend.TTL{}, func(a, c int) int { return a + c }),
		agg: statebackend.NewAggregating[string, int, avg, float64](b, statebackend.TTL{},
			func() avg { return avg{} },
			func(a avg, v int) avg { return avg{a.Sum + v, a.N + 1} },
			func(a avg) float64 { return float64(a.Sum) / float64(a.N) }),
		ns:    statebackend.NewNamespaced[string, winNS, []int64](b),
		table: statebackend.NewTable[string, []int](b.Range().Len()),
	}
	if register {
		s.register(t)
	}
	return s
}

func (s *allStates) register(t testing.TB) {
	t.Helper()
	for _, r := range []struct {
		name string
		st   any
	}{{"val", s.val}, {"ttl", s.ttl}, {"list", s.list}, {"map", s.m}, {"red", s.red}, {"agg", s.agg}, {"ns", s.ns}, {"table", s.table}} {
		_, err := s.b.Register(r.name, r.st)
		require.NoError(t, err, r.name)
	}
}

func fill(s *allStates, keys []string, now *int64) {
	for i, k := range keys {
		if !s.b.Range().Contains(s.b.KeyGroupOf(k)) {
			continue
		}
		s.b.SetCurrentKey(k)
		s.val.Update(int64(i) * 1_000_003)
		*now = 1000 + int64(i%7) // expiries differ per key
		s.ttl.Update("t" + k)
		s.list.AddAll([]string{k, "x", k + k})
		s.m.Put("a", i)
		s.m.Put("b"+k, -i)
		s.red.Add(i)
		s.red.Add(1)
		s.agg.Add(i)
		s.agg.Add(i + 2)
		for w := range int64(i%3 + 1) {
			p, _ := s.ns.Upsert(winNS{w * 10, w*10 + 10, "count"})
			*p = []int64{w, int64(i)}
		}
		s.table.Put(s.b.KeyGroupIndex(), k, []int{i, i * 2})
	}
	*now = 1000
}

// check verifies the contents fill wrote for the keys of the backend's
// range. It lets the TTL state expire (checking when), so snapshot first.
func check(t *testing.T, s *allStates, keys []string, now *int64) {
	t.Helper()
	n := 0
	for i, k := range keys {
		if !s.b.Range().Contains(s.b.KeyGroupOf(k)) {
			continue
		}
		n++
		s.b.SetCurrentKey(k)
		v, ok := s.val.Value()
		require.True(t, ok, k)
		require.Equal(t, int64(i)*1_000_003, v)
		require.Equal(t, []string{k, "x", k + k}, s.list.Get())
		require.Equal(t, map[string]int{"a": i, "b" + k: -i}, s.m.Entries())
		r, _ := s.red.Get()
		require.Equal(t, i+1, r)
		a, _ := s.agg.Get()
		require.InDelta(t, float64(i+1), a, 1e-9)
		for w := range int64(i%3 + 1) {
			p := s.ns.Get(winNS{w * 10, w*10 + 10, "count"})
			require.NotNil(t, p, "key %s window %d", k, w)
			require.Equal(t, []int64{w, int64(i)}, *p)
		}
		require.Nil(t, s.ns.Get(winNS{99, 100, "count"}))
		tv, ok := s.table.Get(s.b.KeyGroupIndex(), k)
		require.True(t, ok)
		require.Equal(t, []int{i, i * 2}, tv)
	}
	require.Equal(t, n, s.val.Entries())
	require.Equal(t, n, s.list.Entries())
	require.Equal(t, n, s.red.Entries())
	require.Equal(t, n, s.table.Len())
	// TTL cells kept their expiry: written at 1000 + i%7 with a TTL of 100.
	saved := *now
	defer func() { *now = saved }()
	for i, k := range keys {
		if !s.b.Range().Contains(s.b.KeyGroupOf(k)) {
			continue
		}
		s.b.SetCurrentKey(k)
		*now = 1000 + int64(i%7) + 99
		v, ok := s.ttl.Value()
		require.True(t, ok, "key %s alive until its expiry", k)
		require.Equal(t, "t"+k, v)
		*now++
		_, ok = s.ttl.Value()
		require.False(t, ok, "key %s expires when it did before the snapshot", k)
	}
}

func newStringBackend(t testing.TB, maxPar, p, i int) (*statebackend.Keyed[string], *int64) {
	t.Helper()
	h, err := keygroup.HasherFor[string](nil)
	require.NoError(t, err)
	b := statebackend.NewKeyed(h, maxPar, keygroup.RangeFor(maxPar, p, i))
	now := int64(1000)
	b.Now = func() int64 { return now }
	return b, &now
}

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = "key-" + strconv.Itoa(i)
	}
	return ks
}

func snapshot(t testing.TB, b interface{ Snapshot(io.Writer) error }) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, b.Snapshot(&buf))
	return buf.Bytes()
}

func TestSnapshotRoundTripEveryState(t *testing.T) {
	ks := keys(300)
	b, now := newStringBackend(t, 16, 1, 0)
	s := newAllStates(t, b, true)
	fill(s, ks, now)
	data := snapshot(t, b)
	check(t, s, ks, now)

	info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, statebackend.SnapshotInfo{Version: 4, MaxParallelism: 16, Range: keygroup.Range{Start: 0, End: 15}}, info)

	// Restore into registered states.
	b2, now2 := newStringBackend(t, 16, 1, 0)
	s2 := newAllStates(t, b2, true)
	require.NoError(t, b2.Restore(bytes.NewReader(data)))
	check(t, s2, ks, now2)

	// Restore first, register later (states are registered lazily).
	b3, now3 := newStringBackend(t, 16, 1, 0)
	require.NoError(t, b3.Restore(bytes.NewReader(data)))
	require.ElementsMatch(t, []string{"val", "ttl", "list", "map", "red", "agg", "ns", "table"}, b3.PendingStates())
	s3 := newAllStates(t, b3, true)
	require.Empty(t, b3.PendingStates())
	data3 := snapshot(t, b3)
	check(t, s3, ks, now3)

	// A snapshot of the restored backend restores the same again.
	b4, now4 := newStringBackend(t, 16, 1, 0)
	s4 := newAllStates(t, b4, true)
	require.NoError(t, b4.Restore(bytes.NewReader(data3)))
	check(t, s4, ks, now4)

	// Restored entries are ordinary entries: they update and clear.
	b4.SetCurrentKey(ks[0])
	s4.list.Add("more")
	s4.val.Clear()
	_, ok := s4.val.Value()
	require.False(t, ok)
	require.Equal(t, []string{ks[0], "x", ks[0] + ks[0], "more"}, s4.list.Get())
}

func TestSnapshotPerKeyGroup(t *testing.T) {
	ks := keys(50)
	b, now := newStringBackend(t, 8, 1, 0)
	s := newAllStates(t, b, true)
	fill(s, ks, now)

	// Key groups snapshot and restore one by one (for writers that store
	// them separately); an empty key group has no states.
	b2, now2 := newStringBackend(t, 8, 1, 0)
	s2 := newAllStates(t, b2, true)
	for kg := range 8 {
		p, err := b.SnapshotKeyGroup(kg, nil)
		require.NoError(t, err)
		require.NoError(t, b2.RestoreKeyGroup(kg, p))
	}
	check(t, s2, ks, now2)
	_, err := b.SnapshotKeyGroup(8, nil)
	require.ErrorContains(t, err, "key group 8 is outside this backend's range [0..7]")
	p, err := b.SnapshotKeyGroup(0, nil)
	require.NoError(t, err)
	require.ErrorContains(t, b2.RestoreKeyGroup(0, p), "key group 0 restored twice")

	empty, _ := newStringBackend(t, 8, 1, 0)
	newAllStates(t, empty, true)
	p, err = empty.SnapshotKeyGroup(3, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0}, p, "no states with entries")
}

// TestRescale snapshots 2 subtasks, restores into 3, snapshots those and
// restores into 1: every key's state must be intact, in exactly one
// subtask — the one whose range holds its key group.
func TestRescale(t *testing.T) {
	const maxPar = 128
	ks := keys(1000)
	type subtask struct {
		b   *statebackend.Keyed[string]
		s   *allStates
		now *int64
	}
	newSubtasks := func(p int, register bool) []subtask {
		out := make([]subtask, p)
		for i := range out {
			b, now := newStringBackend(t, maxPar, p, i)
			out[i] = subtask{b, newAllStates(t, b, register), now}
		}
		return out
	}
	owner := func(p int, k string, b *statebackend.Keyed[string]) int {
		return keygroup.OperatorIndex(maxPar, p, b.KeyGroupOf(k))
	}

	old := newSubtasks(2, true)
	for _, st := range old {
		fill(st.s, ks, st.now)
	}
	snaps := [][]byte{snapshot(t, old[0].b), snapshot(t, old[1].b)}

	// 2 → 3. The states of subtask 1 are registered only after restore and
	// those of subtask 2 never before their snapshot: restored data waits
	// for its state and is carried into later snapshots meanwhile.
	mid := newSubtasks(3, false)
	mid[0].s.register(t)
	for i, st := range mid {
		for _, d := range snaps {
			require.NoError(t, st.b.Restore(bytes.NewReader(d)), "subtask %d", i)
		}
	}
	mid[1].s.register(t)
	var snaps3 [][]byte
	for _, st := range mid {
		snaps3 = append(snaps3, snapshot(t, st.b))
	}
	for _, st := range mid[:2] {
		check(t, st.s, ks, st.now) // every key of its range, nothing else
	}
	for _, k := range ks {
		var in []int
		for i, st := range mid {
			if st.b.Range().Contains(st.b.KeyGroupOf(k)) {
				in = append(in, i)
			}
		}
		require.Equal(t, []int{owner(3, k, mid[0].b)}, in, "key %s in exactly one subtask", k)
	}
	require.Len(t, mid[2].b.PendingStates(), 8)
	total := 0
	for _, st := range mid[:2] {
		total += st.s.val.Entries()
	}
	require.Equal(t, len(ks)-countOwned(ks, mid[2].b), total)

	// 3 → 1.
	one := newSubtasks(1, true)
	for _, d := range snaps3 {
		require.NoError(t, one[0].b.Restore(bytes.NewReader(d)))
	}
	check(t, one[0].s, ks, one[0].now)
	require.Equal(t, len(ks), one[0].s.val.Entries(), "every key exactly once")
	require.Equal(t, len(ks), one[0].s.table.Len())
}

func countOwned(ks []string, b *statebackend.Keyed[string]) int {
	n := 0
	for _, k := range ks {
		if b.Range().Contains(b.KeyGroupOf(k)) {
			n++
		}
	}
	return n
}

// smallSnapshot is a snapshot of a few keys of every state kind.
func smallSnapshot(t testing.TB) []byte {
	b, now := newStringBackend(t, 4, 1, 0)
	s := newAllStates(t, b, true)
	fill(s, keys(6), now)
	return snapshot(t, b)
}

func TestCorruptSnapshot(t *testing.T) {
	data := smallSnapshot(t)
	restore := func(d []byte) (*allStates, error) {
		b, _ := newStringBackend(t, 4, 1, 0)
		s := newAllStates(t, b, true)
		return s, b.Restore(bytes.NewReader(d))
	}
	_, err := restore(data)
	require.NoError(t, err)

	// Every single-bit flip anywhere is detected, and changes nothing.
	for i := range data {
		for _, bit := range []byte{0x01, 0x80} {
			d := bytes.Clone(data)
			d[i] ^= bit
			s, err := restore(d)
			require.Error(t, err, "byte %d ^ %#x", i, bit)
			if i == len("STRMKEYS") && (d[i] < 1 || d[i] > 3) {
				require.ErrorIs(t, err, statebackend.ErrUnsupportedVersion, "byte %d", i)
			} else {
				require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot, "byte %d ^ %#x: %v", i, bit, err)
			}
			require.Zero(t, s.val.Entries(), "a corrupt snapshot restores nothing")
			require.Empty(t, s.b.PendingStates())
		}
	}
	// Every truncation is detected.
	for n := range len(data) {
		_, err := restore(data[:n])
		require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot, "truncated to %d bytes", n)
	}
	// Errors say where.
	d := bytes.Clone(data)
	d[len(data)-10] ^= 0xff // in the last key group's chunk
	_, err = restore(d)
	require.ErrorContains(t, err, "key group 3")
	require.ErrorContains(t, err, "checksum mismatch")
	d = bytes.Clone(data)
	d[25] ^= 0xff // in the schema section, after the 16-byte header
	_, err = restore(d)
	require.ErrorContains(t, err, "schema section")
	require.ErrorContains(t, err, "checksum mismatch")
	_, err = restore([]byte("not a snapshot at all"))
	require.ErrorContains(t, err, "not a keyed-state snapshot")
}

// TestCorruptStateData feeds bad data to the states directly (behind the
// checksum): errors with context, never a panic.
func TestCorruptStateData(t *testing.T) {
	b, now := newStringBackend(t, 1, 1, 0)
	s := newAllStates(t, b, true)
	fill(s, keys(3), now)
	states := map[string]statebackend.Snapshotter{"val": s.val, "ttl": s.ttl, "list": s.list, "map": s.m, "red": s.red, "agg": s.agg, "ns": s.ns, "table": s.table}
	for name, st := range states {
		data, err := st.SnapshotKeyGroup(0, nil)
		require.NoError(t, err)
		require.NotEmpty(t, data, name)
		for n := range len(data) {
			b2, _ := newStringBackend(t, 1, 1, 0)
			s2 := newAllStates(t, b2, true)
			st2 := map[string]statebackend.Snapshotter{"val": s2.val, "ttl": s2.ttl, "list": s2.list, "map": s2.m, "red": s2.red, "agg": s2.agg, "ns": s2.ns, "table": s2.table}[name]
			err := st2.RestoreKeyGroup(0, data[:n])
			require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot, "%s truncated to %d", name, n)
			err = st2.RestoreKeyGroup(0, append(bytes.Clone(data), 0))
			require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot, "%s with a trailing byte", name)
		}
	}
	// A key restored into another key group than its own.
	b4, _ := newStringBackend(t, 4, 1, 0)
	v := statebackend.NewValue[string, int](b4, statebackend.TTL{})
	b4.SetCurrentKey("a")
	v.Update(1)
	kg := b4.KeyGroupOf("a")
	data, err := v.SnapshotKeyGroup(kg, nil)
	require.NoError(t, err)
	err = v.RestoreKeyGroup((kg+1)%4, data)
	require.ErrorIs(t, err, statebackend.ErrCorruptSnapshot)
	require.ErrorContains(t, err, fmt.Sprintf("key a belongs to key group %d, not %d", kg, (kg+1)%4))
}

func TestUnsupportedVersion(t *testing.T) {
	data := smallSnapshot(t)
	for _, v := range []byte{0, 5} {
		data[len("STRMKEYS")] = v
		b, _ := newStringBackend(t, 4, 1, 0)
		err := b.Restore(bytes.NewReader(data))
		require.ErrorIs(t, err, statebackend.ErrUnsupportedVersion)
		require.NotErrorIs(t, err, statebackend.ErrCorruptSnapshot)
		require.EqualError(t, err, fmt.Sprintf("statebackend: unsupported state snapshot version %d (this build reads versions 1 to 4)", v))
	}
}

func TestRestoreMismatches(t *testing.T) {
	data := smallSnapshot(t)
	// Another maxParallelism: key groups do not line up.
	b, _ := newStringBackend(t, 8, 1, 0)
	require.EqualError(t, b.Restore(bytes.NewReader(data)),
		"statebackend: snapshot has maxParallelism 4, this job 8: key groups do not line up")

	// The same key groups twice.
	b, _ = newStringBackend(t, 4, 1, 0)
	require.NoError(t, b.Restore(bytes.NewReader(data)))
	require.ErrorContains(t, b.Restore(bytes.NewReader(data)), "key group 0 restored twice")

	// A state registered under the name of another kind.
	b, _ = newStringBackend(t, 4, 1, 0)
	_, err := b.Register("val", statebackend.NewValue[string, string](b, statebackend.TTL{}))
	require.NoError(t, err)
	err = b.Restore(bytes.NewReader(data))
	require.ErrorIs(t, err, statebackend.ErrIncompatibleState)
	require.ErrorContains(t, err, `state "val" was snapshotted as value<string,int64> but is registered as value<string,string>`)
	// … or registered after the restore: Register fails.
	b, _ = newStringBackend(t, 4, 1, 0)
	require.NoError(t, b.Restore(bytes.NewReader(data)))
	_, err = b.Register("list", statebackend.NewValue[string, string](b, statebackend.TTL{}))
	require.ErrorIs(t, err, statebackend.ErrIncompatibleState)
	require.EqualError(t, err, `statebackend: restored state is incompatible with the registered state: state "list" was snapshotted as list<string,string> but is registered as value<string,string>`)
	_, ok := b.Lookup("list")
	require.False(t, ok, "not registered")
}

type withFunc struct {
	N  int
	Fn func()
}

// withFuncCodec encodes withFunc's N only.
type withFuncCodec struct{}

func (withFuncCodec) Append(dst []byte, v withFunc) []byte { return codec.Int().Append(dst, v.N) }
func (withFuncCodec) Decode(src []byte) (withFunc, int, error) {
	n, k, err := codec.Int().Decode(src)
	return withFunc{N: n}, k, err
}

func TestStateWithoutCodec(t *testing.T) {
	b, _ := newStringBackend(t, 4, 1, 0)
	v := statebackend.NewValue[string, withFunc](b, statebackend.TTL{})
	_, err := b.Register("handlers", v) // no error, no panic: jobs without checkpoints work
	require.NoError(t, err)
	b.SetCurrentKey("a")
	v.Update(withFunc{N: 1})
	got, _ := v.Value()
	require.Equal(t, 1, got.N)

	err = b.Snapshot(io.Discard)
	require.Error(t, err)
	require.ErrorContains(t, err, `state "handlers" (value<string,statebackend_test.withFunc>)`)
	require.ErrorContains(t, err, "no codec for value type statebackend_test.withFunc")
	require.ErrorContains(t, err, "func()")
	var ute *codec.UnsupportedTypeError
	require.ErrorAs(t, err, &ute)

	// With a codec set, it snapshots.
	b2, _ := newStringBackend(t, 4, 1, 0)
	v2 := statebackend.NewValue[string, withFunc](b2, statebackend.TTL{})
	v2.SetCodec(withFuncCodec{})
	_, err = b2.Register("handlers", v2)
	require.NoError(t, err)
	b2.SetCurrentKey("a")
	v2.Update(withFunc{N: 7, Fn: func() {}})
	data := snapshot(t, b2)
	b3, _ := newStringBackend(t, 4, 1, 0)
	require.NoError(t, b3.Restore(bytes.NewReader(data)))
	v3 := statebackend.NewValue[string, withFunc](b3, statebackend.TTL{})
	v3.SetCodec(withFuncCodec{})
	_, err = b3.Register("handlers", v3)
	require.NoError(t, err)
	b3.SetCurrentKey("a")
	got, ok := v3.Value()
	require.True(t, ok)
	require.Equal(t, 7, got.N)

	// Keys without a codec fail snapshots too, naming the key type.
	type badKey struct {
		Ch chan int
	}
	kb := statebackend.NewKeyed(func(badKey) uint64 { return 0 }, 4, keygroup.RangeFor(4, 1, 0))
	kv := statebackend.NewValue[badKey, int](kb, statebackend.TTL{})
	_, err = kb.Register("v", kv)
	require.NoError(t, err)
	kb.SetCurrentKey(badKey{})
	kv.Update(1)
	err = kb.Snapshot(io.Discard)
	require.ErrorContains(t, err, `state "v"`)
	require.ErrorContains(t, err, "no codec for key type statebackend_test.badKey")
}

// TestEncodePanicIsAnError: a codec that panics while encoding (as JSON
// does on NaN) fails the snapshot instead of the task.
func TestEncodePanicIsAnError(t *testing.T) {
	b, _ := newStringBackend(t, 4, 1, 0)
	v := statebackend.NewValue[string, float64](b, statebackend.TTL{})
	v.SetCodec(codec.JSON[float64]())
	_, err := b.Register("f", v)
	require.NoError(t, err)
	b.SetCurrentKey("a")
	var zero float64
	v.Update(zero / zero)
	err = b.Snapshot(io.Discard)
	require.ErrorContains(t, err, `state "f"`)
	require.ErrorContains(t, err, "encoding panicked")
}

func TestErrorsAreSentinels(t *testing.T) {
	require.False(t, errors.Is(statebackend.ErrCorruptSnapshot, statebackend.ErrUnsupportedVersion))
}

// TestManyStates: a key group with more states than fit a one-byte count.
func TestManyStates(t *testing.T) {
	b, _ := newStringBackend(t, 2, 1, 0)
	var vs []*statebackend.Value[string, int]
	for i := range 300 {
		v := statebackend.NewValue[string, int](b, statebackend.TTL{})
		_, err := b.Register("v"+strconv.Itoa(i), v)
		require.NoError(t, err)
		vs = append(vs, v)
	}
	for _, k := range keys(20) {
		b.SetCurrentKey(k)
		for i, v := range vs {
			v.Update(i + len(k))
		}
	}
	data := snapshot(t, b)
	b2, _ := newStringBackend(t, 2, 1, 0)
	require.NoError(t, b2.Restore(bytes.NewReader(data)))
	require.Len(t, b2.PendingStates(), 300)
	for i := range 300 {
		v := statebackend.NewValue[string, int](b2, statebackend.TTL{})
		_, err := b2.Register("v"+strconv.Itoa(i), v)
		require.NoError(t, err)
		for _, k := range keys(20) {
			b2.SetCurrentKey(k)
			got, ok := v.Value()
			require.True(t, ok)
			require.Equal(t, i+len(k), got)
		}
	}
}

// ttlListMap is a TTL'd list and map state registered on b.
func ttlListMap(t *testing.T, b *statebackend.Keyed[string], ttl statebackend.TTL) (*statebackend.List[string, string], *statebackend.Map[string, string, int]) {
	t.Helper()
	l := statebackend.NewList[string, string](b, ttl)
	m := statebackend.NewMap[string, string, int](b, ttl)
	_, err := b.Register("list", l)
	require.NoError(t, err)
	_, err = b.Register("map", m)
	require.NoError(t, err)
	return l, m
}

// TestSnapshotPerEntryTTL: snapshots carry each list element's and each map
// entry's own expiry.
func TestSnapshotPerEntryTTL(t *testing.T) {
	ttl := statebackend.TTL{TTLMillis: 100}
	b, now := newStringBackend(t, 4, 1, 0)
	l, m := ttlListMap(t, b, ttl)
	b.SetCurrentKey("a")
	l.Add("x")
	m.Put("k1", 1)
	*now = 1080
	l.AddAll([]string{"y", "z"})
	m.Put("k2", 2)
	b.SetCurrentKey("b")
	l.Add("only")
	m.Put("only", 0)
	*now = 1090
	data := snapshot(t, b)

	for _, order := range []string{"registered first", "registered after restore"} {
		b2, now2 := newStringBackend(t, 4, 1, 0)
		var l2 *statebackend.List[string, string]
		var m2 *statebackend.Map[string, string, int]
		if order == "registered first" {
			l2, m2 = ttlListMap(t, b2, ttl)
		}
		require.NoError(t, b2.Restore(bytes.NewReader(data)), order)
		if l2 == nil {
			l2, m2 = ttlListMap(t, b2, ttl)
		}
		*now2 = 1099
		b2.SetCurrentKey("a")
		require.Equal(t, []string{"x", "y", "z"}, l2.Get(), order)
		require.Equal(t, map[string]int{"k1": 1, "k2": 2}, m2.Entries(), order)
		*now2 = 1100
		require.Equal(t, []string{"y", "z"}, l2.Get(), "%s: x expired at 1100, y and z live until 1180", order)
		require.Equal(t, map[string]int{"k2": 2}, m2.Entries(), order)
		_, ok := m2.Get("k1")
		require.False(t, ok, order)
		b2.SetCurrentKey("b")
		require.Equal(t, []string{"only"}, l2.Get(), order)
		*now2 = 1180
		require.Nil(t, l2.Get(), order)
		require.True(t, m2.IsEmpty(), order)
		b2.SetCurrentKey("a")
		require.Nil(t, l2.Get(), order)
		require.True(t, m2.IsEmpty(), order)
	}
}

// TestRestoreVersion1: a snapshot written by format version 1, where a
// TTL'd list or map has one expiry per key, restores with that expiry on
// every element. testdata/v1-ttl-list-map.snap was written at commit
// cc1cdea: lists and maps with a TTL of 100 ms ("list", "map") and without
// ("plainlist", "plainmap"); key a written at 1000 and 1050 (so everything
// of a expires at 1150), key b at 1000.
func TestRestoreVersion1(t *testing.T) {
	v1, err := os.ReadFile("testdata/v1-ttl-list-map.snap")
	require.NoError(t, err)
	info, err := statebackend.ReadSnapshotInfo(bytes.NewReader(v1))
	require.NoError(t, err)
	require.Equal(t, 1, info.Version)

	// Restored data of states not registered yet is written into version 4
	// snapshots as it is.
	b, _ := newStringBackend(t, 4, 1, 0)
	require.NoError(t, b.Restore(bytes.NewReader(v1)))
	v2 := snapshot(t, b)
	info, err = statebackend.ReadSnapshotInfo(bytes.NewReader(v2))
	require.NoError(t, err)
	require.Equal(t, 4, info.Version)

	for name, data := range map[string][]byte{"v1": v1, "v1 data in v2": v2} {
		b, now := newStringBackend(t, 4, 1, 0)
		require.NoError(t, b.Restore(bytes.NewReader(data)), name)
		l, m := ttlListMap(t, b, statebackend.TTL{TTLMillis: 100})
		pl := statebackend.NewList[string, string](b, statebackend.TTL{})
		pm := statebackend.NewMap[string, string, int](b, statebackend.TTL{})
		_, err = b.Register("plainlist", pl)
		require.NoError(t, err)
		_, err = b.Register("plainmap", pm)
		require.NoError(t, err)

		*now = 1099
		b.SetCurrentKey("b")
		require.Equal(t, []string{"z"}, l.Get(), name)
		require.Equal(t, map[string]int{"k3": 3}, m.Entries(), name)
		*now = 1100
		require.Nil(t, l.Get(), name)
		require.True(t, m.IsEmpty(), name)
		b.SetCurrentKey("a")
		*now = 1149
		require.Equal(t, []string{"x", "y"}, l.Get(), name)
		require.Equal(t, map[string]int{"k1": 1, "k2": 2}, m.Entries(), name)
		*now = 1150
		require.Nil(t, l.Get(), name)
		require.True(t, m.IsEmpty(), name)
		*now = 1 << 50
		require.Equal(t, []string{"p", "r"}, pl.Get(), name)
		require.Equal(t, map[string]int{"q": 1, "s": 2}, pm.Entries(), name)
	}
}
