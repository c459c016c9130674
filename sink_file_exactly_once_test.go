package strom_test

// The exactly-once file sink (connector/file) through real jobs and the
// task seam: what readers see of its directory, before and after
// notifications, across a crash and a restore.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
)

// dirFiles splits dir's entries into visible (committed) and hidden
// (in-progress) names, and returns the visible files' lines, sorted as
// numbers.
func dirFiles(t *testing.T, dir string) (visible, hidden []string, lines []int) {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") {
			hidden = append(hidden, e.Name())
			continue
		}
		visible = append(visible, e.Name())
		if !strings.HasPrefix(e.Name(), "part-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		for _, l := range strings.Fields(string(b)) {
			v, err := strconv.Atoi(l)
			require.NoError(t, err)
			lines = append(lines, v)
		}
	}
	slices.Sort(lines)
	return visible, hidden, lines
}

// Without checkpoints the files are committed at the end of input.
func TestExactlyOnceFileSinkWithoutCheckpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	env := strom.NewEnvironment().SetParallelism(2)
	file.WriteLinesExactlyOnce(strom.FromSlice(env, rangeSlice(100)), dir, nil)
	_, err := env.Execute(context.Background(), t.Name())
	require.NoError(t, err)
	visible, hidden, lines := dirFiles(t, dir)
	require.Empty(t, hidden)
	require.Equal(t, []string{"part-0-0-9223372036854775807", "part-1-0-9223372036854775807"}, visible)
	require.Equal(t, rangeSlice(100), lines)

	// A second run into the same directory would commit onto the first
	// run's names: it fails rather than replace them.
	env = strom.NewEnvironment().SetParallelism(2)
	file.WriteLinesExactlyOnce(strom.FromSlice(env, rangeSlice(10)), dir, nil)
	_, err = env.Execute(context.Background(), t.Name()+"-again")
	require.ErrorContains(t, err, "refusing to overwrite")
	_, _, lines = dirFiles(t, dir)
	require.Equal(t, rangeSlice(100), lines)

	type rec struct{ N int }
	jdir := t.TempDir()
	env = strom.NewEnvironment()
	file.WriteJSONLinesExactlyOnce(strom.FromElements(env, rec{1}, rec{2}), jdir)
	_, err = env.Execute(context.Background(), t.Name()+"-json")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(jdir, "part-0-0-9223372036854775807"))
	require.NoError(t, err)
	require.Equal(t, "{\"N\":1}\n{\"N\":2}\n", string(b))
}

// Only committed files are visible; a crash after checkpoint 2 completed
// but before its commit is made up by the restore, which also deletes what
// earlier attempts left in progress; every record before the last
// checkpoint is visible exactly once, none after it.
func TestExactlyOnceFileSinkCheckpointsAndRestore(t *testing.T) {
	dir := t.TempDir()
	job := func(ch chan int) *strom.Environment {
		env := strom.NewEnvironment().SetParallelism(2)
		file.WriteLinesExactlyOnce(strom.FromSource[int](env, chanSource{ch}, "chan").UID("src"), dir, nil).UID("sink")
		return env
	}
	allHidden := func(names []string) {
		for _, n := range names {
			require.True(t, strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".inprogress"), n)
		}
	}
	ch := make(chan int)
	j := startSeamJob(t, job(ch), nil)
	send(ch, 0, 50)
	waitRecordsIn(t, j, "sink", 50)
	_, err := j.snapshot(1, 2)
	require.NoError(t, err)
	send(ch, 50, 60)
	waitRecordsIn(t, j, "sink", 60)
	visible, hidden, _ := dirFiles(t, dir)
	require.Empty(t, visible, "nothing is visible before the notification")
	require.NotEmpty(t, hidden)
	allHidden(hidden)

	j.notify(1, 2, true)
	require.Eventually(t, func() bool {
		_, _, lines := dirFiles(t, dir)
		return slices.Equal(lines, rangeSlice(50))
	}, 10*time.Second, time.Millisecond)
	visible, hidden, _ = dirFiles(t, dir)
	for _, n := range visible {
		require.Regexp(t, `^part-[01]-0-1$`, n)
	}
	allHidden(hidden)

	send(ch, 60, 70)
	waitRecordsIn(t, j, "sink", 70)
	snaps, err := j.snapshot(2, 2)
	require.NoError(t, err)
	send(ch, 70, 80) // after checkpoint 2: never visible
	waitRecordsIn(t, j, "sink", 80)
	j.cancel() // the crash: checkpoint 2 is complete, its notification never came
	_, hidden, lines := dirFiles(t, dir)
	require.Equal(t, rangeSlice(50), lines)
	allHidden(hidden)
	// What an earlier attempt left in progress, and files not the sink's.
	for _, n := range []string{".part-0-7-1.inprogress", ".part-1-7-open.inprogress", "notes.txt", ".notes"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("999\n"), 0o644))
	}

	j2 := startSeamJob(t, job(make(chan int)), restoreAt(t, snaps, map[string]int{"sink": 2}))
	j2.tasksOf(2)
	require.Eventually(t, func() bool {
		_, hidden, lines := dirFiles(t, dir)
		return slices.Equal(lines, rangeSlice(70)) && slices.Equal(hidden, []string{".notes"})
	}, 10*time.Second, time.Millisecond)
	j2.cancel()
	visible, _, _ = dirFiles(t, dir)
	for _, n := range visible {
		require.Regexp(t, `^(part-[01]-0-[12]|notes.txt)$`, n)
	}
}
