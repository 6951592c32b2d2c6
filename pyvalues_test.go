package ipp

import (
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestPythonValuesOnGoEngines: the real Python client pushes and pulls
// plain values and numpy arrays to and from Go engines through our
// controller, applies registered and interpreted Go functions by name
// (ipyparallel.Reference), gets RemoteErrors naming unsupported types,
// and reads values the Go client pushed; the Go client then reads values
// Python pushed.
func TestPythonValuesOnGoEngines(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq", "numpy")
	gc, c := startGoCluster(t, 2)
	ctx := ctxT(t, 2*time.Minute)
	ar, err := c.All().Push(ctx, map[string]any{
		"gof":    []float64{1, 2, 3},
		"gomat":  mat.NewDense(2, 2, []float64{1, 2, 3, 4}),
		"gomap":  map[string]any{"k": 1, "s": []string{"x", "y"}},
		"goints": []int{1, 2, 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/ipcontroller-client.json"
	if err := wire.WritePrivateJSON(path, gc.ctrl.ClientInfo()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, py, "testdata/python_values.py", path)
	cmd.Env = append(cmd.Environ(), "IPYTHONDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(lastLine(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got) < 40 {
		t.Errorf("only %d checks ran:\n%s", len(got), out)
	}
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if v := got[name]; v != true {
			t.Errorf("%-28s FAIL: %v", name, v)
		} else {
			t.Logf("%-28s ok", name)
		}
	}

	// And the Go client reads what Python pushed.
	ar, err = c.All().Pull(ctx, "v_int")
	if err != nil {
		t.Fatal(err)
	}
	ints, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(ints, []int{5, 5}) {
		t.Errorf("Go pull of Python's int: %v, %v", ints, err)
	}
	ar, err = c.All().Pull(ctx, "v_f64")
	if err != nil {
		t.Fatal(err)
	}
	arrs, err := GetAll[[]float64](ctx, ar)
	if err != nil || len(arrs) != 2 || !slices.Equal(arrs[0], []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("Go pull of Python's numpy array: %v, %v", arrs, err)
	}
}
