package interp

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"reflect"
	"strconv"
	"strings"
)

// definitionLoop is what yaegi v0.16.1 reports for an undefined name on the
// right of a top-level := or in a var initializer.
const definitionLoop = "constant definition loop"

// explainUndefined replaces yaegi's "constant definition loop" with Go's
// "undefined: name" when it can find the name: one used by the failing
// item that neither the snippet, the namespace, its imports nor the
// universe defines, and that does not compile on its own.
func (n *Namespace) explainUndefined(sn *snippet, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Name != NameCompile || !strings.Contains(e.Message, definitionLoop) {
		return err
	}
	if e.cause == nil {
		return err
	}
	m := positioned.FindStringSubmatch(e.cause.Error())
	if m == nil {
		return err
	}
	var failing *item
	for _, it := range sn.items {
		if it.file != nil && it.kind != kindImport && before(it, m[2], m[3]) {
			failing = it
		}
	}
	if failing == nil {
		return err
	}
	declared := map[string]bool{}
	for _, it := range sn.items {
		if it.file != nil {
			declares(it.file, declared)
		}
	}
	globals := n.yi.Globals()
	var found *ast.Ident
	ast.Inspect(failing.file.Decls[len(failing.file.Decls)-1], func(node ast.Node) bool {
		if found != nil {
			return false
		}
		switch x := node.(type) {
		case *ast.SelectorExpr:
			// x.Sel names a field, method or package member.
			ast.Inspect(x.X, func(node ast.Node) bool {
				if id, ok := node.(*ast.Ident); ok && found == nil && n.undefined(id.Name, declared, globals) {
					found = id
				}
				return found == nil
			})
			return false
		case *ast.KeyValueExpr:
			// The key may be a struct field name.
			ast.Inspect(x.Value, func(node ast.Node) bool {
				if id, ok := node.(*ast.Ident); ok && found == nil && n.undefined(id.Name, declared, globals) {
					found = id
				}
				return found == nil
			})
			return false
		case *ast.Ident:
			if n.undefined(x.Name, declared, globals) {
				found = x
			}
		}
		return true
	})
	if found == nil {
		return err
	}
	pos := failing.tf.Position(found.Pos())
	return n.compileError(fmt.Errorf("%s:%d:%d: undefined: %s", pos.Filename, pos.Line, pos.Column, found.Name))
}

// before reports whether item it starts at or before line:col (decimal
// strings from a message).
func before(it *item, line, col string) bool {
	l, _ := strconv.Atoi(line)
	c, _ := strconv.Atoi(col)
	return it.line < l || (it.line == l && it.col <= c)
}

// undefined reports whether name is certainly not defined: the checks are
// cheap, and the last one compiles a probe (no code runs).
func (n *Namespace) undefined(name string, declared map[string]bool, globals map[string]reflect.Value) bool {
	if name == "_" || name == "main" || declared[name] || strings.HasPrefix(name, hiddenNames) ||
		types.Universe.Lookup(name) != nil {
		return false
	}
	if _, ok := globals[name]; ok {
		return false
	}
	if _, ok := n.imported[name]; ok {
		return false
	}
	_, err := n.compileSource("package main; func main() { _ = "+name+"\n}", true, false)
	return err != nil && strings.Contains(err.Error(), "undefined: "+name)
}

// declares adds the names f declares anywhere to names.
func declares(f *ast.File, names map[string]bool) {
	add := func(ids ...*ast.Ident) {
		for _, id := range ids {
			if id != nil {
				names[id.Name] = true
			}
		}
	}
	ast.Inspect(f, func(node ast.Node) bool {
		switch x := node.(type) {
		case *ast.AssignStmt:
			if x.Tok == token.DEFINE {
				for _, l := range x.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.RangeStmt:
			if x.Tok == token.DEFINE {
				for _, l := range []ast.Expr{x.Key, x.Value} {
					if id, ok := l.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.ValueSpec:
			add(x.Names...)
		case *ast.TypeSpec:
			add(x.Name)
		case *ast.FuncDecl:
			add(x.Name)
		case *ast.Field:
			add(x.Names...)
		case *ast.LabeledStmt:
			add(x.Label)
		}
		return true
	})
}
