package blob_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/blob"
)

func newFaulty(t *testing.T) *blob.Faulty {
	return blob.NewFaulty(openStore(t, "mem://"))
}

func TestFaultyNth(t *testing.T) {
	ctx := context.Background()
	f := newFaulty(t)
	f.Inject(blob.Fault{Op: blob.OpWrite, Nth: 2})
	require.NoError(t, f.Write(ctx, "a", []byte("1"), blob.WriteOptions{}))
	err := f.Write(ctx, "b", []byte("2"), blob.WriteOptions{})
	require.ErrorIs(t, err, blob.ErrInjected)
	require.ErrorContains(t, err, `key "b"`)
	require.NoError(t, f.Write(ctx, "c", []byte("3"), blob.WriteOptions{}), "Nth fires once")

	ok, err := f.Exists(ctx, "b")
	require.NoError(t, err)
	require.False(t, ok, "a failed write stores nothing")
	require.Equal(t, 3, f.Count(blob.OpWrite))
	require.Equal(t, 1, f.Count(blob.OpExists))
	require.Zero(t, f.Count(blob.OpRead))
}

func TestFaultyMatchEvery(t *testing.T) {
	ctx := context.Background()
	f := newFaulty(t)
	boom := errors.New("disk on fire")
	f.Inject(blob.Fault{Op: blob.OpRead, Match: blob.KeySuffix("/_metadata"), Err: boom})
	f.Inject(blob.Fault{Op: blob.OpDelete, Match: blob.KeyContains("shared/")})
	for _, k := range []string{"j/chk-1/_metadata", "j/chk-1/x", "j/shared/s"} {
		require.NoError(t, f.Write(ctx, k, []byte(k), blob.WriteOptions{}))
	}
	for range 2 {
		_, err := f.Read(ctx, "j/chk-1/_metadata")
		require.ErrorIs(t, err, boom)
	}
	_, err := f.Read(ctx, "j/chk-1/x")
	require.NoError(t, err)
	require.ErrorIs(t, f.Delete(ctx, "j/shared/s"), blob.ErrInjected)
	require.NoError(t, f.Delete(ctx, "j/chk-1/x"))

	f.Clear()
	_, err = f.Read(ctx, "j/chk-1/_metadata")
	require.NoError(t, err)
	require.Equal(t, 4, f.Count(blob.OpRead))
}

func TestFaultyTear(t *testing.T) {
	ctx := context.Background()
	f := newFaulty(t)
	// A torn write reports success and leaves a prefix.
	f.Inject(blob.Fault{Op: blob.OpWrite, Nth: 1, Tear: true, Keep: 3})
	require.NoError(t, f.Write(ctx, "a", []byte("abcdef"), blob.WriteOptions{}))
	got, err := f.Read(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, "abc", string(got))

	// A write that fails half way leaves its prefix and says so.
	f.Inject(blob.Fault{Op: blob.OpWrite, Match: blob.KeyContains("b"), Tear: true, Keep: 2, Err: blob.ErrInjected})
	err = f.WriteFrom(ctx, "b", strings.NewReader("abcdef"), blob.WriteOptions{})
	require.ErrorIs(t, err, blob.ErrInjected)
	got, err = f.Read(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, "ab", string(got))

	// Only writes tear; a tear fault on a read fails it.
	f.Inject(blob.Fault{Op: blob.OpRead, Match: blob.KeyContains("a"), Tear: true, Keep: 1})
	_, err = f.Read(ctx, "a")
	require.ErrorIs(t, err, blob.ErrInjected)
}

func TestFaultyDelay(t *testing.T) {
	f := newFaulty(t)
	f.Inject(blob.Fault{Op: blob.OpList, Delay: 20 * time.Millisecond})
	start := time.Now()
	_, err := f.List(context.Background(), "")
	require.NoError(t, err, "a pure delay does not fail")
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	f.Clear()
	f.Inject(blob.Fault{Op: blob.OpList, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = f.List(ctx, "")
	require.ErrorIs(t, err, context.DeadlineExceeded, "a delay ends with the context")
}
