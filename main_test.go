package strom_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test of the package leaves a goroutine behind:
// every job, cluster and task must be stopped by the time its test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
