package livekitwebhook

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// TestNoInternalTypesInAPI: no exported declaration of the package names a
// type of an internal package, which users could see in go doc but not
// use.
func TestNoInternalTypesInAPI(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		internal := map[string]string{} // local name -> import path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(path, "/internal/") {
				continue
			}
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			internal[local] = path
		}
		var check func(decl string, n ast.Node)
		check = func(decl string, n ast.Node) {
			if n == nil {
				return
			}
			ast.Inspect(n, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.StructType:
					for _, fld := range n.Fields.List {
						if len(fld.Names) == 0 || fld.Names[0].IsExported() {
							check(decl, fld.Type)
						}
					}
					return false
				case *ast.InterfaceType:
					for _, m := range n.Methods.List {
						if len(m.Names) == 0 || m.Names[0].IsExported() {
							check(decl, m.Type)
						}
					}
					return false
				case *ast.SelectorExpr:
					if x, ok := n.X.(*ast.Ident); ok && internal[x.Name] != "" {
						found = append(found, fset.Position(n.Pos()).String()+": "+decl+" uses "+internal[x.Name]+"."+n.Sel.Name)
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				decl := d.Name.Name
				if d.Recv != nil {
					recv := d.Recv.List[0].Type
					if s, ok := recv.(*ast.StarExpr); ok {
						recv = s.X
					}
					id, ok := recv.(*ast.Ident)
					if !ok || !id.IsExported() {
						continue
					}
					decl = id.Name + "." + decl
				}
				check(decl, d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							check(s.Name.Name, s.Type)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && s.Type != nil {
								check(n.Name, s.Type)
							}
						}
					}
				}
			}
		}
	}
	for _, f := range found {
		t.Error(f)
	}
}

// TestNoNATSImports: the store (internal/engine) is the only code that
// speaks NATS; tests that look at what is stored go through its
// enginetest package.
func TestNoNATSImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); strings.Contains(path, "/nats-io/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

// TestContentTypeAsVerified: the exported ContentType (a literal, so that
// go doc shows it) is the one verification and the test signer use.
func TestContentTypeAsVerified(t *testing.T) {
	if ContentType != verify.ContentType {
		t.Fatalf("ContentType %q, verify.ContentType %q", ContentType, verify.ContentType)
	}
}
