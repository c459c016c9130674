package rpc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: a closed
// Network must have stopped its server, its streams and its handlers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
