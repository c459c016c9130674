package statebackend_test

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// elem is an element or entry of the model: a value and its expiry.
type elem struct {
	v   int
	exp int64
}

// TestListMapTTLModel runs random operations on TTL'd list and map state
// (with or without UpdateOnRead, on a clock that only moves forward, with
// snapshots and restores in between) against a model where every element
// and entry has its own expiry.
func TestListMapTTLModel(t *testing.T) {
	// Lists and maps separately, so the operations that matter for each
	// come up more often.
	for _, kind := range []string{"list", "map"} {
		t.Run(kind, func(t *testing.T) { ttlModel(t, kind) })
	}
}

func ttlModel(t *testing.T, kind string) {
	rapid.Check(t, func(rt *rapid.T) {
		const ttlMs = 50
		ttl := statebackend.TTL{TTLMillis: ttlMs, UpdateOnRead: rapid.Bool().Draw(rt, "updateOnRead")}
		h, _ := keygroup.HasherFor[int](nil)
		now := int64(1000)
		var (
			b *statebackend.Keyed[int]
			l *statebackend.List[int, int]
			m *statebackend.Map[int, int, int]
		)
		open := func() {
			b = statebackend.NewKeyed(h, 8, keygroup.RangeFor(8, 1, 0))
			b.Now = func() int64 { return now }
			l = statebackend.NewList[int, int](b, ttl)
			m = statebackend.NewMap[int, int, int](b, ttl)
			_, err := b.Register("l", l)
			require.NoError(rt, err)
			_, err = b.Register("m", m)
			require.NoError(rt, err)
		}
		open()
		lists := map[int][]elem{}
		mps := map[int]map[int]elem{}
		key := 0
		b.SetCurrentKey(key)

		liveList := func(touch bool) []int {
			var out []int
			for i, e := range lists[key] {
				if e.exp > now {
					out = append(out, e.v)
					if touch {
						lists[key][i].exp = now + ttlMs
					}
				}
			}
			return out
		}
		liveMap := func() map[int]int {
			var out map[int]int
			for uk, e := range mps[key] {
				if e.exp > now {
					if out == nil {
						out = map[int]int{}
					}
					out[uk] = e.v
				}
			}
			return out
		}
		touchEntry := func(uk int) {
			if e, ok := mps[key][uk]; ok && e.exp > now && ttl.UpdateOnRead {
				mps[key][uk] = elem{e.v, now + ttlMs}
			}
		}

		actions := map[string]func(*rapid.T){
			"key": func(rt *rapid.T) {
				key = rapid.IntRange(0, 1).Draw(rt, "k")
				b.SetCurrentKey(key)
			},
			"advance": func(rt *rapid.T) {
				now += rapid.Int64Range(0, 40).Draw(rt, "ms")
			},
			"add": func(rt *rapid.T) {
				v := rapid.Int().Draw(rt, "v")
				l.Add(v)
				lists[key] = append(lists[key], elem{v, now + ttlMs})
			},
			"addAll": func(rt *rapid.T) {
				vs := rapid.SliceOfN(rapid.Int(), 0, 3).Draw(rt, "vs")
				l.AddAll(vs)
				for _, v := range vs {
					lists[key] = append(lists[key], elem{v, now + ttlMs})
				}
			},
			"update": func(rt *rapid.T) {
				vs := rapid.SliceOfN(rapid.Int(), 0, 3).Draw(rt, "vs")
				l.Update(vs)
				lists[key] = nil
				for _, v := range vs {
					lists[key] = append(lists[key], elem{v, now + ttlMs})
				}
			},
			"clearList": func(rt *rapid.T) {
				l.Clear()
				delete(lists, key)
			},
			"get": func(rt *rapid.T) {
				require.Equal(rt, liveList(ttl.UpdateOnRead), l.Get())
			},
			"put": func(rt *rapid.T) {
				uk, v := rapid.IntRange(0, 2).Draw(rt, "uk"), rapid.Int().Draw(rt, "v")
				m.Put(uk, v)
				if mps[key] == nil {
					mps[key] = map[int]elem{}
				}
				mps[key][uk] = elem{v, now + ttlMs}
			},
			"remove": func(rt *rapid.T) {
				uk := rapid.IntRange(0, 2).Draw(rt, "uk")
				m.Remove(uk)
				delete(mps[key], uk)
			},
			"mapGet": func(rt *rapid.T) {
				uk := rapid.IntRange(0, 2).Draw(rt, "uk")
				want, wantOK := liveMap()[uk]
				got, ok := m.Get(uk)
				require.Equal(rt, wantOK, ok)
				require.Equal(rt, want, got)
				touchEntry(uk)
			},
			"contains": func(rt *rapid.T) {
				uk := rapid.IntRange(0, 2).Draw(rt, "uk")
				_, want := liveMap()[uk]
				require.Equal(rt, want, m.Contains(uk))
				touchEntry(uk)
			},
			"entries": func(rt *rapid.T) {
				require.Equal(rt, liveMap(), m.Entries())
				for uk := range mps[key] {
					touchEntry(uk)
				}
			},
			"isEmpty": func(rt *rapid.T) {
				require.Equal(rt, len(liveMap()) == 0, m.IsEmpty())
			},
			"clearMap": func(rt *rapid.T) {
				m.Clear()
				delete(mps, key)
			},
			"snapshotRestore": func(rt *rapid.T) {
				var buf bytes.Buffer
				require.NoError(rt, b.Snapshot(&buf))
				open()
				require.NoError(rt, b.Restore(bytes.NewReader(buf.Bytes())))
				b.SetCurrentKey(key)
				// The snapshot dropped every expired element: exactly
				// the keys with live ones are left.
				nl, nm := 0, 0
				for k := range lists {
					if slices.ContainsFunc(lists[k], func(e elem) bool { return e.exp > now }) {
						nl++
					}
				}
				for k := range mps {
					if slices.ContainsFunc(slices.Collect(maps.Values(mps[k])), func(e elem) bool { return e.exp > now }) {
						nm++
					}
				}
				require.Equal(rt, nl, l.Entries())
				require.Equal(rt, nm, m.NumKeys())
			},
		}
		listOps := []string{"add", "addAll", "update", "clearList", "get"}
		mapOps := []string{"put", "remove", "mapGet", "contains", "entries", "isEmpty", "clearMap"}
		drop := mapOps
		if kind == "map" {
			drop = listOps
		}
		for _, name := range drop {
			delete(actions, name)
		}
		rt.Repeat(actions)
	})
}

// TestTTLCleanup: expired elements leave memory on writes (also with
// ReturnExpired) and snapshots, not only on reads, and snapshots do not
// carry them.
func TestTTLCleanup(t *testing.T) {
	for _, returnExpired := range []bool{false, true} {
		ttl := statebackend.TTL{TTLMillis: 100, ReturnExpired: returnExpired}
		b, now := newStringBackend(t, 4, 1, 0)
		l, m := ttlListMap(t, b, ttl)
		b.SetCurrentKey("a")
		l.Add("old")
		m.Put("old", 1)
		*now = 1100
		l.Add("new") // a write drops the expired element
		m.Put("new", 2)
		*now = 1150
		require.Equal(t, []string{"new"}, l.Get(), "returnExpired %v", returnExpired)
		require.Equal(t, map[string]int{"new": 2}, m.Entries(), "returnExpired %v", returnExpired)

		// A key never touched again is cleaned up by a snapshot.
		b.SetCurrentKey("b")
		l.Add("b")
		m.Put("b", 1)
		*now = 1250
		require.Equal(t, 2, l.Entries())
		require.Equal(t, 2, m.NumKeys())
		data := snapshot(t, b)
		require.Zero(t, l.Entries(), "returnExpired %v", returnExpired)
		require.Zero(t, m.NumKeys(), "returnExpired %v", returnExpired)
		b2, _ := newStringBackend(t, 4, 1, 0)
		require.NoError(t, b2.Restore(bytes.NewReader(data)))
		require.Empty(t, b2.PendingStates(), "nothing was written")
	}
}

// TestTTLMapWriteSweep: puts sweep a map's expired entries once there were
// as many puts as half its size since the last sweep, which keeps a map
// written at a steady rate within twice its live entries (seen through
// ReturnExpired, whose reads do not clean up).
func TestTTLMapWriteSweep(t *testing.T) {
	b, now := newStringBackend(t, 4, 1, 0)
	_, m := ttlListMap(t, b, statebackend.TTL{TTLMillis: 100, ReturnExpired: true})
	b.SetCurrentKey("a")
	for i := range 1000 {
		*now = 1000 + int64(i) // one new entry a millisecond
		m.Put(strconv.Itoa(i), i)
		require.LessOrEqual(t, len(m.Entries()), 201, "put %d", i)
	}
	require.GreaterOrEqual(t, len(m.Entries()), 100)
}

// TestListTTLClockBack: a clock that goes back leaves the elements' expiries
// out of order; expiry still applies to each element.
func TestListTTLClockBack(t *testing.T) {
	b, now := newStringBackend(t, 4, 1, 0)
	l, _ := ttlListMap(t, b, statebackend.TTL{TTLMillis: 100})
	b.SetCurrentKey("a")
	*now = 1050
	l.Add("late") // expires at 1150
	*now = 1000
	l.Add("early") // expires at 1100
	l.Add("early2")
	*now = 1120
	require.Equal(t, []string{"late"}, l.Get())
	*now = 1100
	l.Add("x") // 1200
	*now = 1160
	require.Equal(t, []string{"x"}, l.Get())
}

// TestTTLChangedAcrossRestore: data snapshotted with a TTL keeps expiring
// when restored into state without TTL (new writes to it do not expire),
// and data snapshotted without TTL does not expire in state with TTL (new
// writes do), as Value state's cells.
func TestTTLChangedAcrossRestore(t *testing.T) {
	b, _ := newStringBackend(t, 4, 1, 0)
	l, m := ttlListMap(t, b, statebackend.TTL{TTLMillis: 100})
	b.SetCurrentKey("a")
	l.Add("x")
	m.Put("x", 1)
	ttlData := snapshot(t, b)

	b2, now2 := newStringBackend(t, 4, 1, 0)
	l2, m2 := ttlListMap(t, b2, statebackend.TTL{})
	b2.SetCurrentKey("a")
	l2.Add("before") // written before the restore: never expires
	require.NoError(t, b2.Restore(bytes.NewReader(ttlData)))
	b2.SetCurrentKey("b")
	l2.Add("never")
	m2.Put("never", 2)
	b2.SetCurrentKey("a")
	l2.Add("y")
	*now2 = 1099
	require.Equal(t, []string{"x", "y"}, l2.Get(), "the restore replaced a's list")
	require.Equal(t, map[string]int{"x": 1}, m2.Entries())
	*now2 = 1100
	require.Equal(t, []string{"y"}, l2.Get())
	require.True(t, m2.IsEmpty())
	*now2 = 1 << 50
	b2.SetCurrentKey("b")
	require.Equal(t, []string{"never"}, l2.Get())
	require.Equal(t, map[string]int{"never": 2}, m2.Entries())

	b3, _ := newStringBackend(t, 4, 1, 0)
	l3, m3 := ttlListMap(t, b3, statebackend.TTL{})
	b3.SetCurrentKey("a")
	l3.Add("p")
	m3.Put("p", 1)
	plainData := snapshot(t, b3)
	b4, now4 := newStringBackend(t, 4, 1, 0)
	l4, m4 := ttlListMap(t, b4, statebackend.TTL{TTLMillis: 100})
	require.NoError(t, b4.Restore(bytes.NewReader(plainData)))
	b4.SetCurrentKey("a")
	l4.Add("q")
	m4.Put("q", 2)
	*now4 = 1100
	require.Equal(t, []string{"p"}, l4.Get())
	require.Equal(t, map[string]int{"p": 1}, m4.Entries())
}

// TestSnapshotWithoutTTLUnchanged: list and map state without TTL write
// the same data as format version 1 did (flags 0), no expiries.
func TestSnapshotWithoutTTLUnchanged(t *testing.T) {
	b, _ := newStringBackend(t, 1, 1, 0)
	l, m := ttlListMap(t, b, statebackend.TTL{})
	b.SetCurrentKey("a")
	l.AddAll([]string{"x", "y"})
	m.Put("k", 7)
	ld, err := l.SnapshotKeyGroup(0, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 1, 'a', 2, 1, 'x', 1, 'y'}, ld)
	md, err := m.SnapshotKeyGroup(0, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 1, 'a', 1, 1, 'k', 14}, md)
}
