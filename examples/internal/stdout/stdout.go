// Package stdout captures what an example program prints, for the tests
// that run each example's main and check its exact output.
package stdout

import (
	"io"
	"os"
	"testing"
)

// Capture runs fn with os.Stdout redirected and returns what it printed.
func Capture(t testing.TB, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	saved := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = saved }()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	fn()
	w.Close()
	return string(<-done)
}
