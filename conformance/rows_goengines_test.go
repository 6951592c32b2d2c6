package conformance

import (
	"strings"
	"time"

	"github.com/ipp-hpc/ipp"
)

// Our Go engines serving the real Python client, registered with the real
// Python ipcontroller (issue 9 item 4) and with ours.

func init() {
	is := func(want any) func(r *R, got PyResult) { return func(r *R, got PyResult) { got.Is(r, want) } }
	remoteErr := func(r *R, got PyResult) {
		var v []string
		got.Into(r, &v)
		if len(v) != 2 || v[0] != "RemoteError" || v[1] == "" {
			r.Errorf("got %v, want a RemoteError with an ename", v)
		}
	}
	for _, row := range []Row{
		{Area: "Go engines", Behaviour: "register; the Python client sees them", Py: "go_ids", Check: is(2)},
		{Area: "Go engines", Behaviour: "execute Go code: stdout", Py: "go_execute_stdout", Check: is([]string{"42\n", "42\n"})},
		{Area: "Go engines", Behaviour: "execute(silent=False): execute_result", Py: "go_execute_result", Check: is("42")},
		{Area: "Go engines", Behaviour: "execute error: CompositeError with the interpreter's ename", Py: "go_execute_error", Check: is([]string{"CompileError", "CompileError"})},
		{Area: "Go engines", Behaviour: "apply of a Python lambda: RemoteError", Py: "go_apply_lambda", Check: remoteErr},
		{Area: "Go engines", Behaviour: "load-balanced apply of a Python lambda: RemoteError", Py: "go_lb_apply_error", Check: func(r *R, got PyResult) {
			var v string
			got.Into(r, &v)
			if v == "" || v == "no error" {
				r.Errorf("got %q, want a RemoteError", v)
			}
		}},
		{Area: "Go engines", Behaviour: "broadcast_view execute: stdout", Py: "go_broadcast_execute", Check: is([]string{"via broadcast\n", "via broadcast\n"})},
		{Area: "Go engines", Behaviour: "clear the namespace", Py: "go_clear", Check: is("cleared")},
		{Area: "Go engines", Behaviour: "queue_status", Py: "go_queue_status", Check: is([]string{"0", "1", "unassigned"})},
	} {
		for _, fx := range []string{fixPyGo, fixOursGo} {
			row.Fixture = fx
			addRow(row)
		}
	}
	addRow(Row{Area: "Go engines", Behaviour: "Go client execute through the Python ipcontroller", Fixture: fixPyGo, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.All().Execute(ctx, `fmt.Println("go", 1+1)`)
		if err != nil {
			r.Fatal(err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			r.Fatal(err)
		}
		list, _ := v.([]any)
		if len(list) != 2 {
			r.Fatalf("%d replies: %#v", len(list), v)
		}
		for _, x := range list {
			if er, ok := x.(*ipp.ExecuteReply); !ok || strings.TrimSpace(er.Stdout) != "go 2" {
				r.Errorf("reply %#v, want stdout \"go 2\"", x)
			}
		}
	}})
}
