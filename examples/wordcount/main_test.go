package main

import (
	"bytes"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestREADMEExample keeps the README's program and this file identical.
func TestREADMEExample(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```go\n"+string(src)+"```", "README.md must embed examples/wordcount/main.go verbatim")
}

// TestExampleRuns runs the example and checks its counts per window.
func TestExampleRuns(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	main()
	os.Stdout = stdout
	w.Close()
	out := <-done
	lines := strings.Split(strings.TrimSpace(string(bytes.TrimSpace(out))), "\n")
	require.Equal(t, "done", lines[len(lines)-1])
	got := lines[:len(lines)-1]
	sort.Strings(got)
	want := []string{
		"{be 2}", "{dream 1}", "{is 1}", "{not 1}", "{or 1}", "{perchance 1}",
		"{question 1}", "{sleep 1}", "{that 1}", "{the 1}", "{to 2}", "{to 2}",
	}
	require.Equal(t, want, got)
}
