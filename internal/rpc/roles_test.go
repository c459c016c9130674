package rpc_test

import (
	"path/filepath"
	"testing"

	"github.com/strom-dev/strom/internal/importcheck"
)

const module = importcheck.Module

// roles are the packages that must share nothing: none may depend on
// another, directly or through some other package of the module, so the
// compiler keeps them talking only through this package's gateways.
var roles = []string{
	module + "/internal/dispatcher",
	module + "/internal/jobmaster",
	module + "/internal/resourcemanager",
	module + "/internal/taskmanager",
}

func TestRolesDoNotImportEachOther(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range append([]string{module + "/internal/rpc"}, roles...) {
		via := importcheck.Deps(t, root, from)
		for _, to := range roles {
			if _, ok := via[to]; ok && to != from {
				t.Errorf("%s depends on the role %s: %s", from, to, importcheck.Chain(via, to))
			}
		}
	}
}
