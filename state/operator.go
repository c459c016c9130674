package state

import (
	"fmt"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/statebackend"
)

// Operator state is state of an operator subtask as a whole, not of a key
// (Flink's operator state): a function of a non-keyed stream (Process), a
// source reader or a sink writer keeps in it what it must not lose when
// the job is restored — partial aggregates, buffered records, positions.
// It is a list of elements, so a job restored with another parallelism can
// spread it over the new subtasks; the descriptor says how:
//
//   - an OperatorListDescriptor's elements are dealt out round robin: each
//     element goes to exactly one new subtask (Flink's getListState). Keep
//     state as many small elements so it spreads evenly;
//   - a UnionListDescriptor's elements all go to every new subtask (Flink's
//     getUnionListState): each subtask sees what every old subtask stored
//     and picks its part; a subtask should then store only its part again,
//     or the next restore sees every element once per subtask.
//
// Get the state in Open (it holds the restored elements from the start)
// and keep it up to date, or write it in the function's PrepareSnapshot
// hook, which runs just before each snapshot.

// OperatorScope is where operator state lives: the contexts of process
// functions (strom.ProcessContext), source readers (strom.SourceContext)
// and sink writers (strom.SinkContext).
type OperatorScope interface {
	// OperatorStateStore is the operator subtask's operator state (nil
	// where the operator has none).
	OperatorStateStore() *OperatorStore
}

// OperatorStore is the operator state of one operator subtask. It is
// opaque: reach its states through GetOperatorList and GetUnionList.
type OperatorStore struct {
	s *statebackend.OperatorStore
}

func init() {
	statebackend.WrapOperatorStore = func(s *statebackend.OperatorStore) any { return &OperatorStore{s: s} }
}

// IsRestored reports whether the subtask started from a snapshot (even if
// it got no elements), not empty.
func (o *OperatorStore) IsRestored() bool { return o != nil && o.s != nil && o.s.IsRestored() }

// OperatorListDescriptor declares operator list state, redistributed round
// robin when the parallelism changes.
type OperatorListDescriptor[T any] struct {
	Name string
	// Codec encodes the elements in snapshots; nil means codec.Of[T]().
	Codec codec.Codec[T]
}

// UnionListDescriptor declares union list state: on a restore every
// subtask gets the elements of all old subtasks.
type UnionListDescriptor[T any] struct {
	Name string
	// Codec encodes the elements in snapshots; nil means codec.Of[T]().
	Codec codec.Codec[T]
}

// GetOperatorList returns the subtask's list state for d, holding its
// restored elements. Getting it again returns the same state.
func GetOperatorList[T any](scope OperatorScope, d OperatorListDescriptor[T]) (ListState[T], error) {
	return getOperatorList(scope, d.Name, statebackend.SplitDistribute, d.Codec)
}

// GetUnionList returns the subtask's union list state for d, holding the
// restored elements of every old subtask. Getting it again returns the
// same state.
func GetUnionList[T any](scope OperatorScope, d UnionListDescriptor[T]) (ListState[T], error) {
	return getOperatorList(scope, d.Name, statebackend.Union, d.Codec)
}

func getOperatorList[T any](scope OperatorScope, name string, dist statebackend.Distribution, c codec.Codec[T]) (ListState[T], error) {
	if name == "" {
		return nil, fmt.Errorf("state: operator %v state needs a name", dist)
	}
	if scope == nil {
		return nil, fmt.Errorf("state %q: no scope given", name)
	}
	st := scope.OperatorStateStore()
	if st == nil || st.s == nil {
		return nil, fmt.Errorf("state %q: operator state is not available here", name)
	}
	if err := checkCodec(name, c); err != nil {
		return nil, err
	}
	l, err := statebackend.GetOperatorList(st.s, name, dist, c)
	if err != nil {
		return nil, err
	}
	return l, nil
}
