package jobworker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func launcher(t *testing.T, fetch func(ctx context.Context, id string, w io.Writer) error) *Launcher {
	t.Helper()
	l, err := NewLauncher(LauncherConfig{TaskManager: "tm-1", DataAddress: "127.0.0.1:1", Dir: t.TempDir(),
		Fetch: fetch, StartTimeout: 5 * time.Second, HandoffTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(l.Close)
	return l
}

// A binary is run only if its content has the sha256 it was asked by: a
// bad id, a failed fetch and content that does not match are errors, and
// nothing is left in the cache.
func TestBinariesAreCheckedByHash(t *testing.T) {
	good := []byte("#!/bin/sh\nexit 0\n")
	fetches := 0
	l := launcher(t, func(_ context.Context, id string, w io.Writer) error {
		fetches++
		if id == sha([]byte("unreachable")) {
			return errors.New("connection refused")
		}
		_, err := w.Write(good)
		return err
	})
	_, err := l.Start(context.Background(), "job", "not-a-hash", nil)
	require.ErrorContains(t, err, "is not a sha256")

	_, err = l.Start(context.Background(), "job", sha([]byte("unreachable")), nil)
	require.ErrorContains(t, err, "connection refused")

	other := sha([]byte("another binary"))
	_, err = l.Start(context.Background(), "job", other, nil)
	require.ErrorContains(t, err, "the content's sha256 is "+sha(good)+": refused")
	left, _ := filepath.Glob(filepath.Join(l.cfg.Dir, "binaries", "*"))
	require.Empty(t, left, "a refused binary stays out of the cache")

	path, err := l.binary(context.Background(), sha(good))
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NotZero(t, st.Mode()&0o100, "the cached binary is executable")
	n := fetches
	_, err = l.binary(context.Background(), sha(good))
	require.NoError(t, err)
	require.Equal(t, n, fetches, "a cached binary is not fetched again")
}

// A binary that exits before it serves (not a Strom job, or one that
// fails early) is an error that says so, with what it printed.
func TestWorkerThatExitsBeforeServingIsAnError(t *testing.T) {
	script := []byte("#!/bin/sh\necho 'no Strom here' >&2\nexit 3\n")
	l := launcher(t, func(_ context.Context, _ string, w io.Writer) error {
		_, err := w.Write(script)
		return err
	})
	_, err := l.Start(context.Background(), "job", sha(script), nil)
	require.ErrorContains(t, err, "did not start")
	require.ErrorContains(t, err, "exit status 3")
	require.ErrorContains(t, err, "no Strom here")
	logs, _ := filepath.Glob(filepath.Join(l.cfg.Dir, "workers", "job-*.log"))
	require.Len(t, logs, 1, "its output is kept")
}

// A data connection for a job with no worker here waits for one, then
// gives up with an error naming the job.
func TestHandoffWithoutWorkerTimesOut(t *testing.T) {
	l := launcher(t, nil)
	a, b := net.Pipe()
	defer b.Close()
	err := l.HandConn("job-x", a)
	require.ErrorContains(t, err, "no worker of job job-x")
}
