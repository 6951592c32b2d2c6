package interp

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"path"
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
	// closure: a compound statement (for, if, switch, select, block) run
	// inside func() { ... }(). yaegi mis-scopes a multi-value := from a
	// call inside such a statement at the top level of its REPL body
	// (`for { _, err := os.Stat(p) ... }` fails with "undefined: err"),
	// but not inside a function. Nothing such a statement declares
	// outlives it, so the closure changes no meaning.
	closure bool
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
//
// pkgs maps the package names the namespace has imported to their paths;
// the rewrite of go statements needs to tell pkg.F from a method value.
func parseSnippet(name, code string, pkgs map[string]string) (*snippet, error) {
	items, err := splitItems(name, code)
	if err != nil {
		return nil, err
	}
	sn := &snippet{name: name}
	rw := &rewriter{pkgs: map[string]string{}}
	for k, v := range pkgs {
		rw.pkgs[k] = v
	}
	var parsed []*rawItem
	for _, it := range items {
		if it.kind == kindSkip {
			continue
		}
		if err := it.parse(name, code[it.start:it.end]); err != nil {
			return nil, err
		}
		parsed = append(parsed, it)
		if it.kind == kindImport {
			// Imported before anything runs, wherever the line is.
			for _, spec := range it.file.Imports {
				p, err := strconv.Unquote(spec.Path.Value)
				if err != nil {
					continue
				}
				pkg := path.Base(p)
				if spec.Name != nil {
					pkg = spec.Name.Name
				}
				rw.pkgs[pkg] = p
			}
		}
	}
	for _, it := range parsed {
		it.rewrite(code[it.start:it.end], rw)
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
		case token.FOR, token.IF, token.SWITCH, token.SELECT, token.LBRACE:
			it.kind = kindStmt
			it.closure = true
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

// edit replaces text[from:to] with what render returns. render may
// include parts of the replaced text, with the edits nested in them, by
// calling sub with their bounds.
type edit struct {
	from, to int
	render   func(sub func(from, to int) string) string
}

// fixed is an edit that replaces text with repl.
func fixed(from, to int, repl string) edit {
	return edit{from, to, func(func(int, int) string) string { return repl }}
}

// rewriter carries what the rewrites of one snippet share.
type rewriter struct {
	counter int               // numbers the names rewrites introduce
	pkgs    map[string]string // package names in scope -> import paths
}

// next returns a fresh number for introduced names.
func (rw *rewriter) next() int {
	rw.counter++
	return rw.counter
}

// rewrite works around yaegi limits by editing the item text:
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
//   - a panic in a goroutine that yaegi starts for a go statement is
//     recovered by nobody and ends the process. go statements (and
//     time.AfterFunc calls) hand their call to a host function instead,
//     which runs it under a recover (see goroutines.go).
func (it *rawItem) rewrite(text string, rw *rewriter) {
	if it.file == nil {
		return
	}
	// Offsets in the parsed source are shifted by the wrapper before text.
	off := func(p token.Pos) int { return it.tf.Offset(p) - it.shift }

	// Variables of the loops around a go statement are what most often
	// changes right after it (see goEdit).
	var loops []loopVars
	ast.Inspect(it.file, func(node ast.Node) bool {
		switch x := node.(type) {
		case *ast.ForStmt:
			if a, ok := x.Init.(*ast.AssignStmt); ok && a.Tok == token.DEFINE {
				loops = append(loops, loopVars{x.Body, identNames(a.Lhs...)})
			}
		case *ast.RangeStmt:
			if x.Tok == token.DEFINE {
				loops = append(loops, loopVars{x.Body, identNames(x.Key, x.Value)})
			}
		}
		return true
	})
	var edits []edit
	ast.Inspect(it.file, func(node ast.Node) bool {
		switch x := node.(type) {
		case *ast.FuncDecl:
			if it.mainDecl && x.Recv == nil && x.Name.Name == "main" && x.Name.Pos().IsValid() {
				edits = append(edits, fixed(off(x.Name.Pos()), off(x.Name.End()), mainRename))
			}
		case *ast.RangeStmt:
			if e, ok := rangeEdit(x, text, off, rw); ok {
				edits = append(edits, e)
			} else if x.Key == nil || x.Value == nil {
				// A one-variable range may be over an int; flag it.
				it.ranges = true
			}
		case *ast.GoStmt:
			inLoop := map[string]bool{}
			for _, l := range loops {
				if l.body.Pos() <= x.Pos() && x.Pos() < l.body.End() {
					for _, name := range l.names {
						inLoop[name] = true
					}
				}
			}
			edits = append(edits, goEdit(x, it.tf, off, rw, inLoop))
		case *ast.CallExpr:
			if e, ok := afterFuncEdit(x, it.tf, off, rw); ok {
				edits = append(edits, e)
			}
		}
		return true
	})
	if len(edits) == 0 {
		return
	}
	for _, e := range edits {
		if e.from < 0 || e.to > len(text) || e.from > e.to {
			// Offsets out of the item: leave the text as it is.
			return
		}
	}
	// Outer edits first, so that one containing another renders it.
	sort.SliceStable(edits, func(i, j int) bool {
		if edits[i].from != edits[j].from {
			return edits[i].from < edits[j].from
		}
		return edits[i].to > edits[j].to
	})
	var render func(from, to int) string
	render = func(from, to int) string {
		var b strings.Builder
		at := from
		for _, e := range edits {
			if e.from < at || e.to > to {
				// Outside the range, or inside an edit already rendered
				// (which rendered it, or the edit whose part this is).
				continue
			}
			b.WriteString(text[at:e.from])
			b.WriteString(e.render(render))
			at = e.to
		}
		b.WriteString(text[at:to])
		return b.String()
	}
	it.text = render(0, len(text))
}

// linePos is a /*line*/ directive giving the next character the position p
// has in the snippet, so that rewritten text keeps the user's positions in
// messages. fset positions already follow the item's //line directive.
func linePos(tf *token.File, p token.Pos) string {
	pos := tf.Position(p)
	return "/*line " + pos.Filename + ":" + strconv.Itoa(pos.Line) + ":" + strconv.Itoa(pos.Column) + "*/"
}

// site is the display position of p, quoted as a Go string literal.
func site(tf *token.File, p token.Pos) string {
	pos := tf.Position(p)
	return strconv.Quote(displayName(pos.Filename) + ":" + strconv.Itoa(pos.Line) + ":" + strconv.Itoa(pos.Column))
}

// Names of the go statement rewrite: the host functions in the capture
// package, and the prefix of the temporaries that hold a call's operands.
const (
	goHook        = capturePkg + ".Go"
	afterFuncHook = capturePkg + ".AfterFunc"
	// ctxAfterFuncHook is context.AfterFunc's.
	ctxAfterFuncHook = capturePkg + ".ContextAfterFunc"
	goTemp           = "__ippG"
	hostFile         = "__ipp__"
	hostLine         = "/*line " + hostFile + ":1:1*/"
)

// loopVars are the variables a for or range statement declares.
type loopVars struct {
	body  *ast.BlockStmt
	names []string
}

// identNames lists the names among xs that are identifiers.
func identNames(xs ...ast.Expr) []string {
	var names []string
	for _, x := range xs {
		if id, ok := x.(*ast.Ident); ok && id.Name != "_" {
			names = append(names, id.Name)
		}
	}
	return names
}

// mentions reports whether x uses one of names.
func mentions(x ast.Node, names map[string]bool) bool {
	found := false
	ast.Inspect(x, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && names[id.Name] {
			found = true
		}
		return !found
	})
	return found
}

// goEdit turns `go f(a, b)` into a call of the host's Go with a function
// that makes the call. Go evaluates the function value and the arguments
// in the goroutine that runs the go statement, so operands that may change
// (a loop variable, above all: yaegi keeps one per loop, as Go did before
// 1.22) are copied first, by a function literal called on the spot whose
// frame gives each go statement its own copies:
//
//	__ippCap.Go("cell1:2:3", func() func() { t1 := a; return func() { f(t1, 1) } }())
//
// Arguments are copied unless they are constants written as literals (a
// copy would give an untyped constant its default type) or function
// literals. The function operand is copied only when it uses a variable
// of an enclosing loop (inLoop): plain names may be built-ins or generic
// functions, which have no value to copy, and a method value would be
// wrong, because yaegi v0.16.1 binds x.M to the variable x, not to its
// value. For x.M(...) it is the receiver x that is copied; with a pointer
// method that gives the copy's address, as Go 1.22 does for a per-iteration
// loop variable.
func goEdit(g *ast.GoStmt, tf *token.File, off func(token.Pos) int, rw *rewriter, inLoop map[string]bool) edit {
	call := g.Call
	k := rw.next()
	return edit{off(g.Pos()), off(g.End()), func(sub func(int, int) string) string {
		piece := func(e ast.Expr) string { return linePos(tf, e.Pos()) + sub(off(e.Pos()), off(e.End())) }
		var temps, vals []string
		hold := func(text string) string {
			name := goTemp + strconv.Itoa(k) + "_" + strconv.Itoa(len(temps))
			temps, vals = append(temps, name), append(vals, text)
			return name
		}
		var fun string
		switch f := ast.Unparen(call.Fun).(type) {
		case *ast.Ident:
			fun = piece(f)
			if inLoop[f.Name] {
				fun = hold(fun)
			}
		case *ast.FuncLit:
			fun = piece(f)
		case *ast.SelectorExpr:
			fun = piece(f)
			if id, ok := f.X.(*ast.Ident); ok {
				if _, pkg := rw.pkgs[id.Name]; pkg {
					break
				}
			}
			if mentions(f.X, inLoop) {
				fun = hold(piece(f.X)) + "." + f.Sel.Name
			}
		default:
			fun = hold(piece(f))
		}
		args := make([]string, len(call.Args))
		for i, a := range call.Args {
			args[i] = piece(a)
			if !constantLike(a) {
				args[i] = hold(args[i])
			}
		}
		ell := ""
		if call.Ellipsis.IsValid() {
			ell = "..."
		}
		callText := fun + "(" + strings.Join(args, ", ") + ell + ")"
		var b strings.Builder
		b.WriteString(goHook + "(" + site(tf, g.Pos()) + ", ")
		// The closures the rewrite adds are positioned in hostFile, so
		// that their frames can be left out of tracebacks.
		if len(temps) == 0 {
			b.WriteString(hostLine + "func() { " + callText + " })")
		} else {
			b.WriteString(hostLine + "func() func() { " + strings.Join(temps, ", ") + " := " + strings.Join(vals, ", ") +
				";" + hostLine + " return func() { " + callText + " } }())")
		}
		b.WriteString(linePos(tf, g.End()))
		return b.String()
	}}
}

// afterFuncEdit routes time.AfterFunc(d, f) and context.AfterFunc(ctx, f)
// through the host, which runs f under a recover like a go statement: f
// runs on a goroutine of the standard library, so a panic in f would
// otherwise end the process.
func afterFuncEdit(c *ast.CallExpr, tf *token.File, off func(token.Pos) int, rw *rewriter) (edit, bool) {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "AfterFunc" || len(c.Args) != 2 || c.Ellipsis.IsValid() {
		return edit{}, false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return edit{}, false
	}
	hook := ""
	switch rw.pkgs[id.Name] {
	case "time":
		hook = afterFuncHook
	case "context":
		hook = ctxAfterFuncHook
	default:
		return edit{}, false
	}
	return edit{off(c.Pos()), off(c.End()), func(sub func(int, int) string) string {
		piece := func(e ast.Expr) string { return linePos(tf, e.Pos()) + sub(off(e.Pos()), off(e.End())) }
		return hook + "(" + site(tf, c.Pos()) + ", " + piece(c.Args[0]) + ", " + piece(c.Args[1]) + ")" + linePos(tf, c.End())
	}}, true
}

// constantLike reports whether an argument is a literal constant or a
// function literal, which gives the same value wherever it is evaluated.
func constantLike(x ast.Expr) bool {
	switch e := x.(type) {
	case *ast.BasicLit, *ast.FuncLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	case *ast.ParenExpr:
		return constantLike(e.X)
	case *ast.UnaryExpr:
		return e.Op != token.AND && e.Op != token.ARROW && constantLike(e.X)
	case *ast.BinaryExpr:
		return constantLike(e.X) && constantLike(e.Y)
	}
	return false
}

// rangeEdit returns the rewrite of a range-over-int loop, if it is safe.
func rangeEdit(r *ast.RangeStmt, text string, off func(token.Pos) int, rw *rewriter) (edit, bool) {
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
	k := rw.next()
	bound := rangeBound + strconv.Itoa(k)
	if key == "" {
		key = rangeKey + strconv.Itoa(k)
	}
	from, to := off(r.For), off(r.Body.Lbrace)
	x0, x1 := off(r.X.Pos()), off(r.X.End())
	if from < 0 || to > len(text) || x0 < from || x1 > to {
		return edit{}, false
	}
	return edit{from, to, func(sub func(int, int) string) string {
		return fmt.Sprintf("for %s, %s := 0, %s; %s < %s; %s++ ", key, bound, sub(x0, x1), key, bound, key)
	}}, true
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
