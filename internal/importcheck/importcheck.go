// Package importcheck lets tests keep the module's layering true: which
// packages of the module a package depends on, and through which path.
package importcheck

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// Module is the module's path.
const Module = "github.com/strom-dev/strom"

// Deps walks the module's packages that pkg imports in its non-test files,
// directly or not, from the module root at root. via[p] is the package
// through which p was reached ("" for pkg itself).
func Deps(t testing.TB, root, pkg string) (via map[string]string) {
	t.Helper()
	via = map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, Module), "/")))
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
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
	return via
}

// Chain is the import path from the walk's start to to, for messages.
func Chain(via map[string]string, to string) string {
	c := []string{to}
	for p := via[to]; p != ""; p = via[p] {
		c = append([]string{p}, c...)
	}
	return strings.Join(c, " → ")
}
