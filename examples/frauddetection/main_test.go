package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/examples/internal/stdout"
)

// TestExampleRuns runs the example and checks its exact output: the three
// alerts marked in main.go's input, and none of the near misses.
func TestExampleRuns(t *testing.T) {
	want := `ALERT alice: 0.50 at 10s, then 750.00 at 40s
ALERT dave: 0.01 at 1m0s, then 600.00 at 1m20s
ALERT erin: 0.75 at 3m10s, then 501.00 at 3m50s
`
	require.Equal(t, want, stdout.Capture(t, main))
}
