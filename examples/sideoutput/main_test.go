package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/examples/internal/stdout"
)

// TestExampleRuns runs the example and checks its exact output: each input
// line lands where main.go's parse and threshold send it.
func TestExampleRuns(t *testing.T) {
	want := `readings:
  s1 21.5°C
  s1 22.0°C
  s2 18.5°C
  s2 19.0°C
  s3 88.2°C
  s3 91.5°C
overheating:
  s3 88.2°C
  s3 91.5°C
malformed:
  ",20.0": want "sensor,celsius"
  "garbage": want "sensor,celsius"
  "s1,abc": bad temperature "abc"
  "s2,": bad temperature ""
`
	require.Equal(t, want, stdout.Capture(t, main))
}
