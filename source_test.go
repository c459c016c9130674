package strom_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "single.txt")
	// CRLF and a last line without a newline are read as lines too.
	require.NoError(t, os.WriteFile(file, []byte("one\r\ntwo\n\nfour"), 0o644))

	env := newEnv(1)
	got := strom.Collect(strom.FromFile(env, file))
	mustRun(t, env, "file")
	require.Equal(t, []string{"one", "two", "", "four"}, got.Values())

	// A directory: every visible file, over the source's subtasks.
	data := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(data, 0o755))
	var want []string
	for f := range 5 {
		var b strings.Builder
		for l := range 1000 {
			line := fmt.Sprintf("f%d-l%d", f, l)
			want = append(want, line)
			b.WriteString(line + "\n")
		}
		require.NoError(t, os.WriteFile(filepath.Join(data, fmt.Sprintf("part-%d.txt", f)), []byte(b.String()), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(data, ".hidden"), []byte("no\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(data, "_in-progress"), []byte("no\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(data, "subdir"), 0o755))
	for _, p := range []int{1, 3} {
		env := newEnv(p)
		got := strom.Collect(strom.FromFile(env, data))
		res := mustRun(t, env, "dir")
		lines := got.Values()
		slices.Sort(lines)
		slices.Sort(want)
		require.Equal(t, want, lines, "parallelism %d", p)
		src, ok := res.Operator("File Source: " + data)
		require.True(t, ok)
		require.Equal(t, int64(5000), src.RecordsOut)
	}
}

func TestFromFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "does-not-exist.txt")
	env := newEnv(2)
	strom.Discard(strom.FromFile(env, missing))
	_, err := run(t, env, "missing file")
	requireTaskFailure(t, err, "missing file", "File Source: "+missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "listing splits")
	require.ErrorContains(t, err, missing)
}

func TestFromGeneratorCount(t *testing.T) {
	for _, p := range []int{1, 3} {
		env := newEnv(p)
		got := strom.Collect(strom.FromGenerator(env, func(i int64) int64 { return i * i }, strom.Count(10000)))
		zero := strom.Collect(strom.FromGenerator(env, func(i int64) int64 { return i }, strom.Count(0)))
		mustRun(t, env, "generator")
		vals := got.Values()
		require.Len(t, vals, 10000)
		seen := make(map[int64]bool, len(vals))
		for _, v := range vals {
			require.False(t, seen[v], "index generated twice")
			seen[v] = true
		}
		for i := range int64(10000) {
			require.True(t, seen[i*i])
		}
		require.Zero(t, zero.Len())
	}
}

func TestFromGeneratorRate(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := newEnv(p)
		strom.Discard(strom.FromGenerator(env, func(i int64) int64 { return i }, strom.Count(200), strom.RatePerSecond(1000)))
		start := time.Now()
		res := mustRun(t, env, "rate")
		elapsed := time.Since(start)
		// 200 records at 1000/s take 200ms; allow for the first batch.
		require.GreaterOrEqual(t, elapsed, 150*time.Millisecond, "parallelism %d", p)
		require.Less(t, elapsed, 10*time.Second)
		d, _ := res.Operator("Discard")
		require.Equal(t, int64(200), d.RecordsIn)
	}
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
