package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestDemoRunsAndStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, runDemo(ctx, &out, demoOptions{parallelism: 4, rate: 20_000, window: 500 * time.Millisecond,
		report: time.Second, dataDir: t.TempDir(), checkpointInterval: 200 * time.Millisecond}))
	s := out.String()
	require.Contains(t, s, "2 TaskManagers × 2 slots")
	require.Regexp(t, regexp.MustCompile(`window \S+–\S+\s+/home\s+clicks\s+\d+\s+users\s+\d+\s+total\s+\d+`), s)
	require.Contains(t, s, "throughput:")
	require.Contains(t, s, "strom demo: stopped after")
}

// demoWindowLine matches a result line of the demo: page, clicks, total.
var demoWindowLine = regexp.MustCompile(`(?m)^window \S+–\S+\s+(\S+)\s+clicks\s+(\d+)\s+users\s+\d+\s+total\s+(\d+)$`)

// A demo stopped with a savepoint and resumed from it (at another
// parallelism) continues its running totals: the first total the resumed
// run prints for a page, less that window's clicks, is at least the last
// total the stopped run printed for it — a run that did not restore the
// keyed state would start from 0.
func TestDemoStopWithSavepointAndResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	dataDir := t.TempDir()
	opts := demoOptions{parallelism: 4, rate: 20_000, window: 300 * time.Millisecond, report: time.Second,
		dataDir: dataDir, checkpointInterval: 200 * time.Millisecond, stopWithSavepoint: true}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var first bytes.Buffer
	require.NoError(t, runDemo(ctx, &first, opts))
	m := regexp.MustCompile(`strom demo: stopped after \S+ with savepoint (\S+)\n`).FindStringSubmatch(first.String())
	require.NotNil(t, m, "no savepoint printed:\n%s", first.String())
	path := m[1]
	require.Contains(t, path, filepath.Join(dataDir, "savepoints"), "savepoints go to <data-dir>/savepoints")
	require.Contains(t, first.String(), "resume with: strom demo --from-savepoint "+path)
	lastTotal := map[string]int64{}
	for _, l := range demoWindowLine.FindAllStringSubmatch(first.String(), -1) {
		lastTotal[l[1]] = atoi(t, l[3])
	}
	require.NotZero(t, lastTotal["/home"], "the stopped run printed no /home window:\n%s", first.String())

	opts.parallelism, opts.fromSavepoint, opts.stopWithSavepoint = 2, path, false
	ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	var second bytes.Buffer
	require.NoError(t, runDemo(ctx2, &second, opts))
	require.Contains(t, second.String(), "resuming from savepoint "+path)
	seen := map[string]bool{}
	for _, l := range demoWindowLine.FindAllStringSubmatch(second.String(), -1) {
		page := l[1]
		if seen[page] {
			continue
		}
		seen[page] = true
		before := atoi(t, l[3]) - atoi(t, l[2])
		require.GreaterOrEqual(t, before, lastTotal[page], "%s: the resumed total does not continue the stopped run's:\n%s", page, second.String())
	}
	require.True(t, seen["/home"], "the resumed run printed no /home window:\n%s", second.String())
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return n
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--rate", "0"},
		{"demo", "--window", "0s"},
		{"demo", "--report", "0s"},
		{"demo", "extra-arg"},
		{"demo", "--checkpoint-interval", "-1s"},
		{"demo", "--data-dir", ""},
	} {
		cmd := rootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		require.Error(t, cmd.Execute(), "args %v", args)
	}
}

// TestDemoBinarySIGINT builds the real binary and stops it with SIGINT, as
// Ctrl-C does: it must exit 0 after printing results.
func TestDemoBinarySIGINT(t *testing.T) {
	bin := buildBinary(t)
	// The default --data-dir is below the temporary directory.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cmd := exec.Command(bin, "demo", "--window", "300ms", "--report", "500ms", "--rate", "20000")
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "throughput:") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "output:\n%s", out.String())
	require.Contains(t, out.String(), "strom demo: stopped after")

	// With --stop-with-savepoint Ctrl-C stops it with a savepoint into
	// <data-dir>/savepoints, whose path it prints.
	dataDir := filepath.Join(tmp, "data")
	cmd = exec.Command(bin, "demo", "--window", "300ms", "--report", "500ms", "--rate", "20000",
		"--data-dir", dataDir, "--stop-with-savepoint")
	out = syncBuffer{}
	cmd.Stdout = &out
	cmd.Stderr = &out
	require.NoError(t, cmd.Start())
	for !strings.Contains(out.String(), "throughput:") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "output:\n%s", out.String())
	m := regexp.MustCompile(`with savepoint file://(\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "output:\n%s", out.String())
	require.FileExists(t, filepath.Join(m[1], "_metadata"))
	require.Equal(t, filepath.Join(dataDir, "savepoints"), filepath.Dir(m[1]))

	// --duration stops it too, with exit code 0.
	cmd = exec.Command(bin, "demo", "--duration", "1s", "--window", "200ms", "--rate", "5000")
	out2, err := cmd.Output()
	require.NoError(t, err, "output:\n%s", out2)
	require.Contains(t, string(out2), "window ")

	v, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	require.Regexp(t, `^strom \S+`, string(v))
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test to use
// at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
