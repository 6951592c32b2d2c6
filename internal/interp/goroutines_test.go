package interp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// lateSink collects what OnGoroutinePanic is handed.
type lateSink struct {
	mu   sync.Mutex
	errs []*Error
}

func (s *lateSink) add(e *Error) {
	s.mu.Lock()
	s.errs = append(s.errs, e)
	s.mu.Unlock()
}

func (s *lateSink) all() []*Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Error(nil), s.errs...)
}

func newGoNS(t *testing.T) (*Namespace, *testutil.SyncBuffer, *testutil.SyncBuffer, *lateSink) {
	t.Helper()
	var out, errb testutil.SyncBuffer
	late := &lateSink{}
	n, err := New(Options{Stdout: &out, Stderr: &errb, OnGoroutinePanic: late.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, &out, &errb, late
}

// TestGoroutinePanicFailsItsRun: a panic in a goroutine while the snippet
// that started it runs is that snippet's error, even when the snippet
// waits for the goroutine forever, and the process survives.
func TestGoroutinePanicFailsItsRun(t *testing.T) {
	n, _, _, late := newGoNS(t)
	e := execErr(t, n, "done := make(chan int)\ngo func() {\n\tpanic(\"in goroutine\")\n}()\n<-done")
	if e.Name != NamePanic || e.Message != "in goroutine (in a goroutine started at cell1:2:1)" {
		t.Fatalf("got %s: %q", e.Name, e.Message)
	}
	tb := strings.Join(e.Traceback, "\n")
	for _, want := range []string{"cell1:3:2", `panic("in goroutine")`, "goroutine started at cell1:2:1", "go func() {"} {
		if !strings.Contains(tb, want) {
			t.Errorf("traceback lacks %q:\n%s", want, tb)
		}
	}
	if strings.Contains(tb, hostFile) || strings.Contains(tb, "__ipp") {
		t.Errorf("the rewrite shows in the traceback:\n%s", tb)
	}

	// A go statement in a function an earlier snippet defined is charged
	// to the snippet that calls it; the runtime error reads as Go's.
	run(t, n, "func starter() {\n\tgo func() {\n\t\tvar p *int\n\t\tfmt.Println(*p)\n\t}()\n}")
	e = execErr(t, n, "starter()\nselect {}")
	if e.Name != NamePanic || !strings.HasPrefix(e.Message, "runtime error: invalid memory address or nil pointer dereference (in a goroutine started at cell2:2:2)") {
		t.Fatalf("got %s: %q", e.Name, e.Message)
	}
	// So is a time.AfterFunc callback.
	e = execErr(t, n, "time.AfterFunc(time.Millisecond, func() { panic(\"timer\") })\nselect {}")
	if e.Name != NamePanic || e.Message != "timer (in a goroutine started at cell4:1:1)" {
		t.Fatalf("got %s: %q", e.Name, e.Message)
	}
	// And a context.AfterFunc callback.
	e = execErr(t, n, "import \"context\"\nctx, cancel := context.WithCancel(context.Background())\ncontext.AfterFunc(ctx, func() { panic(\"ctx\") })\ncancel()\nselect {}")
	if e.Name != NamePanic || e.Message != "ctx (in a goroutine started at cell5:3:1)" {
		t.Fatalf("got %s: %q", e.Name, e.Message)
	}
	if got := value(t, n, "6 * 7"); got != 42 {
		t.Errorf("after the panics: %v", got)
	}
	if l := late.all(); len(l) != 0 {
		t.Errorf("panics of running snippets were reported as late: %v", l)
	}
}

// TestLateGoroutinePanic: a goroutine that panics after its snippet ended
// is reported on stderr and to OnGoroutinePanic; the namespace goes on.
func TestLateGoroutinePanic(t *testing.T) {
	n, _, errb, late := newGoNS(t)
	run(t, n, "release := make(chan int)\nfunc later() {\n\t<-release\n\tpanic(\"late one\")\n}\ngo later()")
	run(t, n, "close(release)")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(late.all()) == 1 }, "no late panic reported")
	e := late.all()[0]
	if e.Name != NamePanic || e.Message != "late one (in a goroutine started at cell1:6:1)" {
		t.Errorf("got %s: %q", e.Name, e.Message)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(errb.String(), "panic: late one (in a goroutine started at cell1:6:1)")
	}, "late panic not on stderr: %q", errb.String())
	if got := value(t, n, "1 + 1"); got != 2 {
		t.Errorf("after the late panic: %v", got)
	}
}

// TestGoStatementSemantics: the rewrite keeps what go statements mean:
// operands are evaluated when the statement runs (loop variables, method
// receivers, function values), constants keep their untyped flexibility,
// and built-ins, compiled functions and variadic calls work.
func TestGoStatementSemantics(t *testing.T) {
	n, out, _, _ := newGoNS(t)
	for _, c := range []struct{ code, want string }{
		{"func worker(i int, c chan int) { c <- i * 10 }\nc := make(chan int, 3)\nfor i := 0; i < 3; i++ {\n\tgo worker(i, c)\n}\nfmt.Println(<-c + <-c + <-c)", "30"},
		{"type W struct{ id int }\nfunc (w W) Run(c chan int) { c <- w.id }\nws := []W{{1}, {20}, {300}}\nc := make(chan int, 3)\nfor _, w := range ws {\n\tgo w.Run(c)\n}\nfmt.Println(<-c + <-c + <-c)", "321"},
		{"type P struct{ id int }\nfunc (p *P) Run(c chan int) { p.id++; c <- p.id }\nps := []P{{1}, {20}}\nc := make(chan int, 2)\nfor _, p := range ps {\n\tgo p.Run(c)\n}\nfmt.Println(<-c + <-c)", "23"},
		{"c := make(chan int, 2)\nfs := []func(){func() { c <- 1 }, func() { c <- 10 }}\nfor _, f := range fs {\n\tgo f()\n}\nfmt.Println(<-c + <-c)", "11"},
		{"func half(x float64, c chan float64) { c <- x / 2 }\nc := make(chan float64)\ngo half(3, c)\nfmt.Println(<-c)", "1.5"},
		{"c := make(chan int)\nx := 1\ngo func(v int) { c <- v }(x)\nx = 2\nfmt.Println(<-c, x)", "1 2"},
		{"c := make(chan int)\ngo func(xs ...int) { c <- len(xs) }([]int{1, 2, 3}...)\nfmt.Println(<-c)", "3"},
		{"var wg sync.WaitGroup\nwg.Add(1)\ngo func() {\n\tdefer wg.Done()\n\tfmt.Println(\"done\")\n}()\nwg.Wait()", "done"},
		{"c := make(chan string)\ngo func() { c <- strings.Repeat(\"ab\", 2) }()\nfmt.Println(<-c)", "abab"},
	} {
		before := len(out.String())
		if _, err := n.Exec(context.Background(), "import \"sync\"\n"+c.code); err != nil {
			t.Errorf("%s: %v", c.code, err)
			continue
		}
		if got := strings.TrimSpace(out.String()[before:]); got != c.want {
			t.Errorf("%s\nprinted %q, want %q", c.code, got, c.want)
		}
	}
}

// TestGoroutinePanicDuringCapture: a function of the namespace called
// through Capture (as the engine's apply does) fails with the panic of a
// goroutine it started, and its interpreted busy loop is stopped.
func TestGoroutinePanicDuringCapture(t *testing.T) {
	n, _, _, late := newGoNS(t)
	run(t, n, "func spawn() int {\n\tgo func() { panic(\"from apply\") }()\n\tfor {\n\t}\n}")
	v, err := n.Get("spawn")
	if err != nil {
		t.Fatal(err)
	}
	spawn, ok := v.(func() int)
	if !ok {
		t.Fatalf("spawn is a %T", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Capture(ctx, func() error {
		spawn()
		return nil
	})
	var e *Error
	if !errors.As(err, &e) || e.Name != NamePanic || e.Message != "from apply (in a goroutine started at cell1:2:2)" {
		t.Fatalf("Capture = %v", err)
	}
	if len(late.all()) != 0 {
		t.Errorf("reported as late: %v", late.all())
	}
	if got := value(t, n, "2 + 3"); got != 5 {
		t.Errorf("after: %v", got)
	}
}
