package conformance

import (
	"errors"
	"time"

	"github.com/ipp-hpc/ipp"
)

// Our Go client steering Python engines (Python code) through our
// controller.

func init() {
	addRow(Row{Area: "Go client", Behaviour: "execute Python code: stdout", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.All().Execute(ctx, "print('go', 6 * 7)")
		if err != nil {
			r.Fatal(err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			r.Fatal(err)
		}
		list, _ := v.([]any)
		if len(list) != 2 {
			r.Fatalf("%d replies, want 2: %#v", len(list), v)
		}
		for _, x := range list {
			er, ok := x.(*ipp.ExecuteReply)
			if !ok || er.Stdout != "go 42\n" {
				r.Errorf("reply %#v, want stdout %q", x, "go 42\n")
			}
		}
	}})
	addRow(Row{Area: "Go client", Behaviour: "execute Python code: execute_result", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.View(c.IDs()[0]).Execute(ctx, "40 + 2", ipp.Silent(false))
		if err != nil {
			r.Fatal(err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			r.Fatal(err)
		}
		er, ok := v.(*ipp.ExecuteReply)
		if !ok || er.Text() != "42" {
			r.Errorf("reply %#v, want execute_result 42", v)
		}
	}})
	addRow(Row{Area: "Go client", Behaviour: "Python exception: RemoteError with ename, evalue, traceback", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		id := c.IDs()[0]
		ar, err := c.View(id).Execute(ctx, "1/0")
		if err != nil {
			r.Fatal(err)
		}
		_, err = ar.Get(ctx)
		var re *ipp.RemoteError
		if !errors.As(err, &re) {
			r.Fatalf("got %T %v, want *ipp.RemoteError", err, err)
		}
		if re.EName != "ZeroDivisionError" || re.EValue != "division by zero" || re.Engine != id || len(re.Traceback) == 0 {
			r.Errorf("RemoteError %+v", re)
		}
	}})
	addRow(Row{Area: "Go client", Behaviour: "exception on every engine: CompositeError", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.All().Execute(ctx, "raise ValueError('bad')")
		if err != nil {
			r.Fatal(err)
		}
		_, err = ar.Get(ctx)
		var ce *ipp.CompositeError
		if !errors.As(err, &ce) {
			r.Fatalf("got %T %v, want *ipp.CompositeError", err, err)
		}
		if len(ce.Errors) != 2 || ce.Errors[0].EName != "ValueError" || ce.Errors[1].EName != "ValueError" {
			r.Errorf("errors %+v", ce.Errors)
		}
	}})
	addRow(Row{Area: "Go client", Behaviour: "load-balanced execute of Python code", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.LoadBalanced().Execute(ctx, "print('lb')")
		if err != nil {
			r.Fatal(err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			r.Fatal(err)
		}
		if er, ok := v.(*ipp.ExecuteReply); !ok || er.Stdout != "lb\n" {
			r.Errorf("reply %#v, want stdout lb", v)
		}
	}})
	addRow(Row{Area: "Go client", Behaviour: "broadcast execute of Python code", Fixture: fixOurs, Check: func(r *R, _ PyResult) {
		c := r.Fixture().GoClient(r)
		ctx := r.Context(30 * time.Second)
		ar, err := c.Broadcast().Execute(ctx, "print('bc')")
		if err != nil {
			r.Fatal(err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			r.Fatal(err)
		}
		list, _ := v.([]any)
		if len(list) != 2 {
			r.Fatalf("%d replies, want 2: %#v", len(list), v)
		}
		for _, x := range list {
			if er, ok := x.(*ipp.ExecuteReply); !ok || er.Stdout != "bc\n" {
				r.Errorf("reply %#v, want stdout bc", x)
			}
		}
	}})
}
