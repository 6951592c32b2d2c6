package engine

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// executeError runs code that must fail and returns the error reply.
func executeError(t *testing.T, f *fake, code string) protocol.ErrorContent {
	t.Helper()
	reply, _ := execute(t, f, code, true)
	var ec protocol.ErrorContent
	if err := json.Unmarshal(reply.Content, &ec); err != nil {
		t.Fatal(err)
	}
	if ec.Status != "error" {
		t.Fatalf("%q: reply %s, want an error", code, reply.Content)
	}
	return ec
}

// executeOK runs code that must succeed.
func executeOK(t *testing.T, f *fake, code string) {
	t.Helper()
	reply, _ := execute(t, f, code, true)
	if content(t, reply)["status"] != "ok" {
		t.Fatalf("%q: %s", code, reply.Content)
	}
}

// TestErrorMessagesReachClients: what a client receives for common
// mistakes is Go's message with the snippet position, and no interpreter
// or engine internals.
func TestErrorMessagesReachClients(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	for _, c := range []struct {
		code, ename string
		evalue      string // regexp
		traceback   string // must be in the traceback
	}{
		{"fmt.Println(1", interp.NameCompile, `^cell\d+:1:14: missing ',' in argument list$`, "fmt.Println(1"},
		{"var p *int\nfmt.Println(*p)", interp.NamePanic, `^runtime error: invalid memory address or nil pointer dereference$`, ":2:1 in <snippet>"},
		{"z := 0\nfmt.Println(10 / z)", interp.NamePanic, `^runtime error: integer divide by zero$`, ":2:1 in <snippet>"},
		{"s := []int{1, 2}\ni := 7\ns[i] = 0", interp.NamePanic, `^runtime error: index out of range$`, ":3:1 in <snippet>"},
		{"n := 1\nm := n + \"x\"", interp.NameCompile, `^cell\d+:2:6: invalid operation: mismatched types int and untyped string$`, "m := n + \"x\""},
		{"fmt.Println(nowhere)", interp.NameCompile, `^cell\d+:1:13: undefined: nowhere$`, "fmt.Println(nowhere)"},
	} {
		ec := executeError(t, f, c.code)
		if ec.EName != c.ename || !regexp.MustCompile(c.evalue).MatchString(ec.EValue) {
			t.Errorf("%q: got %s: %q, want %s: %s", c.code, ec.EName, ec.EValue, c.ename, c.evalue)
		}
		tb := strings.Join(ec.Traceback, "\n")
		if !strings.Contains(tb, c.traceback) {
			t.Errorf("%q: traceback lacks %q:\n%s", c.code, c.traceback, tb)
		}
		for _, internal := range []string{"goroutine ", "yaegi", "reflect", ".go:", "snippet.go"} {
			if strings.Contains(ec.EValue+"\n"+tb, internal) {
				t.Errorf("%q: internals (%q) reach the client:\n%s\n%s", c.code, internal, ec.EValue, tb)
			}
		}
	}
	executeOK(t, f, "fmt.Println(\"still serving\")")
}

// TestGoroutinePanicDoesNotKillEngine: a panic in a goroutine of a
// snippet is the request's error while it runs, and published as the
// engine's stderr (and logged) when it comes later; the engine serves on.
func TestGoroutinePanicDoesNotKillEngine(t *testing.T) {
	f, _, logs := start(t, fakeOptions{}, nil)
	ec := executeError(t, f, "done := make(chan int)\ngo func() { panic(\"boom\") }()\n<-done")
	if ec.EName != interp.NamePanic || !strings.HasPrefix(ec.EValue, "boom (in a goroutine started at cell") {
		t.Errorf("got %s: %q", ec.EName, ec.EValue)
	}
	executeOK(t, f, "release := make(chan int)\ngo func() {\n\t<-release\n\tpanic(\"late boom\")\n}()")
	executeOK(t, f, "close(release)")
	f.iopub.wait(t, waitTimeout, "the late panic on stderr", func(m *wire.Message) bool {
		var sc streamContent
		return m.Header.MsgType == "stream" && json.Unmarshal(m.Content, &sc) == nil &&
			sc.Name == "stderr" && strings.Contains(sc.Text, "panic: late boom (in a goroutine started at cell")
	})
	if !logs.contains("panicked after its request ended") {
		t.Errorf("the late panic was not logged")
	}
	reply, _ := execute(t, f, "6 * 7", false)
	if content(t, reply)["status"] != "ok" {
		t.Errorf("after the panics: %s", reply.Content)
	}
}

// TestInterruptFreesEngineForNextRequest: a SIGINT signal_request stops
// busy loops of every shape, and the next request runs at once (the
// known issue of loops that went on in the interpreter).
func TestInterruptFreesEngineForNextRequest(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	executeOK(t, f, "func step(k int) int { return k + 1 }")
	for _, loop := range []string{
		"for {}",
		"for spin := 0; ; spin++ {}",
		"for { for j := 0; j < 100; j++ {} }",
		"for x := 0; ; x = step(x) {}",
	} {
		for round := 0; round < 3; round++ {
			h := startLong(t, f, loop)
			s := f.send(f.control, "signal_request", map[string]any{"sig": "SIGINT"}, nil, nil)
			f.controlIn.wait(t, waitTimeout, "signal_reply", replyTo(s.MsgID))
			r := f.muxIn.wait(t, waitTimeout, "interrupted reply", replyTo(h.MsgID))
			var ec protocol.ErrorContent
			json.Unmarshal(r.Content, &ec)
			if ec.EName != interp.NameInterrupted {
				t.Fatalf("%q: reply %s", loop, r.Content)
			}
			f.until(h.MsgID)
			reply, _ := execute(t, f, "40 + 2", false)
			if content(t, reply)["status"] != "ok" {
				t.Fatalf("%q round %d: the next request got %s", loop, round, reply.Content)
			}
		}
	}
}
