package statebackend

import (
	"fmt"
	"reflect"

	"github.com/strom-dev/strom/codec"
)

// Operator (non-keyed) state: named lists of elements that belong to an
// operator subtask as a whole, not to a key (Flink's OperatorStateStore).
// A snapshot holds each list's elements encoded one by one, so a rescale
// can move elements between subtasks without knowing their type (see
// RedistributeOperatorState).

// Distribution says how a list's elements are spread over the subtasks of a
// new parallelism when the job is restored.
type Distribution uint8

const (
	// SplitDistribute deals the elements of all old subtasks out round robin
	// over the new subtasks: every element ends up in exactly one (Flink's
	// getListState).
	SplitDistribute Distribution = iota
	// Union gives every new subtask all elements of all old subtasks
	// (Flink's getUnionListState).
	Union
)

func (d Distribution) String() string {
	if d == Union {
		return "union list"
	}
	return "list"
}

// OperatorState is one list of a snapshot of operator state.
type OperatorState struct {
	Name     string
	Mode     Distribution
	Elements [][]byte
}

// operatorList is what a registered list of any element type offers the
// store.
type operatorList interface {
	mode() Distribution
	encode() ([][]byte, error)
}

// OperatorStore holds the operator state of one operator subtask. It lives
// on the task goroutine, like keyed state: no locks.
type OperatorStore struct {
	restored bool
	states   map[string]operatorList
	order    []string
	// pending is restored state not declared yet. It is written again by
	// snapshots as it was, so state an operator declares only later (or
	// no longer) is never lost.
	pending      map[string]OperatorState
	pendingOrder []string
}

// NewOperatorStore returns a store holding restored (the lists an operator
// subtask gets on a restore, already redistributed, at most one per name).
// restored says the subtask is restored from a snapshot at all, even if it
// got no lists (Flink's isRestored).
func NewOperatorStore(restored bool, lists []OperatorState) (*OperatorStore, error) {
	s := &OperatorStore{restored: restored, states: map[string]operatorList{}, pending: map[string]OperatorState{}}
	for _, l := range lists {
		if _, dup := s.pending[l.Name]; dup {
			return nil, fmt.Errorf("operator state %q restored twice", l.Name)
		}
		s.pending[l.Name] = l
		s.pendingOrder = append(s.pendingOrder, l.Name)
	}
	return s, nil
}

// IsRestored reports whether the subtask was restored from a snapshot.
func (s *OperatorStore) IsRestored() bool { return s.restored }

// OperatorList is a list of operator state. Its elements are kept as Go
// values and encoded only when a snapshot is taken.
type OperatorList[T any] struct {
	name  string
	dist  Distribution
	c     codec.Codec[T]
	elems []T
}

// GetOperatorList returns the list named name, registering it on first use
// with its restored elements (decoded with c; nil means codec.For[T]).
// Declaring a name again with another distribution or element type is an
// error, and so is restored data of another distribution.
func GetOperatorList[T any](s *OperatorStore, name string, dist Distribution, c codec.Codec[T]) (*OperatorList[T], error) {
	if old, ok := s.states[name]; ok {
		l, ok := old.(*OperatorList[T])
		if !ok || l.dist != dist {
			return nil, fmt.Errorf("operator state %q is already declared as a %v of another type (%T), not a %v of %v", name, old.mode(), old, dist, reflect.TypeFor[T]())
		}
		return l, nil
	}
	if c == nil {
		var err error
		if c, err = codecFor[T](fmt.Sprintf("operator state %q element", name)); err != nil {
			return nil, err
		}
	}
	l := &OperatorList[T]{name: name, dist: dist, c: c}
	if p, ok := s.pending[name]; ok {
		if p.Mode != dist {
			return nil, fmt.Errorf("operator state %q was snapshotted as a %v and is declared as a %v", name, p.Mode, dist)
		}
		l.elems = make([]T, 0, len(p.Elements))
		for i, b := range p.Elements {
			v, err := decodeElement(c, b)
			if err != nil {
				return nil, fmt.Errorf("operator state %q, element %d: %w", name, i, err)
			}
			l.elems = append(l.elems, v)
		}
		delete(s.pending, name)
		for i, n := range s.pendingOrder {
			if n == name {
				s.pendingOrder = append(s.pendingOrder[:i:i], s.pendingOrder[i+1:]...)
				break
			}
		}
	}
	s.states[name] = l
	s.order = append(s.order, name)
	return l, nil
}

// decodeElement decodes exactly one value from b; a codec that panics or
// leaves bytes over means the snapshot does not hold what the state
// declares.
func decodeElement[T any](c codec.Codec[T], b []byte) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("decoding %v: %v", reflect.TypeFor[T](), r)
		}
	}()
	v, n, err := c.Decode(b)
	if err != nil {
		return v, corruptf("decoding %v: %v", reflect.TypeFor[T](), err)
	}
	if n != len(b) {
		return v, corruptf("decoding %v: %d of %d bytes used", reflect.TypeFor[T](), n, len(b))
	}
	return v, nil
}

// Get returns the elements (nil when empty); callers must not modify it.
func (l *OperatorList[T]) Get() []T { return l.elems }

// Add appends v.
func (l *OperatorList[T]) Add(v T) { l.elems = append(l.elems, v) }

// AddAll appends vs.
func (l *OperatorList[T]) AddAll(vs []T) { l.elems = append(l.elems, vs...) }

// Update replaces the elements with a copy of vs.
func (l *OperatorList[T]) Update(vs []T) { l.elems = append([]T(nil), vs...) }

// Clear removes every element.
func (l *OperatorList[T]) Clear() { l.elems = nil }

func (l *OperatorList[T]) mode() Distribution { return l.dist }

func (l *OperatorList[T]) encode() (out [][]byte, err error) {
	defer func() {
		// A codec reports what it cannot encode by panicking (codec.Of's
		// rule); a snapshot reports it as an error naming the state.
		if r := recover(); r != nil {
			err = fmt.Errorf("operator state %q: encoding %v: %v", l.name, reflect.TypeFor[T](), r)
		}
	}()
	out = make([][]byte, len(l.elems))
	for i, v := range l.elems {
		out[i] = l.c.Append(nil, v)
	}
	return out, nil
}

// Snapshot encodes every list: the declared ones in declaration order, then
// restored ones not declared yet, as they were restored.
func (s *OperatorStore) Snapshot() ([]OperatorState, error) {
	out := make([]OperatorState, 0, len(s.order)+len(s.pendingOrder))
	for _, name := range s.order {
		l := s.states[name]
		elems, err := l.encode()
		if err != nil {
			return nil, err
		}
		out = append(out, OperatorState{Name: name, Mode: l.mode(), Elements: elems})
	}
	for _, name := range s.pendingOrder {
		out = append(out, s.pending[name])
	}
	return out, nil
}

// RedistributeOperatorState computes the operator state of each of n new
// subtasks from old, the snapshots of the old subtasks in subtask order.
// A SplitDistribute list's elements, taken subtask by subtask in order, go
// round robin to the new subtasks (element i of the concatenation to
// subtask i mod n), so the result is deterministic and every element lands
// exactly once; a Union list's elements all go to every new subtask. Every
// new subtask gets an entry for every list name, if only an empty one, so
// it can tell "restored, nothing for me" from "never snapshotted".
func RedistributeOperatorState(old [][]OperatorState, n int) ([][]OperatorState, error) {
	if n < 1 {
		return nil, fmt.Errorf("redistributing operator state to %d subtasks", n)
	}
	type merged struct {
		mode  Distribution
		elems [][]byte
	}
	byName := map[string]*merged{}
	var names []string
	for sub, states := range old {
		for _, st := range states {
			m, ok := byName[st.Name]
			if !ok {
				m = &merged{mode: st.Mode}
				byName[st.Name] = m
				names = append(names, st.Name)
			} else if m.mode != st.Mode {
				return nil, fmt.Errorf("operator state %q is a %v in one old subtask and a %v in subtask %d", st.Name, m.mode, st.Mode, sub)
			}
			m.elems = append(m.elems, st.Elements...)
		}
	}
	out := make([][]OperatorState, n)
	for _, name := range names {
		m := byName[name]
		per := make([][][]byte, n)
		if m.mode == Union {
			for i := range per {
				per[i] = m.elems
			}
		} else {
			for i, e := range m.elems {
				per[i%n] = append(per[i%n], e)
			}
		}
		for i := range out {
			out[i] = append(out[i], OperatorState{Name: name, Mode: m.mode, Elements: per[i]})
		}
	}
	return out, nil
}

// WrapOperatorStore wraps an *OperatorStore in the public API's opaque
// state.OperatorStore (set by package state when it is initialised, as
// WrapStore).
var WrapOperatorStore func(s *OperatorStore) any
