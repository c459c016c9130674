package strom_test

import (
	"strings"
	"testing"

	"github.com/strom-dev/strom/internal/importcheck"
)

// The public API never depends on a connector, not even through another
// package: connectors are built on the API (as one written outside this
// module would be), so the dependency points from them to it. Tests of this
// package may import connectors; they are not part of it.
func TestImportsNoConnector(t *testing.T) {
	via := importcheck.Deps(t, ".", importcheck.Module)
	for p := range via {
		if strings.HasPrefix(p, importcheck.Module+"/connector/") || p == importcheck.Module+"/connector" {
			t.Errorf("package strom depends on %s: %s", p, importcheck.Chain(via, p))
		}
	}
}
