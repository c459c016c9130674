package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/examples/internal/stdout"
)

// TestExampleRuns runs the example and checks its exact output, worked
// out by hand from the comments on the input in main.go: watermark =
// highest timestamp − 2s − 1ms; a 10s window fires when the watermark
// reaches its end − 1ms and is cleaned up 5s later.
func TestExampleRuns(t *testing.T) {
	want := `window sums:
  s1 [0s, 10s) n=3 sum=7
  s1 [0s, 10s) n=4 sum=12 (late update)
  s1 [10s, 20s) n=1 sum=3
  s2 [0s, 10s) n=1 sum=10
  s2 [10s, 20s) n=1 sum=20
  s2 [10s, 20s) n=2 sum=60 (late update)
  s2 [20s, 30s) n=1 sum=30
too late for their window (side output):
  s1 at 8s value=6
`
	require.Equal(t, want, stdout.Capture(t, main))
}
