package state_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/state"
)

type session struct {
	Clicks int
	OnEnd  func() // not encodable by the default codec
}

// sessionCodec encodes Clicks only.
type sessionCodec struct{}

func (sessionCodec) Append(dst []byte, s session) []byte { return codec.Int().Append(dst, s.Clicks) }
func (sessionCodec) Decode(src []byte) (session, int, error) {
	n, k, err := codec.Int().Decode(src)
	return session{Clicks: n}, k, err
}

var (
	countD = state.ValueDescriptor[int64]{Name: "count", TTL: state.TTL{TTL: time.Second}}
	namesD = state.ListDescriptor[string]{Name: "names", Codec: codec.JSON[string]()}
	tagsD  = state.MapDescriptor[string, int]{Name: "tags", KeyCodec: codec.OrderedString()}
	maxD   = state.ReducingDescriptor[int]{Name: "max", Reduce: func(a, b int) int { return max(a, b) }}
	sumD   = state.AggregatingDescriptor[int, int64, int64]{Name: "sum", Agg: state.Aggregator[int, int64, int64]{
		Create: func() int64 { return 0 },
		Add:    func(a int64, v int) int64 { return a + int64(v) },
		Result: func(a int64) int64 { return a },
	}, Codec: codec.FixedInt64()}
	sessD = state.ValueDescriptor[session]{Name: "session", Codec: sessionCodec{}}
)

func useAll(t *testing.T, s scope, k int64) {
	t.Helper()
	s.b.SetCurrentKey(k)
	c, err := state.GetValue(s, countD)
	require.NoError(t, err)
	c.Update(k * 10)
	l, err := state.GetList(s, namesD)
	require.NoError(t, err)
	l.AddAll([]string{"a", `"quoted"`})
	m, err := state.GetMap(s, tagsD)
	require.NoError(t, err)
	m.Put("x", int(k))
	r, err := state.GetReducing(s, maxD)
	require.NoError(t, err)
	r.Add(int(k))
	a, err := state.GetAggregating(s, sumD)
	require.NoError(t, err)
	a.Add(3)
	a.Add(4)
	v, err := state.GetValue(s, sessD)
	require.NoError(t, err)
	v.Update(session{Clicks: int(k) + 1, OnEnd: func() {}})
}

// TestSnapshotThroughDescriptors: descriptor codecs are used, and state
// got lazily after a restore (as functions do on their first record) finds
// its restored data.
func TestSnapshotThroughDescriptors(t *testing.T) {
	s, _ := newScope(t)
	for k := range int64(50) {
		useAll(t, s, k)
	}
	var buf bytes.Buffer
	require.NoError(t, s.b.Snapshot(&buf))

	s2, now := newScope(t)
	require.NoError(t, s2.b.Restore(bytes.NewReader(buf.Bytes())))
	require.Len(t, s2.b.PendingStates(), 6, "nothing registered yet")
	for k := range int64(50) {
		s2.b.SetCurrentKey(k)
		c, err := state.GetValue(s2, countD)
		require.NoError(t, err)
		got, ok := c.Value()
		require.True(t, ok)
		require.Equal(t, k*10, got)
		l, _ := state.GetList(s2, namesD)
		require.Equal(t, []string{"a", `"quoted"`}, l.Get())
		m, _ := state.GetMap(s2, tagsD)
		require.Equal(t, map[string]int{"x": int(k)}, m.Entries())
		r, _ := state.GetReducing(s2, maxD)
		rv, _ := r.Get()
		require.Equal(t, int(k), rv)
		a, _ := state.GetAggregating(s2, sumD)
		av, _ := a.Get()
		require.Equal(t, int64(7), av)
		v, _ := state.GetValue(s2, sessD)
		sv, _ := v.Value()
		require.Equal(t, int(k)+1, sv.Clicks)
	}
	require.Empty(t, s2.b.PendingStates())
	// The TTL came along: written at 0 with a TTL of 1s.
	*now = 1000
	s2.b.SetCurrentKey(1)
	c, _ := state.GetValue(s2, countD)
	_, ok := c.Value()
	require.False(t, ok)
}

func TestSnapshotOfStateWithoutCodec(t *testing.T) {
	s, _ := newScope(t)
	s.b.SetCurrentKey(1)
	v, err := state.GetValue(s, state.ValueDescriptor[session]{Name: "sessions"})
	require.NoError(t, err, "no codec is not an error until a snapshot")
	v.Update(session{Clicks: 1})
	err = s.b.Snapshot(io.Discard)
	require.ErrorContains(t, err, `state "sessions" (value<int64,state_test.session>)`)
	require.ErrorContains(t, err, "no codec for value type state_test.session (set one on the state descriptor)")
}
