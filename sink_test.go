package strom_test

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

func TestCollectKeepsTimestamps(t *testing.T) {
	env := newEnv(2)
	s := strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(3000)), strom.Monotonous[int]().WithTimestamps(func(v int) int64 { return int64(v) + 1 }))
	c := strom.Collect(s)
	mustRun(t, env, "collect")
	require.Equal(t, 3000, c.Len())
	vals, ts := c.Values(), c.Timestamps()
	require.Len(t, ts, 3000)
	for i, v := range vals {
		require.Equal(t, int64(v)+1, ts[i])
	}
	require.ElementsMatch(t, rangeSlice(3000), vals)
}

func TestPrintTo(t *testing.T) {
	var buf bytes.Buffer
	env := newEnv(1)
	strom.PrintTo(strom.FromElements(env, "a", "b", "c"), &buf)
	mustRun(t, env, "print")
	require.Equal(t, "a\nb\nc\n", buf.String())

	// In parallel, lines are prefixed with the 1-based subtask, as Flink does.
	buf.Reset()
	env = newEnv(2)
	strom.PrintTo(strom.FromSlice(env, rangeSlice(100)), &buf)
	mustRun(t, env, "print parallel")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 100)
	var got []int
	prefixes := map[string]bool{}
	for _, l := range lines {
		prefix, num, ok := strings.Cut(l, "> ")
		require.True(t, ok, "line %q", l)
		prefixes[prefix] = true
		var v int
		_, err := fmt.Sscan(num, &v)
		require.NoError(t, err)
		got = append(got, v)
	}
	require.Equal(t, map[string]bool{"1": true, "2": true}, prefixes)
	require.ElementsMatch(t, rangeSlice(100), got)
}

func TestSinkFuncErrorFailsJob(t *testing.T) {
	errFull := errors.New("disk full")
	env := newEnv(2)
	strom.SinkFunc(strom.FromSlice(env, rangeSlice(1000)), func(v int) error {
		if v == 500 {
			return errFull
		}
		return nil
	}).Name("Writer")
	_, err := run(t, env, "sink error")
	requireTaskFailure(t, err, "sink error", "Writer")
	require.ErrorIs(t, err, errFull)
}

func TestSinkWriterLifecycleErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		newW  func(strom.SinkContext) (strom.SinkWriter[int], error)
		phase string
	}{
		{"create", func(strom.SinkContext) (strom.SinkWriter[int], error) { return nil, errors.New("no bucket") }, "open: no bucket"},
		{"flush", func(strom.SinkContext) (strom.SinkWriter[int], error) {
			return &funcSink[int]{write: func(int) error { return nil }, flush: func() error { return errors.New("flush lost") }}, nil
		}, "finish: flush lost"},
		{"close", func(strom.SinkContext) (strom.SinkWriter[int], error) {
			return &funcSink[int]{write: func(int) error { return nil }, close: func() error { return errors.New("close lost") }}, nil
		}, "close: close lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(1)
			strom.SinkTo(strom.FromElements(env, 1, 2, 3), "Lifecycle", tc.newW)
			_, err := run(t, env, "lifecycle")
			requireTaskFailure(t, err, "lifecycle", "Lifecycle")
			require.ErrorContains(t, err, tc.phase)
		})
	}
}

func TestSinkContext(t *testing.T) {
	env := newEnv(3)
	var got []strom.SinkContext
	ch := make(chan strom.SinkContext, 3)
	strom.SinkTo(strom.FromSlice(env, rangeSlice(10)), "Ctx", func(c strom.SinkContext) (strom.SinkWriter[int], error) {
		ch <- c
		return &funcSink[int]{write: func(int) error { return nil }}, nil
	}).UID("ctx-sink").SlotSharingGroup("sinks")
	res := mustRun(t, env, "sink ctx")
	close(ch)
	for c := range ch {
		got = append(got, c)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Subtask < got[j].Subtask })
	require.Len(t, got, 3)
	for i, c := range got {
		require.Equal(t, i, c.Subtask)
		require.Equal(t, 3, c.Parallelism)
		require.Equal(t, "sink ctx", c.JobName)
		require.NotNil(t, c.Context)
		require.Error(t, c.Context.Err(), "the subtask's context ends with the job")
	}
	op, _ := res.Operator("Ctx")
	require.Equal(t, "ctx-sink", op.UID)
}
