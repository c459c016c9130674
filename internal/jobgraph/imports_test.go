package jobgraph_test

import (
	"path/filepath"
	"testing"

	"github.com/strom-dev/strom/internal/importcheck"
)

const module = importcheck.Module

// The JobGraph is data that crosses processes: it must not depend on the
// runtime, the network, state backends, the StreamGraph (operator code) or the
// public API, not even through another package of the module.
var forbidden = []string{
	module,
	module + "/internal/runtime",
	module + "/internal/network",
	module + "/internal/statebackend",
	module + "/internal/streamgraph",
	module + "/internal/rpc",
	module + "/internal/dispatcher",
	module + "/internal/jobmaster",
	module + "/internal/resourcemanager",
	module + "/internal/taskmanager",
	module + "/internal/minicluster",
}

func TestImportsNoRuntime(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	via := importcheck.Deps(t, root, module+"/internal/jobgraph")
	for _, f := range forbidden {
		if _, ok := via[f]; ok {
			t.Errorf("internal/jobgraph depends on %s: %s", f, importcheck.Chain(via, f))
		}
	}
}
