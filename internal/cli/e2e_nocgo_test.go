package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestNoCgoClient runs a CGO_ENABLED=0 ipcluster, the binary a laptop
// without libzmq gets, against a cluster started by the normal cgo build:
// its client commands must interoperate over the pure-Go transport, and
// asking it for an engine must say that the build lacks libzmq instead of
// failing on a transport detail.
func TestNoCgoClient(t *testing.T) {
	e := newE2E(t)
	pure := filepath.Join(t.TempDir(), "ipcluster-nocgo")
	build := exec.Command("go", "build", "-o", pure, "../../cmd/ipcluster")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	e.must(0, "start", "-n", "2", "--daemonize", "--wait-timeout", "60")
	e.pids = recordedPIDs(t, wire.ClusterFile(e.profile, ""))
	defer e.must(0, "stop")

	cgoBin := e.bin
	e.bin = pure
	defer func() { e.bin = cgoBin }()

	out, _ := e.must(0, "list")
	if rows := strings.Split(strings.TrimSpace(out), "\n"); len(rows) != 2 || !strings.Contains(rows[1], "2/2") {
		t.Errorf("pure-Go list:\n%s", out)
	}
	out, _ = e.must(0, "exec", "fmt.Println(6*7)")
	if byEngine(out) != "[stdout:0] 42\n[stdout:1] 42\n" {
		t.Errorf("pure-Go exec output:\n%s", out)
	}
	if out, _ := e.must(0, "--version"); !strings.Contains(out, "pure-Go transport only") {
		t.Errorf("pure-Go --version does not say what the build lacks: %q", out)
	}
	_, errOut, code := e.run("engine", "--timeout", "1")
	if code == 0 || !strings.Contains(errOut, "built without it") || !strings.Contains(errOut, "CGO_ENABLED=0") {
		t.Errorf("engine from the pure-Go build: exit %d\n%s", code, errOut)
	}
}
