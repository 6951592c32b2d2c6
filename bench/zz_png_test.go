package main

import "testing"

func TestZZPNG(t *testing.T) {
	o := options{taskSizes: []int{1, 2, 4, 8, 32}, dataMB: []int{1, 10, 100, 1000}, startup: []int{2, 8, 32, 128}, oursStartup: []int{1000}}
	r := &Run{Opts: o, Ours: results{}, Peers: map[string]results{"ipyparallel": {}, "dask": {}}, Floor: results{}}
	for i, n := range o.taskSizes {
		r.Ours[curves()[0].Key(n)] = 3000 + float64(i)*500
		r.Peers["ipyparallel"][curves()[0].Key(n)] = 300 + float64(i)*10
		r.Peers["dask"][curves()[0].Key(n)] = 500 + float64(i)*10
	}
	for _, mb := range o.dataMB {
		r.Ours[curves()[1].Key(mb)] = 0.03 * float64(mb)
		r.Peers["ipyparallel"][curves()[1].Key(mb)] = 0.012 * float64(mb)
		r.Floor[curves()[1].Extra[0].Key(mb)] = 0.0007 * float64(mb)
		r.Floor[curves()[1].Extra[1].Key(mb)] = 0.007 * float64(mb)
	}
	c := curves()[1]
	c.File = "push.png"
	if _, err := drawCurve("/tmp/rep", c, r); err != nil {
		t.Fatal(err)
	}
	c = curves()[0]
	c.File = "tasks.png"
	if _, err := drawCurve("/tmp/rep", c, r); err != nil {
		t.Fatal(err)
	}
}
