package fdpass_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: a Listener's
// Close must unblock its Accept, and the test TaskManagers must stop.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
