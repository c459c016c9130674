package jobgraph_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/strom-dev/strom"

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
	// Walk the module's packages that jobgraph imports, directly or not;
	// via[p] is the package through which p was reached.
	via := map[string]string{module + "/internal/jobgraph": ""}
	queue := []string{module + "/internal/jobgraph"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, module), "/")))
		pkg, err := build.ImportDir(dir, 0) // non-test files only
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, imp := range pkg.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue // the standard library or a third-party module
			}
			if _, seen := via[imp]; !seen {
				via[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	for _, f := range forbidden {
		if _, ok := via[f]; ok {
			chain := []string{f}
			for p := via[f]; p != ""; p = via[p] {
				chain = append([]string{p}, chain...)
			}
			t.Errorf("internal/jobgraph depends on %s: %s", f, strings.Join(chain, " → "))
		}
	}
}
