// Package depcheck walks the imports of this module's packages, for the
// tests that keep dependencies pointing one way (the public API never
// imports a connector; the JobGraph never imports the runtime).
package depcheck

import (
	"go/build"
	"path/filepath"
	"strings"
)

// Module is this module's path.
const Module = "github.com/strom-dev/strom"

// Walk returns the packages of the module that pkg imports, directly or
// through other packages of the module, each mapped to the package through
// which it was first reached (pkg itself maps to ""). root is the module's
// directory. Test files are not read: what tests import never reaches a
// user's binary.
func Walk(root, pkg string) (map[string]string, error) {
	via := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, Module), "/")))
		bp, err := build.ImportDir(dir, 0) // non-test files only
		if err != nil {
			return nil, err
		}
		for _, imp := range bp.Imports {
			if imp != Module && !strings.HasPrefix(imp, Module+"/") {
				continue // the standard library or a third-party module
			}
			if _, seen := via[imp]; !seen {
				via[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return via, nil
}

// Chain says how the walked package reaches dep: "a → b → dep".
func Chain(via map[string]string, dep string) string {
	chain := []string{dep}
	for p := via[dep]; p != ""; p = via[p] {
		chain = append([]string{p}, chain...)
	}
	return strings.Join(chain, " → ")
}
