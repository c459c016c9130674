package rest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: servers,
// connections and asynchronous operations end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
