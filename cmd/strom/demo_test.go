package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
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
	require.NoError(t, runDemo(ctx, &out, 4, 20_000, 500*time.Millisecond, time.Second))
	s := out.String()
	require.Contains(t, s, "2 TaskManagers × 2 slots")
	require.Regexp(t, regexp.MustCompile(`window \S+–\S+\s+/home\s+clicks\s+\d+\s+users\s+\d+\s+total\s+\d+`), s)
	require.Contains(t, s, "throughput:")
	require.Contains(t, s, "strom demo: stopped after")
}

func TestDemoRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--rate", "0"},
		{"demo", "--window", "0s"},
		{"demo", "--report", "0s"},
		{"demo", "extra-arg"},
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
