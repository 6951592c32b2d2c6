package interp

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	yaegi "github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"github.com/traefik/yaegi/stdlib/unrestricted"

	"github.com/ipp-hpc/ipp/internal/interp/symbols"
)

// Builtins are the packages every snippet can use without an import line,
// like the names IPython puts in a fresh namespace.
var Builtins = []string{"fmt", "math", "strings", "time", "os"}

// Options configures a Namespace.
type Options struct {
	// Stdout and Stderr receive everything interpreted code prints: fmt.Print*,
	// println, log, and writes to os.Stdout/os.Stderr. nil means the
	// process's own stdout/stderr.
	Stdout, Stderr io.Writer
	// Stdin is what fmt.Scan* read. nil means an empty input: an engine
	// has no terminal, and a snippet must not block on the process's stdin.
	Stdin io.Reader
	// Preload lists extra import paths imported without an import line, in
	// addition to Builtins (e.g. "gonum.org/v1/gonum/mat").
	Preload []string
	// Unrestricted gives snippets the real process: os/exec, os.Exit (which
	// then ends the engine), the real environment. By default yaegi
	// sandboxes these: os.Exit panics, os/exec is absent and os.Getenv
	// sees only Env.
	Unrestricted bool
	// Env is the environment snippets see when not Unrestricted, as
	// "KEY=value" entries.
	Env []string
	// BusyWait bounds how long Exec and Capture wait for an interrupted run
	// that is still blocked in compiled code before failing with NameBusy.
	// Zero means as long as their context allows. A server sets it so that
	// a request after an unstoppable run is answered with a clear error
	// rather than held without end.
	BusyWait time.Duration
	// OnGoroutinePanic is called with the panic of a goroutine started by
	// interpreted code once the Exec that started it is over (during it,
	// the panic is that Exec's error). The panic is recovered and also
	// written to Stderr; the hook is for the server's log. It runs on the
	// panicking goroutine and must not call the Namespace.
	OnGoroutinePanic func(*Error)
}

// Result is what Exec returns for a snippet that ran to the end.
type Result struct {
	// HasValue is true when the snippet ends with an expression of exactly
	// one value, like IPython's Out. Statements, calls returning nothing and
	// calls returning several values (fmt.Println) give no value.
	HasValue bool
	// Value is that expression's value, with its dynamic Go type.
	Value any
	// Text renders Value with fmt's %v (matrices as aligned rows, very long
	// slices abbreviated).
	Text string
}

// Namespace is a persistent Go interpreter state, the Go counterpart of an
// IPython user namespace. Its methods are safe for concurrent use; they run
// one at a time.
type Namespace struct {
	mu     sync.Mutex
	opts   Options
	closed bool

	yi     *yaegi.Interpreter
	rc     *runControl
	out    *stream
	errs   *stream
	traces *traceFilter

	tables   []yaegi.Exports   // added with Use, replayed by Reset
	extra    []string          // paths given to Import, replayed by Reset
	pkgNames map[string]string // import path -> package name, from all tables
	imported map[string]string // name in the namespace -> import path
	// deferred are the symbols of packages yaegi has not been given yet,
	// by import path; genericsLoaded says it has compiled the generic
	// standard packages (lazyload.go).
	deferred       map[string][]deferredPkg
	genericsLoaded bool

	execs int // Exec calls so far: names cells
	// sources maps cellN to its lines, for error context. Goroutines read
	// it when they panic, hence its own lock.
	srcMu   sync.Mutex
	sources map[string][]string

	// hooks runs the goroutines of go statements (goroutines.go).
	hooks *goHooks

	// box receives what the hidden __ippCap.Out is handed while a trailing
	// expression or a Get runs. Each interpreter gets its own, so that a
	// run abandoned by Reset cannot write into the new one's.
	box *captureBox
	// marks says which top-level statement runs (see stmtMarks); one per
	// interpreter, like box.
	marks *stmtMarks

	// pending is closed when an interrupted run has really stopped; until
	// then the interpreter must not run anything else.
	pending <-chan struct{}
}

// New returns a namespace with Builtins and opts.Preload imported.
func New(opts Options) (*Namespace, error) {
	n := &Namespace{opts: opts}
	n.hooks = &goHooks{n: n}
	var err error
	if n.out, err = newStream(opts.Stdout, os.Stdout); err != nil {
		return nil, fmt.Errorf("interp: stdout pipe: %w", err)
	}
	if n.errs, err = newStream(opts.Stderr, os.Stderr); err != nil {
		n.out.close()
		return nil, fmt.Errorf("interp: stderr pipe: %w", err)
	}
	n.traces = &traceFilter{next: n.errs.writer()}
	if err := n.init(); err != nil {
		n.out.close()
		n.errs.close()
		return nil, err
	}
	return n, nil
}

// Keys of the hidden packages through which the host hands values in and
// out of the interpreter.
const (
	captureKey = "ipp/capture/capture"
	pushKey    = "ipp/push/push"
)

// init builds a fresh interpreter: symbol tables, stream wiring, imports.
func (n *Namespace) init() error {
	stdin := n.opts.Stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	yi := yaegi.New(yaegi.Options{
		Stdin:        stdin,
		Stdout:       n.out.writer(),
		Stderr:       n.traces,
		Unrestricted: n.opts.Unrestricted,
		Env:          n.opts.Env,
	})
	rc, err := newRunControl(yi)
	if err != nil {
		return err
	}
	box := &captureBox{}
	marks := &stmtMarks{}
	tables := []yaegi.Exports{stdlib.Symbols}
	if n.opts.Unrestricted {
		tables = append(tables, unrestricted.Symbols)
	}
	tables = append(tables, symbols.Symbols, yaegi.Exports{
		// After stdlib: yaegi only redirects os.Stdout when its Stdout
		// option is an *os.File; ours is a variable we swap per Exec.
		"os/os": {
			"Stdout": reflect.ValueOf(&n.out.file).Elem(),
			"Stderr": reflect.ValueOf(&n.errs.file).Elem(),
		},
		captureKey: {
			"Out":       reflect.ValueOf(box.put),
			"At":        reflect.ValueOf(marks.at),
			"Go":        reflect.ValueOf(n.hooks.start),
			"AfterFunc": reflect.ValueOf(n.hooks.afterFunc),
			// context.AfterFunc's
			"ContextAfterFunc": reflect.ValueOf(n.hooks.contextAfterFunc),
		},
		pushKey: {"V": reflect.ValueOf(new(int)).Elem()},
	})
	tables = append(tables, n.tables...)
	n.yi, n.rc, n.box, n.marks = yi, rc, box, marks
	n.pkgNames = map[string]string{}
	n.imported = map[string]string{}
	n.deferred = map[string][]deferredPkg{}
	n.genericsLoaded = false
	n.srcMu.Lock()
	n.sources = map[string][]string{}
	n.srcMu.Unlock()
	n.pending = nil
	preload := append(append(append([]string(nil), Builtins...), n.opts.Preload...), n.extra...)
	eager := map[string]bool{path.Dir(captureKey): true, path.Dir(pushKey): true}
	for _, p := range append(preload, fixedByYaegi...) {
		eager[p] = true
	}
	if err := n.useTables(tables, eager); err != nil {
		return err
	}
	if err := n.importPackage(capturePkg, path.Dir(captureKey)); err != nil {
		return err
	}
	if err := n.importPackage(pushPkg, path.Dir(pushKey)); err != nil {
		return err
	}
	for _, p := range preload {
		if err := n.importPackage("", p); err != nil {
			return fmt.Errorf("interp: preload %q: %w", p, err)
		}
	}
	return nil
}

// use registers a symbol table with a running interpreter, all of it
// at once: the deferred symbols of its packages go first, so that the
// later table still wins where both define a name.
func (n *Namespace) use(t yaegi.Exports) error {
	for k := range t {
		if err := n.loadPackage(path.Dir(k)); err != nil {
			return err
		}
	}
	return n.useTables([]yaegi.Exports{t}, nil)
}

// captureBox holds the value interpreted code passed to __ippCap.Out.
type captureBox struct {
	mu  sync.Mutex
	v   any
	set bool
}

func (b *captureBox) put(v any) {
	b.mu.Lock()
	b.v, b.set = v, true
	b.mu.Unlock()
}

// stmtMarks records the position of the top-level statement of a snippet
// that is running: statement units call At before each statement (see
// unit.source). yaegi reports a panic at the position where the panicking
// frame began, which for a snippet is its first statement; the mark names
// the statement that was running instead.
type stmtMarks struct{ v atomic.Uint64 }

// at records cellN:line:col, packed as cell<<40 | line<<20 | col.
func (m *stmtMarks) at(cell, line, col int) {
	if cell <= 0 || line <= 0 || col <= 0 || line >= 1<<20 || col >= 1<<20 {
		m.v.Store(0)
		return
	}
	m.v.Store(uint64(cell)<<40 | uint64(line)<<20 | uint64(col))
}

// take returns and clears the recorded position.
func (m *stmtMarks) take() position {
	x := m.v.Swap(0)
	if x == 0 {
		return position{}
	}
	return position{"cell" + strconv.FormatUint(x>>40, 10), int(x >> 20 & (1<<20 - 1)), int(x & (1<<20 - 1))}
}

// take returns and clears the captured value.
func (b *captureBox) take() (any, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.v, b.set
	b.v, b.set = nil, false
	return v, ok
}

// Close releases the output pipes. The namespace is unusable afterwards.
func (n *Namespace) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.out.close()
	n.errs.close()
	return nil
}

// ready checks that the namespace may run something now: it is open and no
// interrupted run still holds the interpreter.
func (n *Namespace) ready() error {
	if n.closed {
		return ErrClosed
	}
	if n.pending == nil {
		return nil
	}
	select {
	case <-n.pending:
		n.pending = nil
		return nil
	default:
		return ErrBusy
	}
}

// await is ready for Exec: it waits, within ctx, for an interrupted run to
// stop.
func (n *Namespace) await(ctx context.Context) error {
	if n.closed || n.pending == nil {
		return n.ready()
	}
	var bound <-chan time.Time
	if n.opts.BusyWait > 0 {
		t := time.NewTimer(n.opts.BusyWait)
		defer t.Stop()
		bound = t.C
	}
	select {
	case <-n.pending:
		n.pending = nil
		return nil
	case <-ctx.Done():
		return ErrBusy
	case <-bound:
		return ErrBusy
	}
}

// busyMessage explains NameBusy to the person who sent the snippet.
const busyMessage = "cannot run now: an interrupted snippet is still blocked in a compiled call " +
	"(time.Sleep, I/O, an MPI operation) that the interpreter cannot preempt; it stops when that call " +
	"returns. Retry then, or clear the namespace (clear_request / %reset) to abandon it"

// Exec runs a snippet of Go: statements, declarations and import lines in
// any order. Definitions persist for later snippets. A trailing expression
// yields Result.Value. Failures come back as *Error, including a panic in a
// goroutine the snippet started (see the package doc for what is left: a
// fatal Go error, or a panic on a goroutine that compiled code started).
//
// When ctx ends, the run is stopped at its next interpreted step and Exec
// returns an *Error named NameInterrupted. A run blocked inside a compiled
// function (time.Sleep, I/O, MPI) cannot be preempted: it stops when that
// call returns, and meanwhile later Execs wait (bounded by their ctx and
// Options.BusyWait, then NameBusy) and Set/Get/Names fail with ErrBusy.
// Reset does not wait.
func (n *Namespace) Exec(ctx context.Context, code string) (Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.await(ctx); err != nil {
		if errors.Is(err, ErrBusy) {
			return Result{}, &Error{Name: NameBusy, Message: busyMessage, Traceback: []string{NameBusy + ": " + busyMessage}, cause: err}
		}
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, interrupted(err)
	}
	n.execs++
	cell := "cell" + strconv.Itoa(n.execs)
	name := cellName(n.execs)
	n.srcMu.Lock()
	n.sources[cell] = strings.Split(code, "\n")
	n.srcMu.Unlock()

	sn, err := parseSnippet(name, code, n.imported)
	if err != nil {
		return Result{}, n.compileError(err)
	}
	sn.cell = n.execs
	if err := n.out.begin(); err != nil {
		return Result{}, fmt.Errorf("interp: stdout pipe: %w", err)
	}
	defer n.out.end()
	if err := n.errs.begin(); err != nil {
		return Result{}, fmt.Errorf("interp: stderr pipe: %w", err)
	}
	defer n.errs.end()
	st := n.hooks.begin()
	res, err := n.run(ctx, sn)
	if gerr := n.hooks.end(st); gerr != nil && err == nil {
		// A goroutine panicked after the last unit returned.
		return Result{}, gerr
	}
	return res, err
}

// run executes a parsed snippet: imports first (Go requires them before
// anything else, and yaegi wants each on its own), then the other items in
// order, grouped into as few compile units as possible, then the trailing
// expression.
func (n *Namespace) run(ctx context.Context, sn *snippet) (Result, error) {
	var body []*item
	var mainItem *item
	for _, it := range sn.items {
		if it.kind == kindImport {
			if err := n.importItem(it); err != nil {
				return Result{}, err
			}
			continue
		}
		if it.mainDecl {
			mainItem = it
		}
		body = append(body, it)
	}
	var trailing *item
	if k := len(body); k > 0 && body[k-1].expr && mainItem == nil {
		trailing, body = body[k-1], body[:k-1]
	}
	for _, u := range group(body) {
		if err := n.runSource(ctx, u.source(sn), !u.decl, u.ranges()); err != nil {
			return Result{}, n.explainUndefined(sn, err)
		}
	}
	if mainItem != nil {
		src := stmtPrefix(sn.name, mainItem) + mainRename + "()" + stmtSuffix
		if err := n.runSource(ctx, src, true, false); err != nil {
			return Result{}, err
		}
	}
	if trailing == nil {
		return Result{}, nil
	}
	return n.runTrailing(ctx, sn.name, trailing)
}

// runTrailing evaluates the final expression statement through the hidden
// capture function, so that its exact value reaches the host. Passing it as
// the only argument of a one-parameter function is also how the number of
// values is checked: an expression of zero or several values (fmt.Println)
// does not compile in that form, and is then run as a plain statement.
func (n *Namespace) runTrailing(ctx context.Context, name string, it *item) (Result, error) {
	n.box.take()
	src := stmtPrefix(name, it) + capturePkg + ".Out(" + lineDirective(name, it.line, it.col) + it.text + ")" + stmtSuffix
	prog, err := n.compileSource(src, true, it.ranges)
	if err != nil {
		// Not a single value; the plain form reports real errors.
		if err := n.runSource(ctx, stmtPrefix(name, it)+it.text+stmtSuffix, true, it.ranges); err != nil {
			return Result{}, err
		}
		return Result{}, nil
	}
	if err := n.execute(ctx, prog); err != nil {
		return Result{}, err
	}
	v, ok := n.box.take()
	if !ok {
		return Result{}, nil
	}
	return Result{HasValue: true, Value: v, Text: render(v)}, nil
}

// unit is a run of consecutive items compiled together: a file of
// declarations, or a function body of statements.
type unit struct {
	decl  bool
	items []*item
}

// group cuts items into units. var and const join the unit they follow.
func group(items []*item) []unit {
	var us []unit
	for _, it := range items {
		decl := it.kind == kindDecl
		if it.kind == kindFlex {
			decl = len(us) > 0 && us[len(us)-1].decl
		}
		if len(us) == 0 || us[len(us)-1].decl != decl {
			us = append(us, unit{decl: decl})
		}
		us[len(us)-1].items = append(us[len(us)-1].items, it)
	}
	return us
}

// source is the unit as yaegi compiles it. A //line directive before each
// item keeps positions those of the user's snippet. In a statement unit,
// each statement is preceded (on the line before the directive, so that no
// position moves) by a call marking it as the running one.
func (u unit) source(sn *snippet) string {
	name := sn.name
	var b strings.Builder
	if u.decl {
		b.WriteString("package main;")
	} else {
		b.WriteString("package main; func main() {")
	}
	for _, it := range u.items {
		if !u.decl {
			fmt.Fprintf(&b, "%s.At(%d, %d, %d);", capturePkg, sn.cell, it.line, it.col)
		}
		if it.closure && !u.decl {
			b.WriteString("func() {")
		}
		b.WriteString(lineDirective(name, it.line, it.col))
		b.WriteString(it.text)
		if it.closure && !u.decl {
			b.WriteString("\n}()")
		}
		b.WriteString(";")
	}
	if !u.decl {
		b.WriteString(stmtSuffix)
	}
	return b.String()
}

// ranges reports whether the unit holds a range loop the rewrite left
// alone, for the hint on yaegi's range-over-int panic.
func (u unit) ranges() bool {
	for _, it := range u.items {
		if it.ranges {
			return true
		}
	}
	return false
}

// runSource compiles and runs one unit.
func (n *Namespace) runSource(ctx context.Context, src string, body, ranges bool) error {
	prog, err := n.compileSource(src, body, ranges)
	if err != nil {
		return err
	}
	return n.execute(ctx, prog)
}

// compileSource parses src into yaegi's file set (CompileAST requires it)
// and compiles it: as a file, or as the body of its func main when body is
// set, which is how yaegi's REPL runs statements at top level.
func (n *Namespace) compileSource(src string, body, ranges bool) (prog *yaegi.Program, err error) {
	mode := parser.Mode(0)
	if !body {
		mode = parser.DeclarationErrors
	}
	f, err := parser.ParseFile(n.yi.FileSet(), snippetBase, src, mode)
	if err != nil {
		return nil, n.compileError(err)
	}
	var node ast.Node = f
	if body {
		node = f.Decls[0].(*ast.FuncDecl).Body
	}
	defer func() {
		if r := recover(); r != nil {
			prog, err = nil, internalError(r, ranges)
		}
	}()
	prog, err = n.yi.CompileAST(node)
	if err != nil {
		return nil, n.compileError(err)
	}
	return prog, nil
}

// internalError reports a panic of yaegi's compiler.
func internalError(r any, ranges bool) *Error {
	msg := fmt.Sprintf("the interpreter cannot compile this snippet (yaegi panicked: %v)", r)
	if ranges {
		msg = fmt.Sprintf("range over an integer (for i := range n) is not supported by the interpreter "+
			"(yaegi v0.16.1) unless n is a literal or a len/cap call; write for i := 0; i < n; i++ instead "+
			"(yaegi panicked: %v)", r)
	}
	return &Error{Name: NameCompile, Message: msg, Traceback: []string{NameCompile + ": " + msg}}
}

// interrupted is the error of a run stopped by its context.
func interrupted(cause error) *Error {
	msg := "execution interrupted: " + cause.Error()
	return &Error{Name: NameInterrupted, Message: msg, Traceback: []string{NameInterrupted + ": " + msg}, cause: cause}
}

// execute runs a compiled unit in a goroutine of ours, so that a cancelled
// run can be waited for (see runControl).
func (n *Namespace) execute(ctx context.Context, prog *yaegi.Program) error {
	if err := ctx.Err(); err != nil {
		// Ended while an earlier unit ran or this one compiled.
		return interrupted(err)
	}
	n.traces.take()
	n.marks.take()
	stopCh := n.rc.arm()
	fin := make(chan struct{})
	var err error
	yi := n.yi // Reset may replace n.yi while an abandoned run goes on
	go func() {
		defer close(fin)
		_, err = yi.Execute(prog)
	}()
	var failed <-chan struct{}
	st := n.hooks.cur.Load()
	if st != nil {
		failed = st.failed
	}
	select {
	case <-fin:
	case <-failed:
		// A goroutine of this run panicked: in compiled Go the program
		// would be over, so the run is, with that panic as its error.
		select {
		case <-fin:
		default:
			n.pending = n.rc.stop(stopCh, fin)
		}
		return st.finish()
	case <-ctx.Done():
		select {
		case <-fin:
			// Finished while the context ended: keep the outcome.
		default:
			n.pending = n.rc.stop(stopCh, fin)
			return interrupted(ctx.Err())
		}
	}
	if err == nil {
		return nil
	}
	var p yaegi.Panic
	if errors.As(err, &p) {
		return n.panicError(p, n.traces.take(), n.marks.take())
	}
	return n.compileError(err)
}

// importItem imports the specs of an import declaration.
func (n *Namespace) importItem(it *item) error {
	for _, spec := range it.file.Imports {
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return n.compileError(err)
		}
		alias := ""
		if spec.Name != nil {
			alias = spec.Name.Name
		}
		if err := n.importPackage(alias, p); err != nil {
			pos := it.tf.Position(spec.Pos())
			msg := fmt.Sprintf("%s:%d:%d: %v", displayName(pos.Filename), pos.Line, pos.Column, err)
			e := &Error{Name: NameCompile, Message: msg, Traceback: []string{NameCompile + ": " + msg}, cause: err}
			if src, ok := n.sourceLine(displayName(pos.Filename), pos.Line); ok {
				e.Traceback = append(e.Traceback, "    "+src, "    "+caret(src, pos.Column))
			}
			return e
		}
	}
	return nil
}

// importPackage imports p under alias (or its own name), unless the
// namespace already has it under that name.
func (n *Namespace) importPackage(alias, p string) error {
	name := alias
	if name == "" {
		name = n.pkgNames[p]
	}
	if name == "_" {
		// Compiled packages are initialised already; nothing to do.
		return nil
	}
	if name != "" && name != "." {
		if have, ok := n.imported[name]; ok {
			if have == p {
				return nil
			}
			return fmt.Errorf("cannot import %q as %s: %s already names %q in this namespace; use an alias (import x %q)", p, name, name, have, p)
		}
	}
	if _, known := n.pkgNames[p]; !known {
		return fmt.Errorf("package %q is not available in this engine (snippets can import the Go standard library "+
			"as of go1.22, gonum.org/v1/gonum/{mat,floats,stat} and packages the engine registers)", p)
	}
	if err := n.loadPackage(p); err != nil {
		return err
	}
	if err := n.loadGenerics(p); err != nil {
		return err
	}
	spec := strconv.Quote(p)
	if alias != "" {
		spec = alias + " " + spec
	}
	if err := n.hostRun("package main; import "+spec, false); err != nil {
		return err
	}
	if name != "" && name != "." {
		n.imported[name] = p
	}
	return nil
}

// hostRun runs source the host generated (imports, pushes, pulls): a file,
// or a function body when body is set. It is not interruptible.
func (n *Namespace) hostRun(src string, body bool) error {
	prog, err := n.compileSource(src, body, false)
	if err != nil {
		return err
	}
	return n.execute(context.Background(), prog)
}

// Set defines name in the namespace with v's value and exact Go type (an
// IPython push): afterwards snippets see name as a variable of that type,
// e.g. []float64 or *mat.Dense. An existing variable of the same type
// takes the new value in place; one of another type is redeclared, and
// code compiled before sees its zero value from then on. While goroutines
// started by snippets run, every Set redeclares, and code compiled before
// keeps the old variable. Set(name, nil) declares an `any` holding nil.
func (n *Namespace) Set(name string, v any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.ready(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	typ, val := reflect.TypeFor[any](), reflect.Zero(reflect.TypeFor[any]())
	if v != nil {
		typ, val = reflect.TypeOf(v), reflect.ValueOf(v)
	}
	// yaegi gives a redeclared variable a new slot and keeps the old one
	// for the code compiled against it, and the node it compiled a
	// declaration from keeps the value it was declared with. So a push
	// used to redeclare, and every push of a 100 MB array to one name kept
	// all the earlier ones alive: an engine's heap grew by the array on
	// each push, into fresh memory each time. Now a variable of the same
	// type takes the value in place (code compiled earlier sees it, as a
	// Python global would); one of another type is emptied, then declared
	// anew with its zero value, then assigned. Not while goroutines of
	// snippets run: they may be reading the variable, and an assignment
	// beside their reads is a data race (a torn slice header); they keep
	// the old variable, as before.
	globals := n.yi.Globals()
	if old, ok := globals[name]; ok && old.CanSet() && n.hooks.quiet() {
		if old.Type() == typ {
			old.Set(val)
			return nil
		}
		old.Set(reflect.Zero(old.Type()))
	}
	// The type crosses as a variable of a hidden compiled package, so the
	// interpreter types the new variable from its reflect.Type: no Go
	// spelling of the type, nor an import of its package, is needed.
	// yaegi reads an exported pointer as the address of a variable, so a
	// nil one would declare the pointee's type: pointers are declared with
	// their value, which that declaration then keeps (one per name and
	// type, not one per push).
	if typ.Kind() != reflect.Pointer && n.hooks.quiet() {
		if err := n.declare(name, reflect.New(typ).Elem()); err != nil {
			return fmt.Errorf("interp: set %s (%T): %w", name, v, err)
		}
		g, ok := n.yi.Globals()[name]
		if !ok || !g.CanSet() || g.Type() != typ {
			return fmt.Errorf("interp: set %s (%T): the interpreter did not declare an assignable variable of that type", name, v)
		}
		g.Set(val)
		return nil
	}
	rv := reflect.New(typ).Elem()
	rv.Set(val)
	defer rv.Set(reflect.Zero(typ)) // the namespace has its own copy now
	if err := n.declare(name, rv); err != nil {
		return fmt.Errorf("interp: set %s (%T): %w", name, v, err)
	}
	return nil
}

// declare declares the namespace variable name with rv's type and value.
func (n *Namespace) declare(name string, rv reflect.Value) error {
	if err := n.yi.Use(yaegi.Exports{pushKey: {"V": rv}}); err != nil {
		return err
	}
	return n.hostRun("package main; var "+name+" = "+pushPkg+".V", false)
}

// Get returns the current value of a namespace variable, constant or
// function (an IPython pull). Values of types declared in snippets come
// back as the structurally equal unnamed Go type (yaegi builds them with
// reflect.StructOf), without their methods. Untyped constants come back with their
// default type (int, float64, ...). An unknown name gives an error wrapping
// ErrUndefined.
func (n *Namespace) Get(name string) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.ready(); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if v, ok := n.yi.Globals()[name]; ok {
		return exportValue(v), nil
	}
	// Functions are not among yaegi's globals: evaluate the name instead.
	n.box.take()
	if err := n.hostRun("package main; func main() {"+capturePkg+".Out("+name+")\n}", true); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Name == NameCompile {
			return nil, fmt.Errorf("interp: %s: %w", name, ErrUndefined)
		}
		return nil, fmt.Errorf("interp: get %s: %w", name, err)
	}
	v, _ := n.box.take()
	// Every other kind of value is among the globals; yaegi also accepts a
	// type name as an argument and passes junk, which must not look like a
	// value.
	if v == nil || reflect.TypeOf(v).Kind() != reflect.Func {
		return nil, fmt.Errorf("interp: %s is not a variable, constant or function: %w", name, ErrUndefined)
	}
	return v, nil
}

// checkName accepts names a snippet could declare itself.
func checkName(name string) error {
	if !token.IsIdentifier(name) || name == "_" || strings.HasPrefix(name, hiddenNames) {
		return fmt.Errorf("interp: %q is not a usable variable name", name)
	}
	// A variable named int or true (a Python push of {"int": 5}) shadows
	// the predeclared identifier for every later snippet and breaks
	// yaegi's own bookkeeping (it panicked listing globals).
	if types.Universe.Lookup(name) != nil {
		return fmt.Errorf("interp: %q is a predeclared Go identifier and cannot be a variable name", name)
	}
	return nil
}

// Names lists the variables and constants the namespace defines, sorted.
// Functions and types are not listed (yaegi does not expose them).
func (n *Namespace) Names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready() != nil {
		return nil
	}
	var names []string
	for k := range n.yi.Globals() {
		if !strings.HasPrefix(k, hiddenNames) && k != "_" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// Reset replaces the namespace with a fresh one (an IPython %reset): user
// definitions and imports go; Builtins, Preload and the tables added with
// Use stay. It does not wait for an interrupted run still blocked in
// compiled code: that run is abandoned with the old interpreter.
func (n *Namespace) Reset() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return n.init()
}

// Use registers symbol tables of compiled packages (as produced by yaegi
// extract: "importpath/name" -> symbol -> value), which snippets may then
// import. They survive Reset.
func (n *Namespace) Use(symbols map[string]map[string]reflect.Value) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.ready(); err != nil {
		return err
	}
	t := yaegi.Exports(symbols)
	if err := n.use(t); err != nil {
		return err
	}
	n.tables = append(n.tables, t)
	return nil
}

// Import imports packages as an import line would, so that snippets can use
// them without one (e.g. a package registered with Use), now and after
// Reset, like Options.Preload. Paths already imported are skipped.
func (n *Namespace) Import(paths ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.ready(); err != nil {
		return err
	}
	for _, p := range paths {
		if err := n.importPackage("", p); err != nil {
			return fmt.Errorf("interp: import %q: %w", p, err)
		}
		n.extra = append(n.extra, p)
	}
	return nil
}

// Capture runs fn, typically a call of a function the namespace defined,
// with the namespace's output captured as during Exec: everything fn's
// interpreted code prints has reached Options.Stdout/Stderr when Capture
// returns. It holds the namespace like Exec does, so it waits for (or,
// after ctx, gives up on) a run still in progress.
func (n *Namespace) Capture(ctx context.Context, fn func() error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.await(ctx); err != nil {
		return err
	}
	if err := n.out.begin(); err != nil {
		return fmt.Errorf("interp: stdout pipe: %w", err)
	}
	defer n.out.end()
	if err := n.errs.begin(); err != nil {
		return fmt.Errorf("interp: stderr pipe: %w", err)
	}
	defer n.errs.end()
	st := n.hooks.begin()
	// A goroutine's panic stops the interpreted code fn runs at its next
	// step (compiled code cannot be stopped), and becomes Capture's error.
	over := make(chan struct{})
	defer close(over)
	go func(rc *runControl) {
		select {
		case <-st.failed:
			atomic.AddUint64(rc.id, 1)
		case <-over:
		}
	}(n.rc)
	err := fn()
	if gerr := n.hooks.end(st); gerr != nil {
		return gerr
	}
	return err
}
