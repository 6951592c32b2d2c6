package interp

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestGoStyleMessages: what a client sees of common mistakes reads like
// Go's own messages, with the snippet position, and nothing of the
// interpreter's internals.
func TestGoStyleMessages(t *testing.T) {
	n, _, _ := newNS(t)
	for _, c := range []struct {
		name, code string
		ename      string
		message    string // exact Message, or its prefix when it ends in "..."
		where      string // must appear in the traceback
		src        string // source line the traceback must quote
		runtimeErr bool   // the value is a runtime.Error
	}{
		{"unfinished call", "fmt.Println(1", NameCompile, "cellN:1:14: missing ',' in argument list", "", "fmt.Println(1", false},
		{"unfinished call, later line", "x := 1\nfmt.Println(x,\n  2", NameCompile, "cellN:3:4: missing ',' in argument list", "", "  2", false},
		{"unclosed block", "if true {", NameCompile, "cellN:2:2: expected '}', found 'EOF'", "", "", false},
		{"nil pointer", "var p *int\nfmt.Println(*p)", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "cellN:2:1 in <snippet>", "fmt.Println(*p)", true},
		{"nil pointer store", "var p *int\n*p = 1", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "cellN:2:1 in <snippet>", "*p = 1", true},
		{"nil struct pointer", "type node struct{ v int }\nvar q *node\nq.v = 3", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "cellN:3:1 in <snippet>", "q.v = 3", true},
		{"nil pointer in a function", "func deref(p *int) int {\n\treturn *p\n}\nderef(nil)", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "in main.deref", "deref(nil)", true},
		{"nil func", "var fn func()\nfn()", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "cellN:2:1 in <snippet>", "fn()", true},
		{"nil interface", "var s fmt.Stringer\ns.String()", NamePanic, "runtime error: invalid memory address or nil pointer dereference", "cellN:2:1", "s.String()", true},
		{"division by zero", "z := 0\nfmt.Println(1 / z)", NamePanic, "runtime error: integer divide by zero", "cellN:2:1 in <snippet>", "fmt.Println(1 / z)", true},
		{"index out of range", "s := []int{1}\ni := 5\nfmt.Println(s[i])", NamePanic, "runtime error: index out of range", "cellN:3:1 in <snippet>", "fmt.Println(s[i])", true},
		{"index store out of range", "s := []int{1}\ni := 5\ns[i] = 2", NamePanic, "runtime error: index out of range", "cellN:3:1 in <snippet>", "s[i] = 2", true},
		{"slice bounds", "s := []int{1}\nh := 5\nfmt.Println(s[1:h])", NamePanic, "runtime error: slice bounds out of range", "cellN:3:1", "fmt.Println(s[1:h])", true},
		{"type assertion", "var e any = 1\n_ = e.(string)", NamePanic, "interface conversion: interface {} is int, not string", "cellN:2:5", "_ = e.(string)", true},
		{"nil map", "var m map[string]int\nm[\"a\"] = 1", NamePanic, "assignment to entry in nil map", "cellN:2:1 in <snippet>", "m[\"a\"] = 1", true},
		{"type error", "a := 1\nb := a + \"x\"", NameCompile, "cellN:2:6: invalid operation: mismatched types int and untyped string", "", "b := a + \"x\"", false},
		{"assignment type error", "var u int = \"s\"", NameCompile, "cellN:1:13: cannot convert \"s\" to int", "", "var u int = \"s\"", false},
		{"undefined function", "undefinedFn(3)", NameCompile, "cellN:1:1: undefined: undefinedFn", "", "undefinedFn(3)", false},
		{"undefined name", "fmt.Println(nowhere)", NameCompile, "cellN:1:13: undefined: nowhere", "", "fmt.Println(nowhere)", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := execErr(t, n, c.code)
			cell := "cell" + itoa(n.execs)
			want := strings.ReplaceAll(c.message, "cellN", cell)
			if e.Name != c.ename || e.Message != want {
				t.Errorf("got %s: %q\nwant %s: %q", e.Name, e.Message, c.ename, want)
			}
			tb := strings.Join(e.Traceback, "\n")
			if c.where != "" && !strings.Contains(tb, strings.ReplaceAll(c.where, "cellN", cell)) {
				t.Errorf("traceback lacks %q:\n%s", c.where, tb)
			}
			if c.src != "" && !strings.Contains(tb, c.src) {
				t.Errorf("traceback does not quote %q:\n%s", c.src, tb)
			}
			for _, internal := range []string{"reflect", "yaegi", "snippet.go", "goroutine", ".go:"} {
				if strings.Contains(e.Message+"\n"+tb, internal) {
					t.Errorf("interpreter internals (%q) show:\n%s\n%s", internal, e.Message, tb)
				}
			}
			var re runtime.Error
			if got := errors.As(e, &re); got != c.runtimeErr {
				t.Errorf("errors.As(runtime.Error) = %v, want %v", got, c.runtimeErr)
			}
		})
	}
	// None of it hurt the namespace.
	if got := value(t, n, "6 * 7"); got != 42 {
		t.Errorf("after the errors: %v", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
