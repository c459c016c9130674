package strom_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

func TestFromSliceAndElements(t *testing.T) {
	for _, p := range []int{1, 2, 4, 7} {
		env := newEnv(p)
		data := rangeSlice(1234)
		s := strom.Collect(strom.FromSlice(env, data))
		e := strom.Collect(strom.FromElements(env, "a", "b"))
		empty := strom.Collect(strom.FromSlice(env, []int{}))
		res := mustRun(t, env, "slices")
		require.ElementsMatch(t, data, s.Values(), "parallelism %d", p)
		require.ElementsMatch(t, []string{"a", "b"}, e.Values())
		require.Zero(t, empty.Len())
		src, ok := res.Operator("Slice Source")
		require.True(t, ok)
		require.Equal(t, p, src.Parallelism)
	}
}

func TestFromIterator(t *testing.T) {
	var stopped atomic.Bool
	seq := func(yield func(string) bool) {
		defer stopped.Store(true)
		for i := range 2000 {
			if !yield(fmt.Sprint(i)) {
				return
			}
		}
	}
	env := newEnv(4) // an iterator cannot be split: the source runs alone
	out := strom.Collect(strom.FromIterator(env, iter.Seq[string](seq)))
	res := mustRun(t, env, "iterator")
	want := make([]string, 2000)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	require.ElementsMatch(t, want, out.Values())
	src, _ := res.Operator("Iterator Source")
	require.Equal(t, 1, src.Parallelism)
	require.True(t, stopped.Load())
}

// A user Source: its errors fail the job naming the source.
type badSource struct{ splitsErr, readerErr, readErr error }

func (s badSource) Bounded() bool { return true }
func (s badSource) Splits(p int) ([]strom.Split, error) {
	return []strom.Split{split("only")}, s.splitsErr
}
func (s badSource) NewReader(strom.SourceContext, []strom.Split) (strom.SourceReader[int], error) {
	if s.readerErr != nil {
		return nil, s.readerErr
	}
	return &badReader{err: s.readErr}, nil
}

type split string

func (s split) SplitID() string { return string(s) }

type badReader struct {
	err error
	n   int
}

func (r *badReader) Read(out strom.SourceOutput[int]) (strom.ReadStatus, error) {
	if r.n == 3 {
		return strom.ReadStatus{}, r.err
	}
	out.CollectAt(r.n, int64(r.n))
	r.n++
	if r.err == nil && r.n == 3 {
		return strom.ReadStatus{Done: true}, nil
	}
	return strom.ReadStatus{}, nil
}
func (r *badReader) Snapshot() ([]strom.Split, error) { return nil, nil }
func (r *badReader) Close() error                     { return nil }

func TestCustomSource(t *testing.T) {
	env := newEnv(1)
	ok := strom.Collect(strom.FromSource[int](env, badSource{}, "Custom"))
	mustRun(t, env, "custom")
	require.Equal(t, []int{0, 1, 2}, ok.Values())
	require.Equal(t, []int64{0, 1, 2}, ok.Timestamps())

	for _, tc := range []struct {
		src  badSource
		want string
	}{
		{badSource{splitsErr: errors.New("no partitions")}, `source "Custom": listing splits: no partitions`},
		{badSource{readerErr: errors.New("no broker")}, `source "Custom": creating reader: no broker`},
		{badSource{readErr: errors.New("corrupt record")}, "corrupt record"},
	} {
		env := newEnv(1)
		strom.Discard(strom.FromSource[int](env, tc.src, "Custom"))
		_, err := run(t, env, "custom source")
		requireTaskFailure(t, err, "custom source", "Custom")
		require.ErrorContains(t, err, tc.want)
	}
}

// An iterator source cannot be split: asking for more subtasks is an error
// instead of a parallelism that is reported but not used.
func TestFromIteratorRefusesParallelism(t *testing.T) {
	seq := func(yield func(int) bool) {
		for i := range 5 {
			if !yield(i) {
				return
			}
		}
	}
	env := newEnv(4)
	strom.Discard(strom.FromIterator(env, seq).Parallelism(3))
	_, err := env.Execute(context.Background(), "iter")
	require.ErrorContains(t, err, `operator "Iterator Source" runs as one subtask only (an iterator cannot be split); parallelism 3 is not possible`)

	// With the environment's default parallelism of 4 it runs as one
	// subtask, and says so in its results.
	env = newEnv(4)
	out := strom.Collect(strom.FromIterator(env, seq).Name("it"))
	res := mustRun(t, env, "iter")
	require.ElementsMatch(t, []int{0, 1, 2, 3, 4}, out.Values())
	op, ok := res.Operator("it")
	require.True(t, ok)
	require.Equal(t, 1, op.Parallelism)
}
