package sched

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseDependency(t *testing.T) {
	def := func(ids ...string) Dependency { return NewDependency(ids...) }
	for _, tc := range []struct {
		in      string
		want    Dependency
		wantErr bool
	}{
		{``, def(), false},
		{`null`, def(), false},
		{`[]`, def(), false},
		{`""`, def(), false},
		{`"a"`, def("a"), false},
		{`["a","b","a"]`, def("a", "b"), false},
		{`{"dependencies":["a"]}`, def("a"), false},
		{`{"dependencies":["a"],"all":false,"success":false,"failure":true}`,
			Dependency{IDs: []string{"a"}, All: false, Success: false, Failure: true}, false},
		{`{"dependencies":["a"],"all":true,"success":true,"failure":true}`,
			Dependency{IDs: []string{"a"}, All: true, Success: true, Failure: true}, false},
		{`{"dependencies":[],"success":false,"failure":false}`, Dependency{}, true},
		{`{"dependencies":null}`, def(), false},
		{`[1]`, Dependency{}, true},
		{`42`, Dependency{}, true},
		{`{"dependencies":42}`, Dependency{}, true},
		{`{bad json`, Dependency{}, true},
	} {
		got, err := ParseDependency(json.RawMessage(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseDependency(%s) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if len(got.IDs) == 0 {
			got.IDs = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseDependency(%s) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestDependencyStatus is ipyparallel's table of dependency outcomes
// (met, unmet, impossible for all/any × success/failure), over two ids in every
// combination of outcomes that matters.
func TestDependencyStatus(t *testing.T) {
	ok := outcome{engine: "e1", ok: true}
	bad := outcome{engine: "e1"}
	type flags struct{ all, success, failure bool }
	for _, tc := range []struct {
		name        string
		f           flags
		done        map[string]outcome
		met, imposs bool
	}{
		{"all/success: none finished", flags{true, true, false}, nil, false, false},
		{"all/success: one succeeded", flags{true, true, false}, map[string]outcome{"a": ok}, false, false},
		{"all/success: both succeeded", flags{true, true, false}, map[string]outcome{"a": ok, "b": ok}, true, false},
		{"all/success: one failed", flags{true, true, false}, map[string]outcome{"a": bad}, false, true},

		{"all/failure: both failed", flags{true, false, true}, map[string]outcome{"a": bad, "b": bad}, true, false},
		{"all/failure: one failed", flags{true, false, true}, map[string]outcome{"a": bad}, false, false},
		{"all/failure: one succeeded", flags{true, false, true}, map[string]outcome{"a": ok}, false, true},

		{"all/both: mixed finished", flags{true, true, true}, map[string]outcome{"a": ok, "b": bad}, true, false},
		{"all/both: one finished", flags{true, true, true}, map[string]outcome{"a": bad}, false, false},

		{"any/success: one succeeded", flags{false, true, false}, map[string]outcome{"b": ok}, true, false},
		{"any/success: one failed", flags{false, true, false}, map[string]outcome{"a": bad}, false, false},
		{"any/success: both failed", flags{false, true, false}, map[string]outcome{"a": bad, "b": bad}, false, true},
		{"any/failure: one failed", flags{false, false, true}, map[string]outcome{"a": bad}, true, false},
		{"any/failure: both succeeded", flags{false, false, true}, map[string]outcome{"a": ok, "b": ok}, false, true},
		{"any/both: one finished", flags{false, true, true}, map[string]outcome{"b": bad}, true, false},
		{"any/both: none finished", flags{false, true, true}, nil, false, false},
	} {
		d := Dependency{IDs: []string{"a", "b"}, All: tc.f.all, Success: tc.f.success, Failure: tc.f.failure}
		met, imposs := d.status(tc.done)
		if met != tc.met || imposs != tc.imposs {
			t.Errorf("%s: met=%v impossible=%v, want %v %v", tc.name, met, imposs, tc.met, tc.imposs)
		}
	}
	if met, imposs := (Dependency{}).status(nil); !met || imposs {
		t.Errorf("empty dependency: met=%v impossible=%v, want met", met, imposs)
	}
}

// TestDependencyLocation covers the follow helpers: where a location
// dependency is met, where it could still be, and whether a brand-new
// engine could ever satisfy it.
func TestDependencyLocation(t *testing.T) {
	done := map[string]outcome{
		"a1": {engine: "e1", ok: true},
		"a2": {engine: "e1", ok: true},
		"b1": {engine: "e2", ok: true},
		"f0": {engine: "", ok: false}, // failed by the scheduler
	}
	all := NewDependency
	anyOf := func(ids ...string) Dependency { d := NewDependency(ids...); d.All = false; return d }
	withFailures := func(d Dependency) Dependency { d.Failure = true; return d }
	for _, tc := range []struct {
		name                  string
		d                     Dependency
		metE1, possE1, possE2 bool
		possNew               bool
	}{
		{"all on e1", all("a1", "a2"), true, true, false, false},
		{"all split over e1 and e2", all("a1", "b1"), false, false, false, false},
		{"all, one pending", all("a1", "p"), false, true, false, false},
		{"all pending", all("p", "q"), false, true, true, true},
		{"any, one on e1 one on e2", anyOf("a1", "b1"), true, true, true, false},
		{"any, one pending", anyOf("b1", "p"), false, true, true, true},
		{"all incl. scheduler failure", withFailures(all("a1", "f0")), false, false, false, false},
		{"empty", Dependency{}, true, true, true, true},
	} {
		if got := tc.d.metOn(done, "e1"); got != tc.metE1 {
			t.Errorf("%s: metOn(e1) = %v", tc.name, got)
		}
		if got := tc.d.possibleOn(done, "e1"); got != tc.possE1 {
			t.Errorf("%s: possibleOn(e1) = %v", tc.name, got)
		}
		if got := tc.d.possibleOn(done, "e2"); got != tc.possE2 {
			t.Errorf("%s: possibleOn(e2) = %v", tc.name, got)
		}
		if got := tc.d.possibleOnNewEngine(done); got != tc.possNew {
			t.Errorf("%s: possibleOnNewEngine = %v", tc.name, got)
		}
	}
}
