package interp

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"sort"
	"strconv"
	"strings"
)

// itemKind says how yaegi must compile a top-level item of a snippet.
type itemKind int

const (
	// kindStmt items only make sense in a function body (x := 1, f(), for).
	kindStmt itemKind = iota
	// kindDecl items only make sense at package level (func f(), type T).
	kindDecl
	// kindFlex items (var, const) are valid at both levels; they join
	// whichever group surrounds them so that a snippet is cut into as few
	// compile units as possible.
	kindFlex
	// kindImport items are hoisted and imported before anything else runs.
	kindImport
)

// item is one top-level statement or declaration of a snippet.
type item struct {
	kind      itemKind
	start     int    // byte offset of the first token in the snippet
	end       int    // byte offset just past the last token
	line, col int    // position of start, 1-based
	text      string // source, after the rewrites below
	expr      bool   // a lone expression statement (a candidate for Out)
	ranges    bool   // holds a range statement the rewrite left alone
	file      *ast.File
	tf        *token.File // the file file was parsed into, for offsets
	shift     int         // length of the wrapper before text in tf
	mainDecl  bool        // declares func main (renamed, then called once)
}

// Names the rewrites introduce. The __ipp prefix keeps them out of Names and
// out of the way of user code.
const (
	mainRename  = "__ippMain"
	rangeBound  = "__ippN"
	rangeKey    = "__ippI"
	capturePkg  = "__ippCap"
	pushPkg     = "__ippPush"
	hiddenNames = "__ipp"
)

// snippet is a parsed snippet, ready to be grouped into compile units.
type snippet struct {
	name  string // position name, cellN/snippet.go
	cell  int    // N of cellN
	items []*item
}

// parseSnippet cuts code into top-level items and parses each one on its
// own, so that a snippet may mix imports, declarations and statements in
// any order (Go files and function bodies each accept only some of those).
// A syntax error anywhere fails the whole snippet before anything runs.
func parseSnippet(name, code string) (*snippet, error) {
	items, err := splitItems(name, code)
	if err != nil {
		return nil, err
	}
	sn := &snippet{name: name}
	counter := 0
	for _, it := range items {
		if it.kind == kindSkip {
			continue
		}
		if err := it.parse(name, code[it.start:it.end]); err != nil {
			return nil, err
		}
		it.rewrite(code[it.start:it.end], &counter)
		sn.items = append(sn.items, &it.item)
	}
	return sn, nil
}

// kindSkip marks items dropped before parsing (a package clause).
const kindSkip itemKind = -1

// rawItem is an item as cut by splitItems, before parsing.
type rawItem struct {
	item
	first  token.Token // first token
	second token.Token // second token, to tell func declarations from literals
}

// splitItems cuts code at the semicolons (explicit or inserted at line ends)
// that separate top-level statements. Semicolons inside brackets, and those
// of a for/if/switch header (for i := 0; i < n; i++ {), do not cut.
func splitItems(name, code string) ([]*rawItem, error) {
	fset := token.NewFileSet()
	file := fset.AddFile(name, -1, len(code))
	var errs scanner.ErrorList
	var s scanner.Scanner
	s.Init(file, []byte(code), func(pos token.Position, msg string) { errs.Add(pos, msg) }, 0)

	var items []*rawItem
	var cur *rawItem
	depth := 0
	header := false // between for/if/switch and the { of its body
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		off := file.Offset(pos)
		if tok == token.SEMICOLON && depth == 0 && !header {
			if cur != nil {
				items = append(items, cur)
				cur = nil
			}
			continue
		}
		if cur == nil {
			p := file.Position(pos)
			cur = &rawItem{item: item{start: off, line: p.Line, col: p.Column}, first: tok, second: token.ILLEGAL}
		} else if cur.second == token.ILLEGAL {
			cur.second = tok
		}
		switch tok {
		case token.LPAREN, token.LBRACK, token.LBRACE:
			if tok == token.LBRACE && depth == 0 {
				header = false
			}
			depth++
		case token.RPAREN, token.RBRACK, token.RBRACE:
			// An unbalanced closer is reported by the parser later; keep
			// depth from going negative so the cut stays sensible.
			if depth > 0 {
				depth--
			}
		case token.FOR, token.IF, token.SWITCH:
			if depth == 0 {
				header = true
			}
		}
		if tok == token.SEMICOLON && lit == "\n" {
			// A semicolon the scanner inserted at a line end or at EOF
			// inside brackets (an unfinished call): it has no text, and
			// at EOF its offset is already len(code).
			continue
		}
		cur.end = off + tokenLen(code, off, tok, lit)
	}
	if cur != nil {
		items = append(items, cur)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, it := range items {
		switch it.first {
		case token.DEFER:
			// yaegi keeps top-level defers on its global frame and runs
			// them all again after every later snippet.
			var list scanner.ErrorList
			list.Add(file.Position(file.Pos(it.start)), "defer at the top level of a snippet is not supported "+
				"(the interpreter would run it again after every later snippet); defer inside a function instead")
			return nil, list
		case token.PACKAGE:
			// Pasted whole files keep working: the package clause means
			// nothing in a namespace.
			it.kind = kindSkip
		case token.IMPORT:
			it.kind = kindImport
		case token.TYPE:
			it.kind = kindDecl
		case token.FUNC:
			// func name( and func (recv) are declarations; func( may also
			// be a literal called on the spot, which parse sorts out.
			it.kind = kindDecl
		case token.VAR, token.CONST:
			it.kind = kindFlex
		default:
			it.kind = kindStmt
		}
	}
	return items, nil
}

// tokenLen is the length in bytes of the token at off. The scanner gives
// no literal for operators, and strips carriage returns from raw strings,
// so neither lit nor tok.String() is always the source length.
func tokenLen(code string, off int, tok token.Token, lit string) int {
	switch {
	case tok == token.STRING && strings.HasPrefix(lit, "`"):
		if i := strings.IndexByte(code[off+1:], '`'); i >= 0 {
			return i + 2
		}
		return len(code) - off
	case lit != "":
		return len(lit)
	default:
		return len(tok.String())
	}
}

// lineDirective makes positions inside a wrapped item report the item's
// place in the snippet. It must start a line; the text follows on the next.
func lineDirective(name string, line, col int) string {
	return "\n//line " + name + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col) + "\n"
}

// declPrefix and stmtPrefix wrap item text as a file, or as a function body
// closed by stmtSuffix.
func declPrefix(name string, it *item) string {
	return "package main;" + lineDirective(name, it.line, it.col)
}

func stmtPrefix(name string, it *item) string {
	return "package main; func main() {" + lineDirective(name, it.line, it.col)
}

const stmtSuffix = "\n}"

// parse checks the item's syntax and fills kind, expr and file.
func (it *rawItem) parse(name, text string) error {
	fset := token.NewFileSet()
	parseDecl := func() (*ast.File, error) {
		prefix := declPrefix(name, &it.item)
		f, err := parser.ParseFile(fset, snippetBase, prefix+text, parser.DeclarationErrors)
		if err == nil {
			it.tf, it.shift = fset.File(f.Package), len(prefix)
		}
		return f, err
	}
	parseStmt := func() (*ast.File, error) {
		prefix := stmtPrefix(name, &it.item)
		// The explicit ; makes an unfinished statement fail at its own
		// end ("found ';'") rather than on the wrapper's closing brace.
		f, err := parser.ParseFile(fset, snippetBase, prefix+text+";"+stmtSuffix, 0)
		if err == nil {
			it.tf, it.shift = fset.File(f.Package), len(prefix)
		}
		return f, err
	}
	it.text = text
	switch it.kind {
	case kindImport:
		f, err := parseDecl()
		if err != nil {
			return err
		}
		it.file = f
		return nil
	case kindDecl:
		f, err := parseDecl()
		if err == nil {
			it.file = f
			if fd, ok := f.Decls[0].(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "main" {
				it.mainDecl = true
			}
			return nil
		}
		if it.first != token.FUNC || it.second != token.LPAREN {
			return err
		}
		// func( is a method or a function literal; report whichever parse
		// got further, which is the one the user meant.
		f2, err2 := parseStmt()
		if err2 == nil {
			it.kind = kindStmt
			it.file = f2
			it.expr = isLoneExpr(f2)
			return nil
		}
		if errOffset(err2) > errOffset(err) {
			return err2
		}
		return err
	default:
		f, err := parseStmt()
		if err != nil {
			return err
		}
		it.file = f
		it.expr = it.kind == kindStmt && isLoneExpr(f)
		return nil
	}
}

// errOffset is how far into its source a parse error is.
func errOffset(err error) int {
	if list, ok := err.(scanner.ErrorList); ok && len(list) > 0 {
		return list[0].Pos.Offset
	}
	return -1
}

// isLoneExpr reports whether a wrapped statement item is an expression
// statement, whose value the snippet may return.
func isLoneExpr(f *ast.File) bool {
	body := f.Decls[0].(*ast.FuncDecl).Body.List
	if len(body) != 1 {
		return false
	}
	_, ok := body[0].(*ast.ExprStmt)
	return ok
}

// edit replaces text[from:to] with repl.
type edit struct {
	from, to int
	repl     string
}

// rewrite works around two yaegi limits by editing the item text:
//
//   - range over an integer (Go 1.22) panics yaegi v0.16.1's compiler
//     ("nil type"). When the operand is certainly an untyped integer (a
//     literal, or constant arithmetic on literals) or a len/cap call, and
//     the loop variable is not assigned in the body, the loop becomes
//     for k, n := 0, X; k < n; k++, which evaluates X once and behaves the
//     same. Other range loops are left alone and flagged, so that the panic
//     is reported with a hint instead of yaegi's bare "nil type".
//   - a func main declared in the REPL is re-run by yaegi after every later
//     compile. It is renamed, and the snippet calls it once, like go run.
func (it *rawItem) rewrite(text string, counter *int) {
	if it.file == nil {
		return
	}
	// Offsets in the parsed source are shifted by the wrapper before text.
	off := func(p token.Pos) int { return it.tf.Offset(p) - it.shift }

	var edits []edit
	ast.Inspect(it.file, func(node ast.Node) bool {
		switch x := node.(type) {
		case *ast.FuncDecl:
			if it.mainDecl && x.Recv == nil && x.Name.Name == "main" && x.Name.Pos().IsValid() {
				edits = append(edits, edit{off(x.Name.Pos()), off(x.Name.End()), mainRename})
			}
		case *ast.RangeStmt:
			if e, ok := rangeEdit(x, text, off, counter); ok {
				edits = append(edits, e)
			} else if x.Key == nil || x.Value == nil {
				// A one-variable range may be over an int; flag it.
				it.ranges = true
			}
		}
		return true
	})
	if len(edits) == 0 {
		return
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].from > edits[j].from })
	out := text
	for _, e := range edits {
		if e.from < 0 || e.to > len(out) || e.from > e.to {
			continue
		}
		out = out[:e.from] + e.repl + out[e.to:]
	}
	it.text = out
}

// rangeEdit returns the rewrite of a range-over-int loop, if it is safe.
func rangeEdit(r *ast.RangeStmt, text string, off func(token.Pos) int, counter *int) (edit, bool) {
	if r.Value != nil || r.Tok == token.ASSIGN || !certainlyInt(r.X) {
		return edit{}, false
	}
	key := ""
	if id, ok := r.Key.(*ast.Ident); ok && id.Name != "_" {
		key = id.Name
	} else if r.Key != nil && !ok {
		return edit{}, false
	}
	if key != "" && assigns(r.Body, key) {
		return edit{}, false
	}
	*counter++
	bound := rangeBound + strconv.Itoa(*counter)
	if key == "" {
		key = rangeKey + strconv.Itoa(*counter)
	}
	from, to := off(r.For), off(r.Body.Lbrace)
	x0, x1 := off(r.X.Pos()), off(r.X.End())
	if from < 0 || to > len(text) || x0 < from || x1 > to {
		return edit{}, false
	}
	repl := fmt.Sprintf("for %s, %s := 0, %s; %s < %s; %s++ ", key, bound, text[x0:x1], key, bound, key)
	return edit{from, to, repl}, true
}

// certainlyInt reports whether x is an untyped integer constant expression
// built from literals, or a len/cap call: operands whose range is an int
// range without type information.
func certainlyInt(x ast.Expr) bool {
	switch e := x.(type) {
	case *ast.BasicLit:
		return e.Kind == token.INT
	case *ast.ParenExpr:
		return certainlyInt(e.X)
	case *ast.UnaryExpr:
		return (e.Op == token.ADD || e.Op == token.SUB || e.Op == token.XOR) && certainlyInt(e.X)
	case *ast.BinaryExpr:
		switch e.Op {
		case token.ADD, token.SUB, token.MUL, token.QUO, token.REM,
			token.SHL, token.SHR, token.AND, token.OR, token.XOR, token.AND_NOT:
			return certainlyInt(e.X) && certainlyInt(e.Y)
		}
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") && len(e.Args) == 1 {
			return true
		}
	}
	return false
}

// assigns reports whether body may change the variable name: the 3-clause
// loop would then see the change, unlike range.
func assigns(body *ast.BlockStmt, name string) bool {
	is := func(x ast.Expr) bool {
		id, ok := x.(*ast.Ident)
		return ok && id.Name == name
	}
	found := false
	ast.Inspect(body, func(node ast.Node) bool {
		switch s := node.(type) {
		case *ast.AssignStmt:
			if s.Tok != token.DEFINE {
				for _, l := range s.Lhs {
					found = found || is(l)
				}
			}
		case *ast.IncDecStmt:
			found = found || is(s.X)
		case *ast.UnaryExpr:
			found = found || (s.Op == token.AND && is(s.X))
		}
		return !found
	})
	return found
}
