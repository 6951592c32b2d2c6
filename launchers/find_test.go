package launchers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestFindIPClusterRefusesPython puts a Python-style ipcluster script first
// in PATH, as Debian's python3-ipyparallel does: the Cluster API must not
// start it, and must say why and what to do.
func TestFindIPClusterRefusesPython(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "ipcluster")
	if err := os.WriteFile(py, []byte("#!/usr/bin/python3\nfrom ipyparallel.cluster.app import main\nmain()\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv(protocol.EnvIPCluster, "")
	_, err := FindIPCluster()
	if err == nil || !strings.Contains(err.Error(), "not this project's") || !strings.Contains(err.Error(), protocol.EnvIPCluster) {
		t.Fatalf("python ipcluster in PATH: %v", err)
	}
	if _, err := DefaultCommand(EngineRole); err == nil {
		t.Fatal("DefaultCommand accepted Python's ipcluster")
	}
	// Another Go program is not ours either (this test binary).
	self, _ := os.Executable()
	if err := CheckIPCluster(self); err == nil || !strings.Contains(err.Error(), "not "+ipclusterPackage) {
		t.Errorf("test binary accepted as ipcluster: %v", err)
	}
	t.Setenv(protocol.EnvIPCluster, py)
	if _, err := FindIPCluster(); err == nil || !strings.Contains(err.Error(), "$"+protocol.EnvIPCluster) {
		t.Errorf("$%s pointing at Python's: %v", protocol.EnvIPCluster, err)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv(protocol.EnvIPCluster, "")
	if _, err := FindIPCluster(); err == nil || !strings.Contains(err.Error(), "not in PATH") {
		t.Errorf("no ipcluster at all: %v", err)
	}
}

// TestFindIPClusterAcceptsOurs builds the real ipcluster and finds it
// through $IPP_IPCLUSTER and through PATH.
func TestFindIPClusterAcceptsOurs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ipcluster")
	}
	bin := testutil.IPCluster(t)
	t.Setenv(protocol.EnvIPCluster, bin)
	if p, err := FindIPCluster(); err != nil || p != bin {
		t.Fatalf("$%s: %q %v", protocol.EnvIPCluster, p, err)
	}
	t.Setenv(protocol.EnvIPCluster, "")
	t.Setenv("PATH", filepath.Dir(bin))
	argv, err := DefaultCommand(ControllerRole)
	if err != nil || len(argv) != 2 || argv[0] != bin || argv[1] != ControllerRole {
		t.Fatalf("PATH: %q %v", argv, err)
	}
}
