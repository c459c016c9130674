package dispatcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// failingReader yields some bytes, then an error: an upload cut short.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("connection reset")
}

func TestDirStoreIsContentAddressedAndKeepsNothingOfAFailedUpload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewDirStore(dir, 16)
	require.NoError(t, err)

	a, err := s.Put(ctx, "/tmp/upload/wordcount", strings.NewReader("binary A"))
	require.NoError(t, err)
	require.Equal(t, sha("binary A"), a.ID)
	require.Equal(t, "wordcount", a.Name)
	require.Equal(t, filepath.Join(dir, a.ID), a.Path)
	require.True(t, strings.HasSuffix(a.Path, a.ID))
	fi, err := os.Stat(a.Path)
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&0o100, "stored executable")

	again, err := s.Put(ctx, "other-name", strings.NewReader("binary A"))
	require.NoError(t, err)
	require.Equal(t, a, again, "the same content is stored once, under its first name")
	b, err := s.Put(ctx, "b", strings.NewReader("binary B"))
	require.NoError(t, err)

	list, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, a.ID, list[0].ID, "oldest first")
	require.Equal(t, b.ID, list[1].ID)

	rc, got, err := s.Open(ctx, b.ID)
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	require.Equal(t, "binary B", string(data))
	require.Equal(t, b, got)

	// Too large, or cut short: an error, and nothing kept.
	_, err = s.Put(ctx, "big", strings.NewReader(strings.Repeat("x", 17)))
	require.ErrorIs(t, err, ErrBinaryTooLarge)
	_, err = s.Put(ctx, "cut", &failingReader{})
	require.ErrorContains(t, err, "connection reset")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 4, "two binaries and their metadata, no temporary file")

	require.NoError(t, s.Delete(ctx, a.ID))
	require.ErrorIs(t, s.Delete(ctx, a.ID), ErrUnknownBinary)
	_, _, err = s.Open(ctx, a.ID)
	require.ErrorIs(t, err, ErrUnknownBinary)
	for _, bad := range []string{"", "..", "../x", strings.ToUpper(b.ID), b.ID + ".meta", sha("x")} {
		_, _, err = s.Open(ctx, bad)
		require.ErrorIs(t, err, ErrUnknownBinary, "%q", bad)
		require.ErrorIs(t, s.Delete(ctx, bad), ErrUnknownBinary, "%q", bad)
	}
	list, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []StoredBinary{b}, list)

	// A leftover of an upload interrupted by a crash goes on reopening.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".upload-123"), []byte("x"), 0o600))
	_, err = NewDirStore(dir, 0)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, ".upload-123"))
	require.True(t, os.IsNotExist(err))

	_, err = s.Put(ctx, "late", bytes.NewReader([]byte("y")))
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cctx, "cancelled", strings.NewReader("z"))
	require.ErrorIs(t, err, context.Canceled)
}
