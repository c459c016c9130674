package state_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

// scope is a state.Scope over a bare backend, as the keyed contexts of
// package strom are.
type scope struct{ b *statebackend.Keyed[int64] }

func (s scope) Key() int64 { return s.b.CurrentKey() }

func (s scope) KeyedStateStore() *state.Store {
	if s.b == nil {
		return nil
	}
	return statebackend.StoreOf(s.b).(*state.Store)
}

func newScope(t *testing.T) (scope, *int64) {
	h, err := keygroup.HasherFor[int64](nil)
	require.NoError(t, err)
	b := statebackend.NewKeyed(h, 128, keygroup.RangeFor(128, 1, 0))
	now := int64(0)
	b.Now = func() int64 { return now }
	return scope{b}, &now
}

func TestGetReturnsTheSameState(t *testing.T) {
	s, _ := newScope(t)
	d := state.ValueDescriptor[int]{Name: "count"}
	v1, err := state.GetValue(s, d)
	require.NoError(t, err)
	v2, err := state.GetValue(s, d)
	require.NoError(t, err)
	require.Same(t, v1, v2, "getting a descriptor again returns the registered state")
	s.b.SetCurrentKey(7)
	v1.Update(3)
	got, ok := v2.Value()
	require.True(t, ok)
	require.Equal(t, 3, got)
}

func TestEveryKind(t *testing.T) {
	s, _ := newScope(t)
	s.b.SetCurrentKey(1)

	l, err := state.GetList(s, state.ListDescriptor[string]{Name: "l"})
	require.NoError(t, err)
	l.Add("a")
	l.AddAll([]string{"b", "c"})
	require.Equal(t, []string{"a", "b", "c"}, l.Get())

	m, err := state.GetMap(s, state.MapDescriptor[string, int]{Name: "m"})
	require.NoError(t, err)
	m.Put("x", 1)
	require.Equal(t, map[string]int{"x": 1}, m.Entries())

	r, err := state.GetReducing(s, state.ReducingDescriptor[int]{Name: "r", Reduce: func(a, b int) int { return max(a, b) }})
	require.NoError(t, err)
	r.Add(3)
	r.Add(9)
	r.Add(4)
	got, ok := r.Get()
	require.True(t, ok)
	require.Equal(t, 9, got)

	a, err := state.GetAggregating(s, state.AggregatingDescriptor[string, int, int]{Name: "a", Agg: state.Aggregator[string, int, int]{
		Create: func() int { return 0 },
		Add:    func(acc int, v string) int { return acc + len(v) },
		Result: func(acc int) int { return acc * 10 },
	}})
	require.NoError(t, err)
	a.Add("abc")
	a.Add("de")
	res, ok := a.Get()
	require.True(t, ok)
	require.Equal(t, 50, res)

	require.Equal(t, []string{"l", "m", "r", "a"}, s.b.StateNames())
}

func TestDescriptorErrors(t *testing.T) {
	s, _ := newScope(t)
	_, err := state.GetValue(s, state.ValueDescriptor[int]{})
	require.ErrorContains(t, err, "value state needs a name")

	_, err = state.GetValue(s, state.ValueDescriptor[int]{Name: "x"})
	require.NoError(t, err)
	_, err = state.GetValue(s, state.ValueDescriptor[string]{Name: "x"})
	require.ErrorContains(t, err, `state "x" is already registered as`)
	require.ErrorContains(t, err, "not as value state of this type")
	_, err = state.GetList(s, state.ListDescriptor[int]{Name: "x"})
	require.ErrorContains(t, err, "not as list state")

	_, err = state.GetReducing(s, state.ReducingDescriptor[int]{Name: "r"})
	require.ErrorContains(t, err, `state "r": reducing state needs a Reduce function`)
	_, err = state.GetAggregating(s, state.AggregatingDescriptor[int, int, int]{Name: "a"})
	require.ErrorContains(t, err, `state "a": aggregating state needs Create, Add and Result`)

	_, err = state.GetValue(scope{}, state.ValueDescriptor[int]{Name: "v"})
	require.ErrorContains(t, err, "only available on keyed streams")
}

func TestTTLDescriptor(t *testing.T) {
	s, now := newScope(t)
	v, err := state.GetValue(s, state.ValueDescriptor[int]{Name: "v", TTL: state.TTL{TTL: time.Second}})
	require.NoError(t, err)
	s.b.SetCurrentKey(1)
	v.Update(1)
	*now = 999
	_, ok := v.Value()
	require.True(t, ok)
	*now = 1000
	_, ok = v.Value()
	require.False(t, ok)
}

// TestListTTLPerElement: each element of a list expires on its own.
func TestListTTLPerElement(t *testing.T) {
	s, now := newScope(t)
	l, err := state.GetList(s, state.ListDescriptor[string]{Name: "l", TTL: state.TTL{TTL: 100 * time.Millisecond}})
	require.NoError(t, err)
	s.b.SetCurrentKey(1)
	l.Add("a")
	*now = 80
	l.Add("b")
	*now = 150
	require.Equal(t, []string{"b"}, l.Get())
	*now = 180
	require.Nil(t, l.Get())

	// Update gives every element of the new list the time of the update.
	l.Add("c")
	*now = 250
	l.Update([]string{"d", "e"})
	*now = 349
	require.Equal(t, []string{"d", "e"}, l.Get())
	*now = 350
	require.Nil(t, l.Get())
}

// TestMapTTLPerEntry: each entry of a map expires on its own.
func TestMapTTLPerEntry(t *testing.T) {
	s, now := newScope(t)
	m, err := state.GetMap(s, state.MapDescriptor[string, int]{Name: "m", TTL: state.TTL{TTL: 100 * time.Millisecond}})
	require.NoError(t, err)
	s.b.SetCurrentKey(1)
	m.Put("k1", 1)
	*now = 80
	m.Put("k2", 2)
	*now = 150
	require.Equal(t, map[string]int{"k2": 2}, m.Entries())
	require.False(t, m.Contains("k1"))
	_, ok := m.Get("k1")
	require.False(t, ok)
	require.True(t, m.Contains("k2"))
	require.False(t, m.IsEmpty())
	*now = 180
	require.True(t, m.IsEmpty())
	require.Nil(t, m.Entries())

	// UpdateOnRead refreshes the entries read, one by one.
	r, err := state.GetMap(s, state.MapDescriptor[string, int]{Name: "r", TTL: state.TTL{TTL: 100 * time.Millisecond, UpdateOnRead: true}})
	require.NoError(t, err)
	r.Put("k1", 1)
	r.Put("k2", 2)
	*now = 250
	r.Get("k1")
	*now = 300
	require.Equal(t, map[string]int{"k1": 1}, r.Entries())
}
