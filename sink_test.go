package strom_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}

func TestWriteLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "out.txt")
	env := newEnv(3)
	strom.WriteLines(strom.FromSlice(env, rangeSlice(1000)), path, func(v int) string { return fmt.Sprintf("n=%d", v) })
	res := mustRun(t, env, "write lines")
	lines := readLines(t, path)
	want := make([]string, 1000)
	for i := range want {
		want[i] = fmt.Sprintf("n=%d", i)
	}
	require.ElementsMatch(t, want, lines)
	sink, ok := res.Operator("File Sink: " + path)
	require.True(t, ok)
	require.Equal(t, 1, sink.Parallelism, "one file: one writer")

	// Default formatting; a parallel sink writes part files into a directory.
	partsDir := filepath.Join(dir, "parts")
	env = newEnv(2)
	strom.WriteLines(strom.FromSlice(env, rangeSlice(500)), partsDir, nil).Parallelism(2)
	mustRun(t, env, "write parts")
	var all []string
	for i := range 2 {
		part := readLines(t, filepath.Join(partsDir, fmt.Sprintf("part-%d", i)))
		require.NotEmpty(t, part)
		all = append(all, part...)
	}
	want = want[:0]
	for i := range 500 {
		want = append(want, fmt.Sprint(i))
	}
	require.ElementsMatch(t, want, all)
}

type rec struct {
	ID   int      `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags,omitempty"`
}

type custom struct{ N int }

func (c custom) AppendJSON(b []byte) []byte { return fmt.Appendf(b, `{"custom":%d}`, c.N) }

func TestWriteJSONLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	var in []rec
	for i := range 300 {
		in = append(in, rec{ID: i, Name: fmt.Sprintf("r%d", i), Tags: []string{"x"}[:i%2]})
	}
	env := newEnv(2)
	strom.WriteJSONLines(strom.FromSlice(env, in), path)
	customPath := filepath.Join(dir, "custom.jsonl")
	strom.WriteJSONLines(strom.FromElements(env, custom{1}, custom{2}), customPath)
	mustRun(t, env, "json")
	var back []rec
	for _, l := range readLines(t, path) {
		var r rec
		require.NoError(t, json.Unmarshal([]byte(l), &r), "line %q", l)
		back = append(back, r)
	}
	sort.Slice(back, func(i, j int) bool { return back[i].ID < back[j].ID })
	require.Len(t, back, 300)
	for i, r := range back {
		require.Equal(t, in[i].ID, r.ID)
		require.Equal(t, in[i].Name, r.Name)
		require.Equal(t, len(in[i].Tags), len(r.Tags), "empty tags are omitted")
	}
	require.ElementsMatch(t, []string{`{"custom":1}`, `{"custom":2}`}, readLines(t, customPath))
}

func TestWriteJSONLinesUnencodable(t *testing.T) {
	env := newEnv(1)
	strom.WriteJSONLines(strom.FromElements(env, func() {}), filepath.Join(t.TempDir(), "x.jsonl"))
	_, err := run(t, env, "bad json")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "formatting record")
}

func TestFileSinkCannotCreate(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	env := newEnv(1)
	// A path under a regular file cannot be created.
	strom.WriteLines(strom.FromElements(env, 1), filepath.Join(blocker, "out.txt"), nil)
	_, err := run(t, env, "bad path")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "file sink")
	require.ErrorContains(t, err, "open:")
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

// A directory written at a lower parallelism than an earlier run holds only
// this run's parts: reading it back must not mix in the earlier output.
func TestWriteLinesDirectoryRemovesStaleParts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	write := func(p int, vals []int) {
		env := newEnv(p)
		strom.WriteLines(strom.FromSlice(env, vals), dir, nil).Parallelism(p)
		mustRun(t, env, "write")
	}
	write(4, rangeSlice(100))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "part-x"), []byte("not a part"), 0o644))
	write(2, []int{1000, 1001, 1002})

	var got []string
	var names []string
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
		if !strings.HasPrefix(e.Name(), "part-") || e.Name() == "part-x" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		got = append(got, strings.Fields(string(b))...)
	}
	require.ElementsMatch(t, []string{"README", "part-0", "part-1", "part-x"}, names, "other files stay")
	require.ElementsMatch(t, []string{"1000", "1001", "1002"}, got)

	// FromFile on the directory reads exactly this run's records plus the
	// user's own files.
	env := newEnv(1)
	out := strom.Collect(strom.FromFile(env, dir))
	mustRun(t, env, "read back")
	require.ElementsMatch(t, []string{"1000", "1001", "1002", "mine", "not a part"}, out.Values())
}
