package statebackend

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOperatorListRoundTrip(t *testing.T) {
	s, err := NewOperatorStore(false, nil)
	require.NoError(t, err)
	require.False(t, s.IsRestored())
	l, err := GetOperatorList[string](s, "buf", SplitDistribute, nil)
	require.NoError(t, err)
	l.AddAll([]string{"a", "b"})
	l.Add("c")
	u, err := GetOperatorList[int64](s, "offsets", Union, nil)
	require.NoError(t, err)
	u.Update([]int64{7, 8})

	again, err := GetOperatorList[string](s, "buf", SplitDistribute, nil)
	require.NoError(t, err)
	require.Same(t, l, again)
	_, err = GetOperatorList[string](s, "buf", Union, nil)
	require.ErrorContains(t, err, `"buf" is already declared as a list`)
	_, err = GetOperatorList[int](s, "buf", SplitDistribute, nil)
	require.ErrorContains(t, err, `"buf" is already declared`)

	snap, err := s.Snapshot()
	require.NoError(t, err)
	require.Len(t, snap, 2)

	r, err := NewOperatorStore(true, snap)
	require.NoError(t, err)
	require.True(t, r.IsRestored())
	// Declared with the other distribution: refused, not read as another
	// kind of state.
	_, err = GetOperatorList[int64](r, "offsets", SplitDistribute, nil)
	require.ErrorContains(t, err, `"offsets" was snapshotted as a union list and is declared as a list`)
	// Not declared yet: written again as it was.
	again2, err := r.Snapshot()
	require.NoError(t, err)
	require.ElementsMatch(t, snap, again2)

	rl, err := GetOperatorList[string](r, "buf", SplitDistribute, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, rl.Get())
	ru, err := GetOperatorList[int64](r, "offsets", Union, nil)
	require.NoError(t, err)
	require.Equal(t, []int64{7, 8}, ru.Get())

	// Bytes of another type are reported, not decoded into garbage.
	_, err = GetOperatorList[int64](mustStore(t, snap), "buf", SplitDistribute, nil)
	require.ErrorIs(t, err, ErrCorruptSnapshot)
}

func mustStore(t *testing.T, lists []OperatorState) *OperatorStore {
	s, err := NewOperatorStore(true, lists)
	require.NoError(t, err)
	return s
}

// TestRedistributeOperatorState rescales list and union state 1 → 3 → 2:
// every list element ends up in exactly one subtask, every union element
// in every subtask.
func TestRedistributeOperatorState(t *testing.T) {
	snapshot := func(s *OperatorStore) []OperatorState {
		snap, err := s.Snapshot()
		require.NoError(t, err)
		return snap
	}
	one := mustStore(t, nil)
	l, err := GetOperatorList[int](one, "l", SplitDistribute, nil)
	require.NoError(t, err)
	u, err := GetOperatorList[int](one, "u", Union, nil)
	require.NoError(t, err)
	var all []int
	for i := range 10 {
		l.Add(i)
		u.Add(100 + i)
		all = append(all, i)
	}
	unionAll := slices.Clone(u.Get())

	check := func(per [][]OperatorState) []*OperatorStore {
		var got []int
		var stores []*OperatorStore
		for _, lists := range per {
			s := mustStore(t, lists)
			l, err := GetOperatorList[int](s, "l", SplitDistribute, nil)
			require.NoError(t, err)
			got = append(got, l.Get()...)
			u, err := GetOperatorList[int](s, "u", Union, nil)
			require.NoError(t, err)
			require.ElementsMatch(t, unionAll, u.Get())
			stores = append(stores, s)
		}
		require.ElementsMatch(t, all, got)
		return stores
	}

	three, err := RedistributeOperatorState([][]OperatorState{snapshot(one)}, 3)
	require.NoError(t, err)
	require.Len(t, three, 3)
	stores := check(three)
	// Round robin, deterministic: subtask i gets elements i, i+3, ...
	l0, _ := GetOperatorList[int](stores[0], "l", SplitDistribute, nil)
	require.Equal(t, []int{0, 3, 6, 9}, l0.Get())

	// Each subtask keeps only its share of the union (the way union state
	// is used), so the next restore sees every element once again.
	var old [][]OperatorState
	for i, s := range stores {
		u, _ := GetOperatorList[int](s, "u", Union, nil)
		var mine []int
		for _, v := range u.Get() {
			if v%3 == i {
				mine = append(mine, v)
			}
		}
		u.Update(mine)
		old = append(old, snapshot(s))
	}
	two, err := RedistributeOperatorState(old, 2)
	require.NoError(t, err)
	require.Len(t, two, 2)
	check(two)

	// A subtask that gets no element still learns it was restored.
	many, err := RedistributeOperatorState([][]OperatorState{snapshot(one)}, 20)
	require.NoError(t, err)
	require.Len(t, many[19], 2)
	require.Empty(t, many[19][0].Elements)

	_, err = RedistributeOperatorState([][]OperatorState{{{Name: "x", Mode: Union}}, {{Name: "x", Mode: SplitDistribute}}}, 2)
	require.ErrorContains(t, err, `"x" is a union list in one old subtask and a list in subtask 1`)
}
