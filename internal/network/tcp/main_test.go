package tcp_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that endpoints leave no goroutine behind: Close (and
// Release) must stop every reader, writer and forwarder.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
