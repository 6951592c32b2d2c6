package ipp

import (
	"encoding/json"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestPythonClientOnGoCluster is the interop smoke: Debian's Python
// ipyparallel client reads our controller's ipcontroller-client.json, sees
// our Go engines in rc.ids, and runs Go on all of them.
func TestPythonClientOnGoCluster(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	gc, _ := startGoCluster(t, 2)
	path := t.TempDir() + "/ipcontroller-client.json"
	if err := wire.WritePrivateJSON(path, gc.ctrl.ClientInfo()); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
import ipyparallel as ipp
rc = ipp.Client(sys.argv[1], timeout=20)
rc.wait_for_engines(2, timeout=60)
rc[:].execute("x := 6 * 7", block=True)
ar = rc[:].execute("fmt.Println(x)", block=True)
try:
    rc[0].apply_sync(lambda: 1)
    err = None
except ipp.RemoteError as e:
    err = e.ename
print(json.dumps({"ids": rc.ids, "stdout": ar.stdout, "apply": err}))
`
	cmd := exec.Command(py, "-c", script, path)
	cmd.Env = append(cmd.Environ(), "IPYTHONDIR="+t.TempDir())
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("python client hung:\n%s", out)
	}
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	var got struct {
		IDs    []int    `json:"ids"`
		Stdout []string `json:"stdout"`
		Apply  string   `json:"apply"`
	}
	if err := json.Unmarshal(lastLine(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !reflect.DeepEqual(got.IDs, []int{0, 1}) || !reflect.DeepEqual(got.Stdout, []string{"42\n", "42\n"}) || got.Apply != "NotImplementedError" {
		t.Fatalf("python client saw %+v", got)
	}
}

func lastLine(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return b[i+1:]
		}
	}
	return b
}

// TestClientLeavesMidTask: a client that disconnects while its task runs
// loses nothing for anyone else; the engine finishes, the controller
// drops the orphaned reply, and a new client uses the same engines.
func TestClientLeavesMidTask(t *testing.T) {
	gc, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.LoadBalanced().Apply(ctx, "sleep", 300); err != nil {
		t.Fatal(err)
	}
	if _, err := c.View(c.IDs()[0]).Apply(ctx, "sleep", 300); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := ConnectInfo(ctx, gc.ctrl.ClientInfo(), testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ar, err := c2.All().Apply(ctx, "square", 9)
	if err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[int](ctx, ar)
	if err != nil || !reflect.DeepEqual(got, []int{81, 81}) {
		t.Fatalf("new client after a disconnect: %v %v", got, err)
	}
	// Both orphaned tasks completed on the controller's books.
	testutil.Eventually(t, 10*time.Second, func() bool {
		qs, err := c2.QueueStatus(ctx)
		if err != nil {
			return false
		}
		done := 0
		for _, e := range qs.Engines {
			done += e.Completed
			if e.Queue != 0 || e.Tasks != 0 {
				return false
			}
		}
		return done >= 4 && qs.Unassigned == 0
	}, "the orphaned tasks completed")
}
