package strom_test

import (
	"go/importer"
	"go/token"
	"go/types"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The public packages expose no internal or unexported type in an exported
// declaration: a user must be able to name every type they are handed or
// must pass. (Unexported methods of exported interfaces are allowed: they
// seal an interface to this module's implementations.)
func TestPublicAPIExposesNoInternalOrUnexportedType(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module from source")
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "source", nil)
	var problems []string
	for _, path := range []string{
		"github.com/strom-dev/strom",
		"github.com/strom-dev/strom/state",
		"github.com/strom-dev/strom/window",
		"github.com/strom-dev/strom/codec",
		"github.com/strom-dev/strom/connector/file",
		"github.com/strom-dev/strom/connector/datagen",
	} {
		pkg, err := imp.Import(path)
		require.NoError(t, err, path)
		problems = append(problems, apiProblems(pkg)...)
	}
	require.Empty(t, problems)
}

func apiProblems(pkg *types.Package) []string {
	var out []string
	report := func(where string, typ types.Type) {
		for _, bad := range hiddenTypes(typ, map[types.Type]bool{}) {
			out = append(out, pkg.Name()+"."+where+" exposes "+bad)
		}
	}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch obj := obj.(type) {
		case *types.Func, *types.Var, *types.Const:
			report(name, obj.Type())
		case *types.TypeName:
			named, ok := obj.Type().(*types.Named)
			if !ok {
				report(name, obj.Type())
				continue
			}
			switch u := named.Underlying().(type) {
			case *types.Struct:
				for i := range u.NumFields() {
					if f := u.Field(i); f.Exported() {
						report(name+"."+f.Name(), f.Type())
					}
				}
			case *types.Interface:
				for i := range u.NumMethods() {
					if m := u.Method(i); m.Exported() {
						report(name+"."+m.Name(), m.Type())
					}
				}
			default:
				report(name, u)
			}
			for i := range named.NumMethods() {
				if m := named.Method(i); m.Exported() {
					report(name+"."+m.Name(), m.Type())
				}
			}
		}
	}
	return out
}

// hiddenTypes lists the named types in typ that a user of the package
// cannot name: unexported ones, and those of internal packages.
func hiddenTypes(typ types.Type, seen map[types.Type]bool) []string {
	if seen[typ] {
		return nil
	}
	seen[typ] = true
	var out []string
	switch t := typ.(type) {
	case *types.Named:
		obj := t.Obj()
		if obj.Pkg() != nil && (!obj.Exported() || strings.Contains(obj.Pkg().Path(), "/internal/") || strings.HasPrefix(obj.Pkg().Path(), "internal/")) {
			out = append(out, obj.Pkg().Path()+"."+obj.Name())
		}
		for i := range t.TypeArgs().Len() {
			out = append(out, hiddenTypes(t.TypeArgs().At(i), seen)...)
		}
	case *types.Alias:
		out = append(out, hiddenTypes(types.Unalias(t), seen)...)
	case *types.Pointer:
		out = append(out, hiddenTypes(t.Elem(), seen)...)
	case *types.Slice:
		out = append(out, hiddenTypes(t.Elem(), seen)...)
	case *types.Array:
		out = append(out, hiddenTypes(t.Elem(), seen)...)
	case *types.Map:
		out = append(out, hiddenTypes(t.Key(), seen)...)
		out = append(out, hiddenTypes(t.Elem(), seen)...)
	case *types.Chan:
		out = append(out, hiddenTypes(t.Elem(), seen)...)
	case *types.Signature:
		for i := range t.Params().Len() {
			out = append(out, hiddenTypes(t.Params().At(i).Type(), seen)...)
		}
		for i := range t.Results().Len() {
			out = append(out, hiddenTypes(t.Results().At(i).Type(), seen)...)
		}
	case *types.Struct:
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				out = append(out, hiddenTypes(f.Type(), seen)...)
			}
		}
	case *types.Interface:
		for i := range t.NumExplicitMethods() {
			if m := t.ExplicitMethod(i); m.Exported() {
				out = append(out, hiddenTypes(m.Type(), seen)...)
			}
		}
	}
	return out
}
