package jobgraph_test

import (
	"path/filepath"
	"testing"

	"github.com/strom-dev/strom/internal/depcheck"
)

const module = depcheck.Module

// The JobGraph is data that crosses processes: it must not depend on the
// runtime, the network, state backends, the StreamGraph (operator code) or the
// public API, not even through another package of the module.
var forbidden = []string{
	module,
	module + "/internal/runtime",
	module + "/internal/network",
	module + "/internal/statebackend",
	module + "/internal/streamgraph",
	module + "/internal/cluster",
}

func TestImportsNoRuntime(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	via, err := depcheck.Walk(root, module+"/internal/jobgraph")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forbidden {
		if _, ok := via[f]; ok {
			t.Errorf("internal/jobgraph depends on %s: %s", f, depcheck.Chain(via, f))
		}
	}
}
