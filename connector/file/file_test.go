package file_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
	"github.com/strom-dev/strom/internal/stromtest"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	single := filepath.Join(dir, "single.txt")
	// CRLF and a last line without a newline are read as lines too.
	require.NoError(t, os.WriteFile(single, []byte("one\r\ntwo\n\nfour"), 0o644))

	env := stromtest.NewEnv(1)
	got := strom.Collect(file.FromFile(env, single))
	stromtest.MustRun(t, env, "file")
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
		env := stromtest.NewEnv(p)
		got := strom.Collect(file.FromFile(env, data))
		res := stromtest.MustRun(t, env, "dir")
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
	env := stromtest.NewEnv(2)
	strom.Discard(file.FromFile(env, missing))
	_, err := stromtest.Run(t, env, "missing file")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, `operator "File Source: `+missing+`"`)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "listing splits")
	require.ErrorContains(t, err, missing)
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

func (c custom) AppendJSON(b []byte) []byte { return fmt.Appendf(b, `{"custom":%d}`, c.N) }

type custom struct{ N int }

type rec struct {
	ID   int      `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags,omitempty"`
}

func TestWriteLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nested", "out.txt")
	env := stromtest.NewEnv(3)
	file.WriteLines(strom.FromSlice(env, stromtest.Ints(1000)), path, func(v int) string { return fmt.Sprintf("n=%d", v) })
	res := stromtest.MustRun(t, env, "write lines")
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
	env = stromtest.NewEnv(2)
	file.WriteLines(strom.FromSlice(env, stromtest.Ints(500)), partsDir, nil).Parallelism(2)
	stromtest.MustRun(t, env, "write parts")
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

func TestWriteJSONLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	var in []rec
	for i := range 300 {
		in = append(in, rec{ID: i, Name: fmt.Sprintf("r%d", i), Tags: []string{"x"}[:i%2]})
	}
	env := stromtest.NewEnv(2)
	file.WriteJSONLines(strom.FromSlice(env, in), path)
	customPath := filepath.Join(dir, "custom.jsonl")
	file.WriteJSONLines(strom.FromElements(env, custom{1}, custom{2}), customPath)
	stromtest.MustRun(t, env, "json")
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
	env := stromtest.NewEnv(1)
	file.WriteJSONLines(strom.FromElements(env, func() {}), filepath.Join(t.TempDir(), "x.jsonl"))
	_, err := stromtest.Run(t, env, "bad json")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "formatting record")
}

func TestFileSinkCannotCreate(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	env := stromtest.NewEnv(1)
	// A path under a regular file cannot be created.
	file.WriteLines(strom.FromElements(env, 1), filepath.Join(blocker, "out.txt"), nil)
	_, err := stromtest.Run(t, env, "bad path")
	require.ErrorIs(t, err, strom.ErrJobFailed)
	require.ErrorContains(t, err, "file sink")
	require.ErrorContains(t, err, "open:")
}

// A directory written at a lower parallelism than an earlier run holds only
// this run's parts: reading it back must not mix in the earlier output.
func TestWriteLinesDirectoryRemovesStaleParts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	write := func(p int, vals []int) {
		env := stromtest.NewEnv(p)
		file.WriteLines(strom.FromSlice(env, vals), dir, nil).Parallelism(p)
		stromtest.MustRun(t, env, "write")
	}
	write(4, stromtest.Ints(100))
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
	env := stromtest.NewEnv(1)
	out := strom.Collect(file.FromFile(env, dir))
	stromtest.MustRun(t, env, "read back")
	require.ElementsMatch(t, []string{"1000", "1001", "1002", "mine", "not a part"}, out.Values())
}

// A decoding error names the file and the line (counted across Reads),
// and a line longer than MaxLineBytes fails the job instead of filling
// memory.
func TestLineSourceErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.txt")
	var b strings.Builder
	for i := range 1500 { // more lines than one Read emits
		fmt.Fprintf(&b, "%d\n", i)
	}
	b.WriteString("x\n")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	decode := func(line []byte) (int, bool, error) {
		if string(line) == "x" {
			return 0, false, fmt.Errorf("bad record %q", line)
		}
		return len(line), true, nil
	}
	env := stromtest.NewEnv(1)
	strom.Discard(strom.FromSource[int](env, file.LineSource[int]{Path: path, Decode: decode}, "Lines"))
	_, err := stromtest.Run(t, env, "decode error")
	require.ErrorContains(t, err, path+`: line 1501: bad record "x"`)

	long := filepath.Join(dir, "long.txt")
	require.NoError(t, os.WriteFile(long, []byte("short\n"+strings.Repeat("y", 200<<10)+"\n"), 0o644))
	env = stromtest.NewEnv(1)
	strom.Discard(strom.FromSource[int](env, file.LineSource[int]{Path: long, Decode: decode, MaxLineBytes: 100 << 10}, "Lines"))
	_, err = stromtest.Run(t, env, "long line")
	require.ErrorContains(t, err, long+": line 2: longer than 102400 bytes")

	// Without a bound, a line longer than the read buffer is read whole.
	env = stromtest.NewEnv(1)
	got := strom.Collect(strom.FromSource[int](env, file.LineSource[int]{Path: long, Decode: decode}, "Lines"))
	stromtest.MustRun(t, env, "long line read")
	require.Equal(t, []int{5, 200 << 10}, got.Values())
}
