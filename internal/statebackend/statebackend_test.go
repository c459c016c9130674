package statebackend_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
)

// backend returns a backend owning every key group, with a manual clock.
func backend(t *testing.T) (*statebackend.Keyed[string], *int64) {
	t.Helper()
	h, err := keygroup.HasherFor[string](nil)
	require.NoError(t, err)
	b := statebackend.NewKeyed(h, 16, keygroup.RangeFor(16, 1, 0))
	now := int64(1000)
	b.Now = func() int64 { return now }
	return b, &now
}

func TestCurrentKeyAndKeyGroups(t *testing.T) {
	h, _ := keygroup.HasherFor[string](nil)
	rng := keygroup.RangeFor(16, 2, 1) // key groups 8..15
	b := statebackend.NewKeyed(h, 16, rng)
	require.False(t, b.HasCurrentKey())
	require.Equal(t, rng, b.Range())
	require.Equal(t, 16, b.MaxParallelism())

	var mine, other string
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		if rng.Contains(b.KeyGroupOf(k)) {
			mine = k
		} else {
			other = k
		}
	}
	require.NotEmpty(t, mine)
	require.NotEmpty(t, other)
	b.SetCurrentKey(mine)
	require.True(t, b.HasCurrentKey())
	require.Equal(t, mine, b.CurrentKey())
	require.Equal(t, b.KeyGroupOf(mine)-8, b.KeyGroupIndex())

	// A key outside the range means wrong partitioning: fail loudly.
	require.PanicsWithError(t,
		`statebackend: key `+other+` belongs to key group `+strconv.Itoa(b.KeyGroupOf(other))+` outside this subtask's range [8..15]`,
		func() { b.SetCurrentKey(other) })
	require.Equal(t, mine, b.CurrentKey(), "a rejected key does not become current")
}

func TestRegister(t *testing.T) {
	b, _ := backend(t)
	v := statebackend.NewValue[string, int](b, statebackend.TTL{})
	got, err := b.Register("count", v)
	require.NoError(t, err)
	require.Same(t, v, got)
	// The same name and type: the existing state.
	got, err = b.Register("count", statebackend.NewValue[string, int](b, statebackend.TTL{}))
	require.NoError(t, err)
	require.Same(t, v, got)
	// The same name, another type: an error.
	_, err = b.Register("count", statebackend.NewValue[string, string](b, statebackend.TTL{}))
	require.ErrorContains(t, err, `state "count" already registered as *statebackend.Value[string,int]`)
	_, err = b.Register("list", statebackend.NewList[string, int](b, statebackend.TTL{}))
	require.NoError(t, err)
	require.Equal(t, []string{"count", "list"}, b.StateNames())
	s, ok := b.Lookup("list")
	require.True(t, ok)
	require.IsType(t, &statebackend.List[string, int]{}, s)
	_, ok = b.Lookup("nope")
	require.False(t, ok)
}

func TestValueIsScopedToTheCurrentKey(t *testing.T) {
	b, _ := backend(t)
	v := statebackend.NewValue[string, int](b, statebackend.TTL{})
	b.SetCurrentKey("a")
	_, ok := v.Value()
	require.False(t, ok)
	v.Update(1)
	b.SetCurrentKey("b")
	_, ok = v.Value()
	require.False(t, ok, "b does not see a's value")
	v.Update(2)
	b.SetCurrentKey("a")
	got, ok := v.Value()
	require.True(t, ok)
	require.Equal(t, 1, got)
	v.Clear()
	_, ok = v.Value()
	require.False(t, ok)
	require.Equal(t, 1, v.Entries())
}

func TestListState(t *testing.T) {
	b, _ := backend(t)
	l := statebackend.NewList[string, int](b, statebackend.TTL{})
	b.SetCurrentKey("k")
	require.Nil(t, l.Get())
	l.Add(1)
	l.AddAll([]int{2, 3})
	require.Equal(t, []int{1, 2, 3}, l.Get())
	in := []int{9, 8}
	l.Update(in)
	in[0] = 0
	require.Equal(t, []int{9, 8}, l.Get(), "Update copies its argument")
	l.Update(nil)
	require.Nil(t, l.Get())
	require.Zero(t, l.Entries(), "an empty list is no entry")
	l.Add(5)
	b.SetCurrentKey("other")
	require.Nil(t, l.Get())
	b.SetCurrentKey("k")
	l.Clear()
	require.Nil(t, l.Get())
}

func TestMapState(t *testing.T) {
	b, _ := backend(t)
	m := statebackend.NewMap[string, string, int](b, statebackend.TTL{})
	b.SetCurrentKey("k")
	require.True(t, m.IsEmpty())
	_, ok := m.Get("x")
	require.False(t, ok)
	m.Remove("x") // no-op
	m.Put("x", 1)
	m.Put("y", 2)
	require.True(t, m.Contains("x"))
	require.False(t, m.Contains("z"))
	v, ok := m.Get("y")
	require.True(t, ok)
	require.Equal(t, 2, v)
	require.Equal(t, map[string]int{"x": 1, "y": 2}, m.Entries())
	b.SetCurrentKey("other")
	require.True(t, m.IsEmpty())
	b.SetCurrentKey("k")
	m.Remove("x")
	m.Remove("y")
	require.True(t, m.IsEmpty())
	require.Zero(t, m.Entries(), "removing the last entry drops the key")
	m.Put("z", 3)
	m.Clear()
	require.True(t, m.IsEmpty())
}

func TestReducingAndAggregatingState(t *testing.T) {
	b, _ := backend(t)
	r := statebackend.NewReducing[string, int](b, statebackend.TTL{}, func(a, c int) int { return a + c })
	b.SetCurrentKey("k")
	_, ok := r.Get()
	require.False(t, ok)
	for i := 1; i <= 4; i++ {
		r.Add(i)
	}
	got, ok := r.Get()
	require.True(t, ok)
	require.Equal(t, 10, got)
	r.Clear()
	_, ok = r.Get()
	require.False(t, ok)

	type avg struct{ sum, n int }
	a := statebackend.NewAggregating[string, int, avg, float64](b, statebackend.TTL{},
		func() avg { return avg{} },
		func(acc avg, v int) avg { return avg{acc.sum + v, acc.n + 1} },
		func(acc avg) float64 { return float64(acc.sum) / float64(acc.n) })
	_, ok = a.Get()
	require.False(t, ok)
	a.Add(1)
	a.Add(2)
	b.SetCurrentKey("j")
	a.Add(10)
	b.SetCurrentKey("k")
	mean, ok := a.Get()
	require.True(t, ok)
	require.InDelta(t, 1.5, mean, 1e-9)
	a.Clear()
	_, ok = a.Get()
	require.False(t, ok)
}

func TestTTL(t *testing.T) {
	b, now := backend(t)
	v := statebackend.NewValue[string, int](b, statebackend.TTL{TTLMillis: 100})
	b.SetCurrentKey("k")
	v.Update(1)
	*now += 99
	got, ok := v.Value()
	require.True(t, ok)
	require.Equal(t, 1, got)
	*now++
	_, ok = v.Value()
	require.False(t, ok, "expired at write time + TTL")
	require.Zero(t, v.Entries(), "an expired value is cleaned up when read")

	// Writes refresh the expiry; reads do not by default.
	v.Update(2)
	*now += 60
	v.Value()
	*now += 60
	_, ok = v.Value()
	require.False(t, ok)

	// UpdateOnRead refreshes on reads too.
	r := statebackend.NewValue[string, int](b, statebackend.TTL{TTLMillis: 100, UpdateOnRead: true})
	r.Update(3)
	for range 5 {
		*now += 60
		_, ok = r.Value()
		require.True(t, ok)
	}
	*now += 100
	_, ok = r.Value()
	require.False(t, ok)

	// ReturnExpired returns values not yet cleaned up.
	e := statebackend.NewValue[string, int](b, statebackend.TTL{TTLMillis: 10, ReturnExpired: true})
	e.Update(4)
	*now += 1000
	got, ok = e.Value()
	require.True(t, ok)
	require.Equal(t, 4, got)

	// List elements and map entries expire one by one (TestListTTL,
	// TestMapTTL); reducing and aggregating state as a whole per key.
	l := statebackend.NewList[string, int](b, statebackend.TTL{TTLMillis: 10})
	l.Add(1)
	*now += 5
	l.Add(2) // a write refreshes only the element written
	*now += 4
	require.Equal(t, []int{1, 2}, l.Get())
	*now++
	require.Equal(t, []int{2}, l.Get())
	*now += 5
	require.Nil(t, l.Get())
	m := statebackend.NewMap[string, string, int](b, statebackend.TTL{TTLMillis: 10})
	m.Put("a", 1)
	*now += 10
	require.True(t, m.IsEmpty())
	red := statebackend.NewReducing[string, int](b, statebackend.TTL{TTLMillis: 10}, func(a, c int) int { return a + c })
	red.Add(5)
	*now += 10
	red.Add(1)
	got, _ = red.Get()
	require.Equal(t, 1, got, "an expired accumulator starts over")
}

// TestListTTL: every list element has its own expiry, set when it is
// written (Add, AddAll, Update) and, with UpdateOnRead, when it is read.
func TestListTTL(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")

	l := statebackend.NewList[string, string](b, statebackend.TTL{TTLMillis: 100})
	l.Add("a")
	at(80)
	l.Add("b")
	at(99)
	require.Equal(t, []string{"a", "b"}, l.Get())
	at(150)
	require.Equal(t, []string{"b"}, l.Get(), "a expired at 100, b lives until 180")
	l.AddAll([]string{"c", "d"})
	at(179)
	require.Equal(t, []string{"b", "c", "d"}, l.Get())
	at(180)
	require.Equal(t, []string{"c", "d"}, l.Get())
	at(250)
	require.Nil(t, l.Get(), "every element expired: the list is empty")
	require.Zero(t, l.Entries(), "and the key's entry is gone")

	// Update replaces the list; all its elements get the time of the update.
	at(300)
	l.Add("old")
	at(380)
	l.Update([]string{"x", "y"})
	at(479)
	require.Equal(t, []string{"x", "y"}, l.Get())
	at(480)
	require.Nil(t, l.Get())

	// Adding to a list whose elements all expired starts a new list.
	at(500)
	l.Add("p")
	at(650)
	l.Add("q")
	require.Equal(t, []string{"q"}, l.Get())
	l.Clear()
	require.Nil(t, l.Get())
	require.Zero(t, l.Entries())

	// Other keys are independent.
	at(700)
	l.Add("k1")
	b.SetCurrentKey("j")
	at(750)
	l.Add("j1")
	at(810)
	require.Equal(t, []string{"j1"}, l.Get())
	b.SetCurrentKey("k")
	require.Nil(t, l.Get())
}

func TestListTTLUpdateOnRead(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")
	l := statebackend.NewList[string, string](b, statebackend.TTL{TTLMillis: 100, UpdateOnRead: true})
	l.Add("a")
	at(50)
	l.Add("b")
	at(120)
	require.Equal(t, []string{"b"}, l.Get(), "a read does not bring back an expired element")
	at(200)
	require.Equal(t, []string{"b"}, l.Get(), "the read at 120 refreshed b until 220")
	l.Add("c")
	at(299)
	require.Equal(t, []string{"b", "c"}, l.Get())
	at(398)
	require.Equal(t, []string{"b", "c"}, l.Get())
	at(500)
	require.Nil(t, l.Get())
	require.Zero(t, l.Entries())
}

func TestListTTLReturnExpired(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")
	l := statebackend.NewList[string, string](b, statebackend.TTL{TTLMillis: 100, ReturnExpired: true})
	l.Add("a")
	at(80)
	l.Add("b")
	at(150)
	require.Equal(t, []string{"a", "b"}, l.Get(), "a expired but is not cleaned up yet")
	at(1000)
	require.Equal(t, []string{"a", "b"}, l.Get())
	require.Equal(t, 1, l.Entries())
}

// TestMapTTL: every map entry has its own expiry, set when it is put and,
// with UpdateOnRead, when it is read (Get, Contains, Entries).
func TestMapTTL(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")

	m := statebackend.NewMap[string, string, int](b, statebackend.TTL{TTLMillis: 100})
	m.Put("k1", 1)
	at(80)
	m.Put("k2", 2)
	at(99)
	require.Equal(t, map[string]int{"k1": 1, "k2": 2}, m.Entries())
	at(150)
	_, ok := m.Get("k1")
	require.False(t, ok, "k1 expired at 100")
	require.False(t, m.Contains("k1"))
	v, ok := m.Get("k2")
	require.True(t, ok, "k2 lives until 180")
	require.Equal(t, 2, v)
	require.True(t, m.Contains("k2"))
	require.Equal(t, map[string]int{"k2": 2}, m.Entries())
	require.False(t, m.IsEmpty())

	// Put refreshes the entry it writes, overwriting or not.
	m.Put("k2", 20)
	m.Put("k3", 3)
	at(249)
	require.Equal(t, map[string]int{"k2": 20, "k3": 3}, m.Entries())
	at(250)
	require.True(t, m.IsEmpty(), "every entry expired: the map is empty")
	require.Zero(t, m.NumKeys(), "and the key's entry is gone")
	require.Nil(t, m.Entries())
	_, ok = m.Get("k2")
	require.False(t, ok)

	// Each read API agrees with the others, whichever comes first.
	for _, read := range []func() bool{
		func() bool { return !m.IsEmpty() },
		func() bool { return m.Contains("x") },
		func() bool { _, ok := m.Get("x"); return ok },
		func() bool { return len(m.Entries()) > 0 },
	} {
		at(*now - t0 + 100)
		m.Put("x", 1)
		at(*now - t0 + 99)
		require.True(t, read())
		at(*now - t0 + 1)
		require.False(t, read())
		require.True(t, m.IsEmpty())
		require.False(t, m.Contains("x"))
		require.Nil(t, m.Entries())
		require.Zero(t, m.NumKeys())
	}

	// Remove of a live and of an expired entry.
	at(2000)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Remove("a")
	require.Equal(t, map[string]int{"b": 2}, m.Entries())
	at(2100)
	m.Remove("b")
	require.True(t, m.IsEmpty())
}

func TestMapTTLUpdateOnRead(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")
	m := statebackend.NewMap[string, string, int](b, statebackend.TTL{TTLMillis: 100, UpdateOnRead: true})
	m.Put("k1", 1)
	at(50)
	m.Put("k2", 2)
	at(90)
	_, ok := m.Get("k1") // refreshes k1 only, until 190
	require.True(t, ok)
	at(160)
	require.Equal(t, map[string]int{"k1": 1}, m.Entries(), "k2 expired at 150; Entries refreshes k1 until 260")
	at(259)
	require.True(t, m.Contains("k1"), "refreshes until 359")
	at(358)
	require.False(t, m.IsEmpty())
	at(359)
	require.True(t, m.IsEmpty())
}

func TestMapTTLReturnExpired(t *testing.T) {
	b, now := backend(t)
	t0 := *now
	at := func(ms int64) { *now = t0 + ms }
	b.SetCurrentKey("k")
	m := statebackend.NewMap[string, string, int](b, statebackend.TTL{TTLMillis: 100, ReturnExpired: true})
	m.Put("k1", 1)
	at(80)
	m.Put("k2", 2)
	at(150)
	v, ok := m.Get("k1")
	require.True(t, ok, "expired but not cleaned up yet")
	require.Equal(t, 1, v)
	require.True(t, m.Contains("k1"))
	require.Equal(t, map[string]int{"k1": 1, "k2": 2}, m.Entries())
	require.False(t, m.IsEmpty())
}

func TestTable(t *testing.T) {
	tb := statebackend.NewTable[string, int](4)
	require.Equal(t, 4, tb.NumKeyGroups())
	tb.Put(0, "a", 1)
	tb.Put(3, "a", 2)
	v, ok := tb.Get(3, "a")
	require.True(t, ok)
	require.Equal(t, 2, v)
	_, ok = tb.Get(1, "a")
	require.False(t, ok)
	require.Equal(t, 2, tb.Len())
	require.Equal(t, map[string]int{"a": 1}, tb.KeyGroup(0))
	tb.Delete(0, "a")
	require.Equal(t, 1, tb.Len())
}
