package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ipclusterPackage is what IPCluster builds.
const ipclusterPackage = "github.com/ipp-hpc/ipp/cmd/ipcluster"

var (
	buildMu    sync.Mutex
	builtPaths = map[string]string{}
	buildDir   string
)

// IPCluster builds this project's ipcluster once per test process for
// the given build tags (none: without MPI; "ompi" or "mpich": linked with
// that MPI) and returns its path. Every test of the process shares one
// build; the binaries stay in a temporary directory (go's build cache
// makes the next process's build cheap).
func IPCluster(t testing.TB, tags ...string) string {
	t.Helper()
	key := strings.Join(tags, ",")
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtPaths[key]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "ipp-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	name := "ipcluster"
	if key != "" {
		name += "-" + strings.ReplaceAll(key, ",", "-")
	}
	out := filepath.Join(buildDir, name)
	args := []string{"build", "-o", out}
	if key != "" {
		args = append(args, "-tags", key)
	}
	args = append(args, ipclusterPackage)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatal(errors.New("go " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(b)))
	}
	builtPaths[key] = out
	return out
}

// MPITag is the build tag of an installed MPI ("ompi" first, then
// "mpich"), or "" when neither pkg-config module is there.
func MPITag() string {
	for _, tag := range []string{"ompi", "mpich"} {
		if exec.Command("pkg-config", "--exists", tag).Run() == nil {
			return tag
		}
	}
	return ""
}
