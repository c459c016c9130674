package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// prepared writes one pre-committed file per checkpoint 1..n of subtask 0,
// holding the line "cp<n>".
func prepared(t *testing.T, dir string, n int) []pendingFile {
	t.Helper()
	w := &exactlyOnceWriter[string]{dir: dir, attempt: 2, format: lineFormat[string](nil)}
	var out []pendingFile
	for cp := 1; cp <= n; cp++ {
		require.NoError(t, w.Write(fmt.Sprintf("cp%d", cp), 0))
		ps, err := w.PrepareCommit(int64(cp))
		require.NoError(t, err)
		require.Len(t, ps, 1)
		out = append(out, ps...)
	}
	ps, err := w.PrepareCommit(int64(n + 1))
	require.NoError(t, err)
	require.Empty(t, ps, "nothing written since the last pre-commit: no file")
	require.NoError(t, w.Close())
	return out
}

func TestExactlyOnceWriterNamesFiles(t *testing.T) {
	dir := t.TempDir()
	w := &exactlyOnceWriter[string]{dir: dir, subtask: 3, attempt: 1, format: lineFormat[string](nil)}
	require.NoError(t, w.Write("a", 0))
	require.NoError(t, w.Flush())
	require.Equal(t, []string{".part-3-1-open.inprogress"}, names(t, dir))
	ps, err := w.PrepareCommit(7)
	require.NoError(t, err)
	require.Equal(t, []pendingFile{{InProgress: filepath.Join(dir, ".part-3-1-7.inprogress"), Final: filepath.Join(dir, "part-3-1-7")}}, ps)
	require.NoError(t, w.Write("b", 0))
	require.NoError(t, w.Close())
	require.Equal(t, []string{".part-3-1-7.inprogress"}, names(t, dir), "Close drops the working file, keeps the pre-commit")
	for _, n := range names(t, dir) {
		require.Regexp(t, inProgressName, n)
	}
}

// A commit that fails half way (the third rename cannot be done) is
// retried as a whole: the renames done are skipped, the rest done, and
// every file holds its checkpoint's line once.
func TestFileCommitterRetryAfterFailureHalfWay(t *testing.T) {
	dir := t.TempDir()
	ps := prepared(t, dir, 4)
	c := fileCommitter{dir: dir}
	// Something else holds the third file's final name.
	require.NoError(t, os.MkdirAll(filepath.Join(ps[2].Final, "x"), 0o755))
	err := c.Commit(context.Background(), ps)
	require.ErrorContains(t, err, "refusing to overwrite")
	require.ErrorContains(t, err, "3 of 4")
	require.Equal(t, []string{".part-0-2-3.inprogress", ".part-0-2-4.inprogress", "part-0-2-1", "part-0-2-2", "part-0-2-3"}, names(t, dir))

	require.NoError(t, os.RemoveAll(ps[2].Final))
	require.NoError(t, c.Commit(context.Background(), ps))
	require.NoError(t, c.Commit(context.Background(), ps), "committing again is a no-op")
	require.Equal(t, []string{"part-0-2-1", "part-0-2-2", "part-0-2-3", "part-0-2-4"}, names(t, dir))
	for i, p := range ps {
		b, err := os.ReadFile(p.Final)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("cp%d\n", i+1), string(b))
	}

	// A pre-commit that is lost (neither name exists) is an error, not a
	// silent success.
	err = c.Commit(context.Background(), []pendingFile{{InProgress: filepath.Join(dir, ".part-0-2-9.inprogress"), Final: filepath.Join(dir, "part-0-2-9")}})
	require.ErrorContains(t, err, "lost")
}

// Recover deletes only unreferenced hidden files of the sink's naming
// pattern that belong to subtasks this subtask owns.
func TestFileCommitterRecoverDeletesStaleInProgress(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		".part-0-0-5.inprogress",    // referenced: kept
		".part-0-0-6.inprogress",    // stale pre-commit: deleted
		".part-0-1-open.inprogress", // stale working file: deleted
		".part-2-0-6.inprogress",    // old subtask 2 → 2 mod 2 = 0: deleted
		".part-1-0-6.inprogress",    // subtask 1's: kept
		".part-x-0-6.inprogress",    // not the sink's
		".other.inprogress",         // not the sink's
		"part-0-0-4",                // committed
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	restored := []pendingFile{{InProgress: filepath.Join(dir, ".part-0-0-5.inprogress"), Final: filepath.Join(dir, "part-0-0-5")}}
	require.NoError(t, fileCommitter{dir: dir}.Recover(strom.SinkContext{Subtask: 0, Parallelism: 2}, restored))
	got := names(t, dir)
	slices.Sort(got)
	require.Equal(t, []string{".other.inprogress", ".part-0-0-5.inprogress", ".part-1-0-6.inprogress", ".part-x-0-6.inprogress", "part-0-0-4"}, got)
}
