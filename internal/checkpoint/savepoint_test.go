package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/blob"
)

func TestSavepointLocations(t *testing.T) {
	name := NewSavepointDirName("abcdef0123")
	require.Regexp(t, `^savepoint-abcdef-[0-9a-f]{12}$`, name)
	require.NotEqual(t, name, NewSavepointDirName("abcdef0123"), "names are random")
	require.Regexp(t, `^savepoint-ab-[0-9a-f]{12}$`, NewSavepointDirName("ab"))

	u, err := StorageURL("/tmp/sp")
	require.NoError(t, err)
	require.Equal(t, "file:///tmp/sp", u)
	u, err = StorageURL("mem://x")
	require.NoError(t, err)
	require.Equal(t, "mem://x", u)
	rel, err := StorageURL("sp")
	require.NoError(t, err)
	wd, _ := os.Getwd()
	require.Equal(t, "file://"+filepath.ToSlash(filepath.Join(wd, "sp")), rel)
	_, err = StorageURL("")
	require.Error(t, err)

	for base, want := range map[string]string{
		"file:///tmp/sp":               "file:///tmp/sp/d",
		"mem://x":                      "mem://x/d",
		"s3://b/p?endpoint=http%3A%2F": "s3://b/p/d?endpoint=http%3A%2F",
		"s3://b?region=r":              "s3://b/d?region=r",
	} {
		got, err := JoinURL(base, "d")
		require.NoError(t, err)
		require.Equal(t, want, got, base)
	}

	for in, want := range map[string]string{
		"file:///tmp/sp/savepoint-a-b":           "file:///tmp/sp/savepoint-a-b",
		"file:///tmp/sp/savepoint-a-b/_metadata": "file:///tmp/sp/savepoint-a-b",
		"/tmp/sp/savepoint-a-b/_metadata":        "file:///tmp/sp/savepoint-a-b",
		"s3://b/p/savepoint-a-b/_metadata?r=1":   "s3://b/p/savepoint-a-b?r=1",
	} {
		got, err := SavepointDir(in)
		require.NoError(t, err)
		require.Equal(t, want, got, in)
	}
}

// A savepoint written with WriteSavepointMetadata loads back; a checkpoint's
// metadata, a missing one and a corrupt one are refused; dispose deletes
// every file of the directory, and refuses what is not a savepoint.
func TestSavepointLoadAndDispose(t *testing.T) {
	ctx := context.Background()
	dir := "mem://sp-load-" + NewSavepointDirName("t")
	md := &Metadata{JobID: "job", ID: 7, Kind: KindSavepoint, Operators: []OperatorState{{UID: "u", Parallelism: 1, MaxParallelism: 128,
		Subtasks: []SubtaskState{{Keyed: []StateHandle{{Path: "u/0-keyed", Size: 1}}}}}}}
	st, err := blob.Open(ctx, dir)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.Write(ctx, "u/0-keyed", []byte("k"), blob.WriteOptions{}))

	_, _, err = LoadSavepoint(ctx, dir)
	require.ErrorIs(t, err, ErrNotSavepoint, "no metadata yet")
	require.ErrorIs(t, DisposeSavepoint(ctx, dir), ErrNotSavepoint)
	ok, err := st.Exists(ctx, "u/0-keyed")
	require.NoError(t, err)
	require.True(t, ok, "a refused dispose deletes nothing")

	require.NoError(t, WriteSavepointMetadata(ctx, dir, md))
	got, gotDir, err := LoadSavepoint(ctx, dir+"/_metadata")
	require.NoError(t, err)
	require.Equal(t, dir, gotDir)
	require.Equal(t, md.ID, got.ID)
	require.Equal(t, "u/0-keyed", got.Operators[0].Subtasks[0].Keyed[0].Path)

	data, err := st.Read(ctx, "_metadata")
	require.NoError(t, err)
	data[len(data)-1] ^= 1
	require.NoError(t, st.Write(ctx, "_metadata", data, blob.WriteOptions{}))
	_, _, err = LoadSavepoint(ctx, dir)
	require.ErrorIs(t, err, ErrCorruptMetadata)
	require.ErrorIs(t, DisposeSavepoint(ctx, dir), ErrCorruptMetadata)

	ck := *md
	ck.Kind = KindCheckpoint
	require.NoError(t, WriteSavepointMetadata(ctx, dir, &ck))
	_, _, err = LoadSavepoint(ctx, dir)
	require.ErrorIs(t, err, ErrNotSavepoint)
	require.ErrorContains(t, err, "CHECKPOINT")

	require.NoError(t, WriteSavepointMetadata(ctx, dir, md))
	require.NoError(t, DisposeSavepoint(ctx, dir))
	objs, err := st.List(ctx, "")
	require.NoError(t, err)
	require.Empty(t, objs)

	_, _, err = LoadSavepoint(ctx, filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, ErrNotSavepoint)
	require.True(t, errors.Is(err, blob.ErrNotFound))
}
