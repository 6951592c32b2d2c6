package conformance

// Values between the Python client and our Go engines (issue 9 item 5,
// the values helper's pickle subset). Expected behaviour; these rows fail
// until the pickle subset lands.

func init() {
	for _, row := range []Row{
		{Area: "values", Behaviour: "push/pull plain values (int float str bytes list tuple dict None) to Go engines", Py: "go_push_pull_plain", Check: func(r *R, got PyResult) {
			var v []struct {
				Same bool   `json:"same"`
				Got  string `json:"got"`
			}
			got.Into(r, &v)
			if len(v) != 2 {
				r.Fatalf("%d engines answered", len(v))
			}
			for _, e := range v {
				if !e.Same {
					r.Errorf("pulled %s", e.Got)
				}
			}
		}},
		{Area: "values", Behaviour: "push/pull a numpy float64 array to Go engines", Py: "go_push_pull_numpy", Check: func(r *R, got PyResult) { got.Is(r, []bool{true, true}) }},
		{Area: "values", Behaviour: "push of an unsupported type: RemoteError naming it", Py: "go_push_unsupported", Check: func(r *R, got PyResult) {
			var v []any
			got.Into(r, &v)
			if len(v) != 2 || v[1] != true {
				r.Errorf("got %v, want a RemoteError whose evalue names datetime", v)
			}
		}},
		{Area: "values", Behaviour: "apply(ipp.Reference(name)) of a Go function defined on the engines", Py: "go_apply_reference", Check: func(r *R, got PyResult) { got.Is(r, []int{42, 42}) }},
	} {
		for _, fx := range []string{fixPyGo, fixOursGo} {
			row.Fixture = fx
			addRow(row)
		}
	}
}
