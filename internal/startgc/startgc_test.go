package startgc

import "testing"

func TestDecide(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	cases := []struct {
		args       []string
		vars       map[string]string
		off, limit bool
	}{
		{[]string{"ipcluster", "engine", "--file", "x"}, nil, true, true},
		{[]string{"ipcluster", "engine"}, map[string]string{"GOMEMLIMIT": "1GiB"}, true, false},
		{[]string{"ipcluster", "engine"}, map[string]string{"GOGC": "200"}, false, false},
		{[]string{"ipcluster", "engine"}, map[string]string{"GOGC": ""}, false, false},
		{[]string{"ipcluster", "controller"}, nil, false, false},
		{[]string{"ipcluster", "start", "engine"}, nil, false, false},
		{[]string{"ipcluster"}, nil, false, false},
		{nil, nil, false, false},
	}
	for _, c := range cases {
		off, limit := decide(c.args, env(c.vars))
		if off != c.off || limit != c.limit {
			t.Errorf("%q %v: off %v limit %v, want %v %v", c.args, c.vars, off, limit, c.off, c.limit)
		}
	}
}

// The test binary is not an engine: nothing was changed, and Restore
// changes nothing either.
func TestNotAnEngine(t *testing.T) {
	if Off() {
		t.Fatal("the collector is off in a test binary")
	}
	Restore()
	if Off() || restored.Load() {
		t.Error("Restore acted in a process init left alone")
	}
}
