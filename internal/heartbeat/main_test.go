package heartbeat

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the monitor
// starts none; this keeps it so).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
