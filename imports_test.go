package strom_test

import (
	"strings"
	"testing"

	"github.com/strom-dev/strom/internal/depcheck"
)

// The public API never depends on a connector, not even through another
// package: connectors are built on the API (as one written outside this
// module would be), so the dependency points from them to it. Tests of this
// package may import connectors; they are not part of it.
func TestImportsNoConnector(t *testing.T) {
	via, err := depcheck.Walk(".", depcheck.Module)
	if err != nil {
		t.Fatal(err)
	}
	for p := range via {
		if strings.HasPrefix(p, depcheck.Module+"/connector/") || p == depcheck.Module+"/connector" {
			t.Errorf("package strom depends on %s: %s", p, depcheck.Chain(via, p))
		}
	}
}
