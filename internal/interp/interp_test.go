package interp

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"

	"gonum.org/v1/gonum/mat"
)

// testutil.SyncBuffer is a bytes.Buffer safe for the stream pumps to write while the
// test reads.

// newNS returns a namespace whose output goes to the returned buffers.
func newNS(t *testing.T) (*Namespace, *testutil.SyncBuffer, *testutil.SyncBuffer) {
	t.Helper()
	var out, errb testutil.SyncBuffer
	n, err := New(Options{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, &out, &errb
}

// run executes code and fails the test on error.
func run(t *testing.T, n *Namespace, code string) Result {
	t.Helper()
	r, err := n.Exec(context.Background(), code)
	if err != nil {
		t.Fatalf("Exec(%q): %v", code, err)
	}
	return r
}

// value executes code and returns its trailing value, failing when there is
// none.
func value(t *testing.T, n *Namespace, code string) any {
	t.Helper()
	r := run(t, n, code)
	if !r.HasValue {
		t.Fatalf("Exec(%q): no value", code)
	}
	return r.Value
}

// execErr executes code that must fail and returns the *Error.
func execErr(t *testing.T, n *Namespace, code string) *Error {
	t.Helper()
	_, err := n.Exec(context.Background(), code)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Exec(%q): got %v (%T), want *Error", code, err, err)
	}
	return e
}

func TestStatePersistsAcrossExec(t *testing.T) {
	n, _, _ := newNS(t)
	if r := run(t, n, "x := 6*7"); r.HasValue {
		t.Errorf("a statement gave a value: %+v", r)
	}
	if got := value(t, n, "x"); got != 42 {
		t.Errorf("x = %#v, want int 42", got)
	}
	run(t, n, "x++\nfunc double(v int) int { return 2 * v }")
	if got := value(t, n, "double(x)"); got != 86 {
		t.Errorf("double(x) = %#v, want 86", got)
	}
	got, err := n.Get("x")
	if err != nil || got != 43 {
		t.Errorf("Get(x) = %#v, %v; want 43", got, err)
	}
}

func TestBuiltinsNeedNoImport(t *testing.T) {
	n, _, _ := newNS(t)
	got := value(t, n, `fmt.Sprintln(math.Sqrt(16), strings.ToUpper("go"), time.Duration(1500)*time.Millisecond, os.Getpid() > 0)`)
	if got != "4 GO 1.5s true\n" {
		t.Errorf("got %q", got)
	}
}

func TestImportMidSnippet(t *testing.T) {
	n, _, _ := newNS(t)
	code := "x := 12\nimport \"strconv\"\ns := strconv.Itoa(x)\nimport (\n\t\"sort\"\n\tm2 \"math\"\n)\n" +
		"v := []int{3, 1, 2}\nsort.Ints(v)\nfmt.Sprintln(s, v, m2.Abs(-1))"
	if got := value(t, n, code); got != "12 [1 2 3] 1\n" {
		t.Errorf("got %q", got)
	}
	// Re-importing what the namespace has (a builtin, or an earlier import)
	// is a no-op, as in a Go file.
	if got := value(t, n, "import \"fmt\"\nimport \"strconv\"\nstrconv.Quote(fmt.Sprint(1))"); got != `"1"` {
		t.Errorf("got %q", got)
	}
	e := execErr(t, n, "import \"no/such/pkg\"")
	if e.Name != NameCompile || !strings.Contains(e.Message, `"no/such/pkg" is not available`) {
		t.Errorf("unknown import: %+v", e)
	}
	e = execErr(t, n, "import \"crypto/rand\"\nimport \"math/rand\"")
	if e.Name != NameCompile || !strings.Contains(e.Message, "use an alias") {
		t.Errorf("name clash: %+v", e)
	}
}

func TestGonum(t *testing.T) {
	n, _, _ := newNS(t)
	code := `import (
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)
a := mat.NewDense(2, 2, []float64{4, 1, 2, 3})
var inv mat.Dense
if err := inv.Inverse(a); err != nil {
	panic(err)
}
var id mat.Dense
id.Mul(a, &inv)
fmt.Sprintf("%.1f %.1f %.1f %.1f", mat.Det(a), id.At(0, 0)+id.At(1, 1), floats.Sum([]float64{1, 2, 3}), stat.Mean([]float64{1, 2, 3}, nil))`
	if got := value(t, n, code); got != "10.0 2.0 6.0 2.0" {
		t.Errorf("got %q", got)
	}
	// Matrices render as aligned rows.
	r := run(t, n, "a")
	if _, ok := r.Value.(*mat.Dense); !ok || !strings.Contains(r.Text, "⎡4  1⎤") {
		t.Errorf("a rendered as %q (%T)", r.Text, r.Value)
	}
}

func TestOutputGoesToOptionsWriters(t *testing.T) {
	// Anything reaching the real stdout/stderr during Exec is a leak.
	realOut, realErr := os.Stdout, os.Stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	leaked := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(pr)
		leaked <- b
	}()
	os.Stdout, os.Stderr = pw, pw
	restored := false
	restore := func() {
		if !restored {
			os.Stdout, os.Stderr = realOut, realErr
			pw.Close()
			restored = true
		}
	}
	defer restore()

	n, out, errb := newNS(t)
	run(t, n, `fmt.Println("one")
fmt.Fprintln(os.Stdout, "two")
os.Stdout.WriteString("three\n")
print("four\n")
fmt.Fprintln(os.Stderr, "e1")
import "log"
log.SetFlags(0)
log.Println("e2")
w := os.Stdout
fmt.Fprintf(w, "five %d\n", 5)`)
	// Exec returns only once the output is delivered, so no waiting here.
	if got, want := out.String(), "one\ntwo\nthree\nfour\nfive 5\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := errb.String(), "e1\ne2\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	restore()
	if b := <-leaked; len(b) > 0 {
		t.Errorf("leaked to the process's stdout/stderr: %q", b)
	}
}

func TestLargeOutputIsDeliveredBeforeExecReturns(t *testing.T) {
	n, out, _ := newNS(t)
	// More than a pipe buffer (64 KiB), so the pump must run concurrently.
	run(t, n, `for i := 0; i < 20000; i++ { fmt.Println("line", i) }`)
	s := out.String()
	if c := strings.Count(s, "\n"); c != 20000 || !strings.HasSuffix(s, "line 19999\n") {
		t.Errorf("got %d lines, tail %q", c, s[max(0, len(s)-20):])
	}
}

func TestTrailingExpression(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, "func two() (int, error) { return 2, nil }\nfunc none() {}\nfunc one() float64 { return 1.5 }\ntype P struct{ X, Y int }")
	cases := []struct {
		code     string
		hasValue bool
		want     any
	}{
		{"y := 1", false, nil},
		{"y = 2", false, nil},
		{"y", true, 2},
		{"y == 2", true, true},
		{"int64(y) << 40", true, int64(2) << 40},
		{"one()", true, 1.5},
		{"none()", false, nil},
		{"two()", false, nil},
		{`fmt.Println("printed")`, false, nil},
		{"[]string{\"a\"}", true, []string{"a"}},
		{"P{1, 2}", true, struct{ X, Y int }{1, 2}},
		{"for i := 0; i < 2; i++ {}", false, nil},
		{"if y > 1 { y = 5 }", false, nil},
		{"// only a comment", false, nil},
		{"", false, nil},
		{"var e error\ne", true, nil},
		{"x := 3 // trailing comment\nx * 2 // another", true, 6},
	}
	for _, c := range cases {
		r := run(t, n, c.code)
		if r.HasValue != c.hasValue || !reflect.DeepEqual(r.Value, c.want) {
			t.Errorf("%q: got %+v (%T), want HasValue=%v %#v", c.code, r, r.Value, c.hasValue, c.want)
		}
	}
	if r := run(t, n, "3.5"); r.Text != "3.5" {
		t.Errorf("Text = %q", r.Text)
	}
	// Long slices are abbreviated in Text, not in Value.
	r := run(t, n, "make([]float64, 5000)")
	if len(r.Value.([]float64)) != 5000 || !strings.Contains(r.Text, "...") || !strings.HasSuffix(r.Text, "(len 5000)") {
		t.Errorf("long slice text %q", r.Text)
	}
}

func TestCompileErrors(t *testing.T) {
	n, _, _ := newNS(t)
	e := execErr(t, n, "ran := 1\ny := 2 + )\nz := 3")
	if e.Name != NameCompile || !strings.HasPrefix(e.Message, "cell1:2:") {
		t.Errorf("syntax error: %+v", e)
	}
	if _, err := n.Get("ran"); !errors.Is(err, ErrUndefined) {
		t.Errorf("a snippet with a syntax error partly ran: Get(ran) = %v", err)
	}
	e = execErr(t, n, "a := 1\nb := a + \"x\"")
	if e.Name != NameCompile || !strings.HasPrefix(e.Message, "cell2:2:") {
		t.Errorf("type error: %+v", e)
	}
	if len(e.Traceback) != 3 || e.Traceback[1] != "    b := a + \"x\"" || !strings.HasSuffix(e.Traceback[2], "^") {
		t.Errorf("traceback %q", e.Traceback)
	}
	e = execErr(t, n, "undefinedThing()")
	if e.Name != NameCompile || !strings.Contains(e.Message, "undefined: undefinedThing") {
		t.Errorf("undefined: %+v", e)
	}
	e = execErr(t, n, "defer fmt.Println()")
	if e.Name != NameCompile || !strings.Contains(e.Message, "defer at the top level") {
		t.Errorf("defer: %+v", e)
	}
	// The namespace survives errors.
	if got := value(t, n, "1 + 1"); got != 2 {
		t.Errorf("after errors: %v", got)
	}
}

func TestPanics(t *testing.T) {
	n, _, errb := newNS(t)
	run(t, n, "func div(k int) int {\n\treturn 10 / k\n}")
	e := execErr(t, n, "x := 1\ndiv(x - 1)")
	if e.Name != NamePanic || e.Message != "runtime error: integer divide by zero" {
		t.Fatalf("got %+v", e)
	}
	var re runtime.Error
	if !errors.As(e, &re) {
		t.Errorf("the runtime.Error is not reachable with errors.As")
	}
	tb := strings.Join(e.Traceback, "\n")
	for _, want := range []string{"panic: runtime error", "cell1:2:", "in main.div", "return 10 / k", "cell2:2:1 in <snippet>", "div(x - 1)"} {
		if !strings.Contains(tb, want) {
			t.Errorf("traceback lacks %q:\n%s", want, tb)
		}
	}
	if strings.Contains(errb.String(), "panic") {
		t.Errorf("yaegi's frame lines leaked to stderr: %q", errb.String())
	}
	e = execErr(t, n, `panic(fmt.Sprintf("boom %d", 7))`)
	if e.Name != NamePanic || e.Message != "boom 7" || e.Value != "boom 7" {
		t.Errorf("got %+v", e)
	}
	e = execErr(t, n, `var m map[string]int
m["a"] = 1`)
	if e.Name != NamePanic || !strings.Contains(e.Message, "nil map") {
		t.Errorf("got %+v", e)
	}
	if got := value(t, n, "x"); got != 1 {
		t.Errorf("after panics x = %v", got)
	}
}

type hostPoint struct {
	X, Y float64
	Tag  string
}

func TestSetGetRoundTrip(t *testing.T) {
	n, _, _ := newNS(t)
	vals := []struct {
		name  string
		v     any
		gotyp string // %T as the interpreted code sees it
	}{
		{"i", 3, "int"},
		{"i64", int64(-4), "int64"},
		{"f", 2.5, "float64"},
		{"s", "str", "string"},
		{"b", true, "bool"},
		{"f64s", []float64{1, 2}, "[]float64"},
		{"f32s", []float32{1.5}, "[]float32"},
		{"i64s", []int64{1, -1}, "[]int64"},
		{"i32s", []int32{2}, "[]int32"},
		{"ints", []int{3, 4}, "[]int"},
		{"bs", []byte("xyz"), "[]uint8"},
		{"ss", []string{"a", "b"}, "[]string"},
		{"m", map[string]any{"k": 1.0, "l": []any{"x"}}, "map[string]interface {}"},
		{"as", []any{1, "x", nil}, "[]interface {}"},
		{"d", mat.NewDense(2, 2, []float64{1, 2, 3, 4}), "*mat.Dense"},
		{"vec", mat.NewVecDense(2, []float64{5, 6}), "*mat.VecDense"},
		{"p", hostPoint{1, 2, "t"}, "interp.hostPoint"},
		{"pp", &hostPoint{3, 4, "u"}, "*interp.hostPoint"},
		{"null", nil, "<nil>"},
	}
	for _, c := range vals {
		if err := n.Set(c.name, c.v); err != nil {
			t.Fatalf("Set(%s): %v", c.name, err)
		}
	}
	for _, c := range vals {
		got, err := n.Get(c.name)
		if err != nil || !reflect.DeepEqual(got, c.v) {
			t.Errorf("Get(%s) = %#v, %v; want %#v", c.name, got, err, c.v)
		}
		if typ := value(t, n, `fmt.Sprintf("%T", `+c.name+`)`); typ != c.gotyp {
			t.Errorf("%s has type %v inside, want %s", c.name, typ, c.gotyp)
		}
	}
	// The pushed values are usable with their types' operations.
	checks := map[string]any{
		"append(f64s, 3)[2]":        3.0,
		"f32s[0] * 2":               float32(3),
		"i64s[1] + i64":             int64(-5),
		"d.At(1, 1) + vec.AtVec(1)": 10.0,
		"p.X + pp.Y":                5.0,
		`m["k"].(float64)`:          1.0,
		"len(bs) + ints[1]":         7,
	}
	for code, want := range checks {
		if got := value(t, n, code); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", code, got, want)
		}
	}
	// Changes made by snippets are what Get pulls.
	run(t, n, "f64s[0] = 100\nd.Set(0, 0, -1)\nm[\"new\"] = true")
	if got, _ := n.Get("f64s"); got.([]float64)[0] != 100 {
		t.Errorf("f64s = %v", got)
	}
	if got, _ := n.Get("d"); got.(*mat.Dense).At(0, 0) != -1 {
		t.Errorf("d = %v", got)
	}
	if got, _ := n.Get("m"); got.(map[string]any)["new"] != true {
		t.Errorf("m = %v", got)
	}
}

func TestSetRedeclaresWithNewType(t *testing.T) {
	n, _, _ := newNS(t)
	if err := n.Set("a", 7); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "a + 1"); got != 8 {
		t.Errorf("a+1 = %v", got)
	}
	if err := n.Set("a", []float64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "a = append(a, 3)\nlen(a)"); got != 3 {
		t.Errorf("len(a) = %v", got)
	}
	run(t, n, `b := "declared by a snippet"`)
	if err := n.Set("b", 2.5); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "b * 2"); got != 5.0 {
		t.Errorf("b*2 = %v", got)
	}
}

// A push must not keep the value it replaces alive: yaegi keeps the slot
// of a redeclared variable, and pushing 100 MB arrays to one name grew an
// engine's heap by 100 MB per push.
func TestSetReleasesReplacedValues(t *testing.T) {
	n, _, _ := newNS(t)
	collected := func(name string, v []float64) *atomic.Bool {
		var done atomic.Bool
		runtime.AddCleanup(&v[0], func(d *atomic.Bool) { d.Store(true) }, &done)
		if err := n.Set(name, v); err != nil {
			t.Fatal(err)
		}
		return &done
	}
	// Large enough to be an allocation of their own (a cleanup on a tiny
	// allocation may wait for its neighbours).
	big := func(x float64) []float64 {
		v := make([]float64, 4096)
		v[0] = x
		return v
	}
	first := collected("a", big(6))
	run(t, n, "func total() float64 { s := 0.0; for _, x := range a { s += x }; return s }")
	// Same type: replaced in place, and code compiled before sees it.
	second := collected("a", big(30))
	if got := value(t, n, "total()"); got != 30.0 {
		t.Errorf("total() after the second push = %v, want 30", got)
	}
	// Another type: redeclared, the old slice emptied.
	if err := n.Set("a", "text"); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "a + \"!\""); got != "text!" {
		t.Errorf("a = %v", got)
	}
	// Pointers: the first is kept by its declaration, later ones replace
	// each other in place.
	var ptrDone atomic.Bool
	for i := range 3 {
		d := mat.NewDense(64, 64, nil)
		d.Set(0, 0, float64(i))
		if i == 1 {
			runtime.AddCleanup(d, func(b *atomic.Bool) { b.Store(true) }, &ptrDone)
		}
		if err := n.Set("d", d); err != nil {
			t.Fatal(err)
		}
		if got := value(t, n, "d.At(0, 0)"); got != float64(i) {
			t.Errorf("push %d of d: d.At(0, 0) = %v", i, got)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		runtime.GC()
		return first.Load() && second.Load() && ptrDone.Load()
	}, "the replaced values were never collected")
}

// TestSetBesideGoroutines: while a goroutine of a snippet runs (it may be
// reading the variable), a push redeclares instead of assigning in place,
// so code compiled before keeps the old value; once no goroutine runs,
// pushes assign in place again.
func TestSetBesideGoroutines(t *testing.T) {
	n, _, _ := newNS(t)
	if err := n.Set("a", []float64{1}); err != nil {
		t.Fatal(err)
	}
	run(t, n, "stop := make(chan bool)\nfunc first() float64 { return a[0] }\ngo func() { <-stop }()")
	if err := n.Set("a", []float64{2}); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "first()"); got != 1.0 {
		t.Errorf("first() beside a running goroutine = %v, want the old 1", got)
	}
	if got := value(t, n, "a[0]"); got != 2.0 {
		t.Errorf("a[0] = %v, want 2", got)
	}
	run(t, n, "close(stop)")
	testutil.Eventually(t, 10*time.Second, n.hooks.quiet, "the snippet's goroutine never ended")
	run(t, n, "func second() float64 { return a[0] }")
	if err := n.Set("a", []float64{3}); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "second()"); got != 3.0 {
		t.Errorf("second() after the goroutine ended = %v, want 3 (assigned in place)", got)
	}
}

func TestGetOfSnippetDefinitions(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, "type Q struct{ A int; B []float64 }\nq := Q{1, []float64{2}}\nconst K = 3\nconst Pi2 = 6.28\nfunc inc(v int) int { return v + 1 }")
	q, err := n.Get("q")
	if err != nil || !reflect.DeepEqual(q, struct {
		A int
		B []float64
	}{1, []float64{2}}) {
		t.Errorf("q = %#v, %v", q, err)
	}
	if k, err := n.Get("K"); err != nil || k != 3 {
		t.Errorf("K = %#v, %v; want int 3", k, err)
	}
	if k, err := n.Get("Pi2"); err != nil || k != 6.28 {
		t.Errorf("Pi2 = %#v, %v; want float64", k, err)
	}
	f, err := n.Get("inc")
	if fn, ok := f.(func(int) int); err != nil || !ok || fn(1) != 2 {
		t.Errorf("inc = %#v, %v", f, err)
	}
	for _, name := range []string{"nothing", "Q", "fmt"} {
		if _, err := n.Get(name); !errors.Is(err, ErrUndefined) {
			t.Errorf("Get(%s): %v, want ErrUndefined", name, err)
		}
	}
	if err := n.Set("not a name", 1); err == nil {
		t.Error("Set accepted an invalid name")
	}
	names := n.Names()
	if !reflect.DeepEqual(names, []string{"K", "Pi2", "q"}) {
		t.Errorf("Names() = %v", names)
	}
}

func TestReset(t *testing.T) {
	n, _, _ := newNS(t)
	err := n.Use(map[string]map[string]reflect.Value{
		"example.com/greet/greet": {"Hello": reflect.ValueOf(func(s string) string { return "hello " + s })},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Import("example.com/greet"); err != nil {
		t.Fatal(err)
	}
	run(t, n, "x := 1\nimport \"strconv\"")
	if err := n.Set("pushed", []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := n.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get("x"); !errors.Is(err, ErrUndefined) {
		t.Errorf("x survived Reset: %v", err)
	}
	if names := n.Names(); len(names) != 0 {
		t.Errorf("Names after Reset = %v", names)
	}
	if e := execErr(t, n, "strconv.Itoa(1)"); e.Name != NameCompile {
		t.Errorf("an import survived Reset: %+v", e)
	}
	// Builtins, Use tables and Import survive.
	if got := value(t, n, `greet.Hello(fmt.Sprint(math.MaxInt8))`); got != "hello 127" {
		t.Errorf("got %v", got)
	}
}

func TestRangeOverInt(t *testing.T) {
	n, out, _ := newNS(t)
	run(t, n, `for i := range 3 { fmt.Print(i) }
for range 2 { fmt.Print("x") }
xs := []int{7, 8}
for i := range len(xs) { fmt.Print(xs[i]) }
func f() { for j := range 2 * 2 { fmt.Print(j) } }
f()`)
	if got := out.String(); got != "012xx780123" {
		t.Errorf("output %q", got)
	}
	e := execErr(t, n, "k := 3\nfor i := range k { fmt.Print(i) }")
	if e.Name != NameCompile || !strings.Contains(e.Message, "range over an integer") {
		t.Errorf("got %+v", e)
	}
	// Ranges over slices and maps are untouched.
	if got := value(t, n, "s := 0\nfor _, v := range []int{1, 2} { s += v }\nfor k := range map[int]bool{5: true} { s += k }\ns"); got != 8 {
		t.Errorf("s = %v", got)
	}
}

func TestFuncMainRunsOnce(t *testing.T) {
	n, out, _ := newNS(t)
	run(t, n, "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"main ran\")\n}\n")
	run(t, n, "y := 1")
	run(t, n, "func other() {}")
	// A second program replaces the first.
	run(t, n, "package main\nfunc main() { fmt.Println(\"second\") }")
	run(t, n, "z := 2")
	if got := out.String(); got != "main ran\nsecond\n" {
		t.Errorf("output %q, want each main to run exactly once", got)
	}
}

// waitReady polls until an interrupted run has let go of the namespace.
func waitReady(t *testing.T, n *Namespace) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := n.Exec(ctx, "")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace still busy: %v", err)
		}
	}
}

// startRun runs code in the background. The snippet calls sig.Started()
// once it is running; startRun returns after that call, so the caller knows
// the run is under way. (A pushed channel would do, but yaegi v0.16.1
// cannot compile a send statement on a channel of a compiled type.)
func startRun(t *testing.T, n *Namespace, ctx context.Context, code string) <-chan error {
	t.Helper()
	started := make(chan struct{}, 1)
	err := n.Use(map[string]map[string]reflect.Value{
		"example.com/sig/sig": {"Started": reflect.ValueOf(func() { started <- struct{}{} })},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Import("example.com/sig"); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := n.Exec(ctx, code)
		res <- err
	}()
	select {
	case <-started:
	case err := <-res:
		t.Fatalf("Exec(%q) ended before starting: %v", code, err)
	}
	return res
}

func TestCancelStopsALoop(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, "cnt := 0")
	ctx, cancel := context.WithCancel(context.Background())
	res := startRun(t, n, ctx, "sig.Started()\nfor { cnt++ }")
	cancel()
	err := <-res
	var e *Error
	if !errors.As(err, &e) || e.Name != NameInterrupted || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	waitReady(t, n)
	c1 := value(t, n, "cnt")
	run(t, n, "y := 1")
	if c2 := value(t, n, "cnt"); c1 != c2 || c1 == 0 {
		t.Errorf("the interrupted loop went on: cnt %v then %v", c1, c2)
	}
	// A context that ended before Exec runs nothing.
	if _, err := n.Exec(ctx, "cnt = -1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a dead context: %v", err)
	}
	if c3 := value(t, n, "cnt"); c3 != c1 {
		t.Errorf("ran with a dead context: cnt %v", c3)
	}
}

func TestCancelUnblocksChannelReceive(t *testing.T) {
	n, _, _ := newNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	res := startRun(t, n, ctx, "never := make(chan int)\nsig.Started()\n<-never")
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	waitReady(t, n)
	if got := value(t, n, "1"); got != 1 {
		t.Errorf("got %v", got)
	}
}

func TestInterruptedRunBlockedInCompiledCode(t *testing.T) {
	n, _, _ := newNS(t)
	gate := make(chan struct{})
	err := n.Use(map[string]map[string]reflect.Value{
		"example.com/gate/gate": {"Wait": reflect.ValueOf(func() { <-gate })},
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, n, "import \"example.com/gate\"\ncnt := 1")
	ctx, cancel := context.WithCancel(context.Background())
	res := startRun(t, n, ctx, "sig.Started()\ngate.Wait()\ncnt = -1")
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	// The run is stuck in gate.Wait, which the interpreter cannot preempt.
	if _, err := n.Get("cnt"); !errors.Is(err, ErrBusy) {
		t.Errorf("Get while busy: %v", err)
	}
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if _, err := n.Exec(short, "1"); !errors.Is(err, ErrBusy) {
		t.Errorf("Exec while busy: %v", err)
	}
	close(gate)
	waitReady(t, n)
	// Once gate.Wait returned, the run stopped before its next statement.
	if got := value(t, n, "cnt"); got != 1 {
		t.Errorf("cnt = %v: the interrupted snippet went on after the blocking call", got)
	}
}

func TestResetAbandonsABusyRun(t *testing.T) {
	n, _, _ := newNS(t)
	gate := make(chan struct{})
	defer close(gate)
	if err := n.Use(map[string]map[string]reflect.Value{
		"example.com/gate/gate": {"Wait": reflect.ValueOf(func() { <-gate })},
	}); err != nil {
		t.Fatal(err)
	}
	run(t, n, "import \"example.com/gate\"")
	ctx, cancel := context.WithCancel(context.Background())
	res := startRun(t, n, ctx, "sig.Started()\ngate.Wait()")
	cancel()
	<-res
	if err := n.Reset(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, n, "2 * 21"); got != 42 {
		t.Errorf("got %v", got)
	}
}

func TestClose(t *testing.T) {
	n, err := New(Options{Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := n.Exec(context.Background(), "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Exec after Close: %v", err)
	}
}

func TestSnippetShapes(t *testing.T) {
	n, out, _ := newNS(t)
	cases := []struct {
		code string
		want any // nil: no value expected
	}{
		{"outer:\nfor i := 0; i < 3; i++ {\n\tfor j := 0; j < 3; j++ {\n\t\tif j == 1 { continue outer }\n\t\tif i == 2 { break outer }\n\t}\n}\n\"ok\"", "ok"},
		{"switch v := 3; {\ncase v > 2:\n\tfmt.Println(\"big\")\ndefault:\n}", nil},
		{"if a := 1; a > 2 {\n} else if a == 1 {\n\tfmt.Println(\"one\")\n} else {\n}", nil},
		{"import \"sync\"\nvar wg sync.WaitGroup\ntotal := 0\nvar mu sync.Mutex\nfor i := 0; i < 4; i++ {\n\twg.Add(1)\n\tgo func(k int) { defer wg.Done(); mu.Lock(); total += k; mu.Unlock() }(i)\n}\nwg.Wait()\ntotal", 6},
		{"p := struct {\n\tA int\n\tB string\n}{\n\tA: 1,\n\tB: `multi\nline`,\n}\np.B", "multi\nline"},
		{"a := 1; b := 2; a + b", 3},
		{"var (\n\tq1 = 1\n\tq2 = \"s\"\n)\nfmt.Sprint(q1, q2)", "1s"},
		{"type S struct{ v int }\nfunc (s *S) Inc() { s.v++ }\ns := &S{}\ns.Inc()\ns.Inc()\ns.v", 2},
		{"f := func(x int) int {\n\treturn x * x\n}\nf(7)", 49},
		{"func() int { return 5 }()", 5},
		{"ch := make(chan int, 1)\nch <- 3\n<-ch", 3},
		{"func Sum2[T int | float64](xs []T) T { var s T; for _, x := range xs { s += x }; return s }\nSum2([]float64{1.5, 2})", 3.5},
		{"import \"encoding/json\"\nbs, _ := json.Marshal(map[string]int{\"a\": 1})\nstring(bs)", `{"a":1}`},
	}
	for _, c := range cases {
		r := run(t, n, c.code)
		if (c.want == nil) == r.HasValue || (c.want != nil && !reflect.DeepEqual(r.Value, c.want)) {
			t.Errorf("%q: got %+v, want %#v", c.code, r, c.want)
		}
	}
	if got := out.String(); got != "big\none\n" {
		t.Errorf("output %q", got)
	}
	// A sandboxed os.Exit panics instead of ending the engine.
	if e := execErr(t, n, "os.Exit(3)"); e.Name != NamePanic || e.Message != "os.Exit(3)" {
		t.Errorf("os.Exit: %+v", e)
	}
}

// TestCompoundStatementMultiAssign: a multi-value := from a call inside a
// top-level for/if/switch/block used to fail to compile ("undefined: e"),
// a yaegi quirk of its top-level body; such statements now run in a
// closure. Assignments to the namespace's variables must still stick, and
// errors keep their positions.
func TestCompoundStatementMultiAssign(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, `import "os"; import "strconv"; count := 0`)
	for _, code := range []string{
		`for { _, e := os.Stat("/"); if e == nil { count++; break } }`,
		`if true { v, e := strconv.Atoi("2"); if e == nil { count += v } }`,
		`switch { default: v, _ := strconv.Atoi("3"); count += v }`,
		`{ v, e := strconv.Atoi("4"); _ = e; count += v }`,
	} {
		run(t, n, code)
	}
	if got := value(t, n, `count`); got != 10 {
		t.Fatalf("count = %v after the four statements, want 10", got)
	}
	e := execErr(t, n, "x := 1\n_ = x\nfor {\n\t_, e := strconv.Atoi(\"q\")\n\tundefinedName(e)\n}")
	if e.Name != NameCompile || !strings.Contains(e.Message, ":5:") {
		t.Fatalf("compile error inside a wrapped loop: %s: %s, want a CompileError at line 5 of the cell", e.Name, e.Message)
	}
}

// TestSetRefusesPredeclaredNames: a variable named int or true (a Python
// push of {"int": 5}) would shadow Go's own identifiers in every later
// snippet; Set refuses it, and the namespace keeps working.
func TestSetRefusesPredeclaredNames(t *testing.T) {
	n, _, _ := newNS(t)
	for _, name := range []string{"int", "true", "len", "nil", "float64", "error"} {
		if err := n.Set(name, 1); err == nil || !strings.Contains(err.Error(), "predeclared") {
			t.Errorf("Set(%q) = %v, want a predeclared-identifier error", name, err)
		}
	}
	if err := n.Set("x", 2); err != nil {
		t.Fatal(err)
	}
	res, err := n.Exec(context.Background(), "int(x) * 3")
	if err != nil || res.Value != 6 {
		t.Errorf("namespace after refused names: %+v, %v", res, err)
	}
}
