package blob_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/internal/blob"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startFakeS3 runs gofakes3 on a loopback port until the test ends and
// returns an s3:// URL for a fresh bucket under a key prefix.
func startFakeS3(t *testing.T) string {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("ckpt"))
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	q := url.Values{
		"endpoint":       {srv.URL},
		"region":         {"us-east-1"},
		"use_path_style": {"true"},
		"disable_https":  {"true"},
		// gofakes3 does not check signatures; anonymous keeps the SDK
		// from searching for credentials (environment, files, EC2
		// metadata) on a test machine.
		"anonymous": {"true"},
	}
	return "s3://ckpt/some/prefix?" + q.Encode()
}

// drivers are the stores every conformance test runs against.
func drivers(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"file": func(t *testing.T) string { return "file://" + filepath.Join(t.TempDir(), "not", "yet") },
		"mem":  func(t *testing.T) string { return "mem://" },
		"s3":   startFakeS3,
	}
}

func openStore(t *testing.T, u string) blob.Store {
	t.Helper()
	s, err := blob.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	for name, newURL := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("ReadWrite", func(t *testing.T) { testReadWrite(t, openStore(t, newURL(t))) })
			t.Run("NotFound", func(t *testing.T) { testNotFound(t, openStore(t, newURL(t))) })
			t.Run("Exclusive", func(t *testing.T) { testExclusive(t, openStore(t, newURL(t))) })
			t.Run("List", func(t *testing.T) { testList(t, openStore(t, newURL(t))) })
			t.Run("AbortedWriteFrom", func(t *testing.T) { testAbortedWriteFrom(t, openStore(t, newURL(t))) })
		})
	}
}

func testReadWrite(t *testing.T, s blob.Store) {
	ctx := context.Background()
	require.NoError(t, s.Write(ctx, "job/chk-1/a", []byte("hello"), blob.WriteOptions{}))
	got, err := s.Read(ctx, "job/chk-1/a")
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))

	// A plain write replaces.
	require.NoError(t, s.Write(ctx, "job/chk-1/a", []byte("bye"), blob.WriteOptions{}))
	got, err = s.Read(ctx, "job/chk-1/a")
	require.NoError(t, err)
	require.Equal(t, "bye", string(got))

	big := strings.Repeat("0123456789", 100_000)
	require.NoError(t, s.WriteFrom(ctx, "job/chk-1/big", strings.NewReader(big), blob.WriteOptions{}))
	got, err = s.Read(ctx, "job/chk-1/big")
	require.NoError(t, err)
	require.Equal(t, big, string(got))

	// An empty object is an object.
	require.NoError(t, s.Write(ctx, "job/empty", nil, blob.WriteOptions{}))
	ok, err := s.Exists(ctx, "job/empty")
	require.NoError(t, err)
	require.True(t, ok)

	require.NoError(t, s.Delete(ctx, "job/chk-1/a"))
	ok, err = s.Exists(ctx, "job/chk-1/a")
	require.NoError(t, err)
	require.False(t, ok)
}

func testNotFound(t *testing.T, s blob.Store) {
	ctx := context.Background()
	_, err := s.Read(ctx, "job/missing")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.Contains(t, err.Error(), s.URL())
	require.Contains(t, err.Error(), "job/missing")
	var be *blob.Error
	require.ErrorAs(t, err, &be)
	require.Equal(t, "read", be.Op)

	err = s.Delete(ctx, "job/missing")
	require.ErrorIs(t, err, blob.ErrNotFound)

	ok, err := s.Exists(ctx, "job/missing")
	require.NoError(t, err)
	require.False(t, ok)

	objs, err := s.List(ctx, "nothing/")
	require.NoError(t, err)
	require.Empty(t, objs)
}

func testExclusive(t *testing.T, s blob.Store) {
	ctx := context.Background()
	ex := blob.WriteOptions{Exclusive: true}
	require.NoError(t, s.Write(ctx, "job/_ptr", []byte("1"), ex))
	err := s.Write(ctx, "job/_ptr", []byte("2"), ex)
	require.ErrorIs(t, err, blob.ErrExists)
	require.Contains(t, err.Error(), "job/_ptr")
	got, err := s.Read(ctx, "job/_ptr")
	require.NoError(t, err)
	require.Equal(t, "1", string(got), "a refused exclusive write changes nothing")

	if !s.ExclusiveCreate() {
		return // check-then-write: racing writers may both win
	}
	// Racing exclusive writers: exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Write(ctx, "job/race", fmt.Appendf(nil, "%d", i), ex)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, blob.ErrExists)
		}
	}
	require.Equal(t, 1, won)
}

func testList(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{"job/b/2", "job/a", "job/b/1", "job/bc", "other/x"} {
		require.NoError(t, s.Write(ctx, k, []byte(k), blob.WriteOptions{}))
	}
	objs, err := s.List(ctx, "job/b")
	require.NoError(t, err)
	require.Equal(t, []blob.Object{{Key: "job/b/1", Size: 7}, {Key: "job/b/2", Size: 7}, {Key: "job/bc", Size: 6}}, objs)

	objs, err = s.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, objs, 5)
}

// errReader fails after giving some bytes.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("source broke")
	}
	n := min(len(p), r.n)
	r.n -= n
	for i := range n {
		p[i] = 'x'
	}
	return n, nil
}

func testAbortedWriteFrom(t *testing.T, s blob.Store) {
	ctx := context.Background()
	err := s.WriteFrom(ctx, "job/torn", &errReader{n: 10_000}, blob.WriteOptions{})
	require.ErrorContains(t, err, "source broke")
	ok, err := s.Exists(ctx, "job/torn")
	require.NoError(t, err)
	require.False(t, ok, "a write whose source failed must leave nothing visible")
}

func TestOpenFile(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openStore(t, "file://"+dir)
	require.NoError(t, s.Write(ctx, "job/chk-1/_metadata", []byte("m"), blob.WriteOptions{}))
	data, err := os.ReadFile(filepath.Join(dir, "job", "chk-1", "_metadata"))
	require.NoError(t, err)
	require.Equal(t, "m", string(data))
	// metadata=skip: no sidecar files next to ours.
	entries, err := os.ReadDir(filepath.Join(dir, "job", "chk-1"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.False(t, s.ExclusiveCreate(), "fileblob checks, then renames")

	for _, bad := range []string{"file://./rel", "file://host/dir", "gs://bucket", "::"} {
		_, err := blob.Open(ctx, bad)
		require.Error(t, err, bad)
	}
}

func TestOpenMemNamed(t *testing.T) {
	ctx := context.Background()
	a := openStore(t, "mem://shared-test")
	require.NoError(t, a.Write(ctx, "k", []byte("v"), blob.WriteOptions{}))
	require.NoError(t, a.Close())
	b := openStore(t, "mem://shared-test")
	got, err := b.Read(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(got))

	fresh := openStore(t, "mem://")
	ok, err := fresh.Exists(ctx, "k")
	require.NoError(t, err)
	require.False(t, ok)
}
