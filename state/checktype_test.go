package state_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/statebackend"
	"github.com/strom-dev/strom/state"
)

type withSecret struct {
	Name   string
	secret int
}

type nested struct {
	Items []map[string]*withSecret
}

type embedsLock struct {
	sync.Mutex
	Count int
	At    time.Time
	_     int
	cache []int `codec:"-"`
}

type opScope struct{ s *state.OperatorStore }

func (o opScope) OperatorStateStore() *state.OperatorStore { return o.s }

func newOpScope(t *testing.T) opScope {
	s, err := statebackend.NewOperatorStore(false, nil)
	require.NoError(t, err)
	return opScope{statebackend.WrapOperatorStore(s).(*state.OperatorStore)}
}

// TestRefusedStateType: a struct type with an unexported field, which the
// default codec would drop from snapshots, is refused when the state is
// declared, with an error naming the state, the type and the field.
func TestRefusedStateType(t *testing.T) {
	ks, _ := newScope(t)
	_, err := state.GetValue(ks, state.ValueDescriptor[withSecret]{Name: "profile"})
	require.EqualError(t, err, `state "profile": type state_test.withSecret cannot be state with the default codec: field secret of state_test.withSecret is unexported, and the default codec would drop it from snapshots; export the field, tag it `+"`codec:\"-\"`"+` if it may be lost, implement encoding.BinaryAppender and encoding.BinaryUnmarshaler, or set a Codec on the descriptor`)

	_, err = state.GetList(ks, state.ListDescriptor[nested]{Name: "deep"})
	require.ErrorContains(t, err, `state "deep": type state_test.nested cannot be state`)
	require.ErrorContains(t, err, `field secret of state_test.withSecret (inside state_test.nested)`)

	_, err = state.GetMap(ks, state.MapDescriptor[string, *withSecret]{Name: "m"})
	require.ErrorContains(t, err, `state "m": type *state_test.withSecret`)

	_, err = state.GetOperatorList(newOpScope(t), state.OperatorListDescriptor[withSecret]{Name: "buffer"})
	require.ErrorContains(t, err, `state "buffer": type state_test.withSecret cannot be state`)
	_, err = state.GetUnionList(newOpScope(t), state.UnionListDescriptor[[]withSecret]{Name: "offsets"})
	require.ErrorContains(t, err, `field secret`)

	// A codec of its own decides what it keeps.
	_, err = state.GetValue(ks, state.ValueDescriptor[withSecret]{Name: "json", Codec: codec.JSON[withSecret]()})
	require.NoError(t, err)
	// Locks, time.Time, blank and codec:"-" fields lose nothing by accident.
	_, err = state.GetOperatorList(newOpScope(t), state.OperatorListDescriptor[embedsLock]{Name: "fine"})
	require.NoError(t, err)
}
