package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/examples/internal/stdout"
)

// TestExampleRuns runs the example and checks its exact output: the three
// pairs marked in main.go's input. The join's timestamps come from the data
// and no record is behind its own stream's watermark, so no pair can be
// lost to lateness however the two sources' subtasks interleave.
func TestExampleRuns(t *testing.T) {
	want := `order o1 (ann, 30.00 at 0s) paid 30.00 by card at 3m0s, 3m0s later
order o3 (cat, 99.90 at 2m0s) paid 50.00 by card at 5m0s, 3m0s later
order o3 (cat, 99.90 at 2m0s) paid 49.90 by voucher at 12m0s, 10m0s later
`
	require.Equal(t, want, stdout.Capture(t, main))
}
