//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// rankEnv makes the test binary act as one MPI rank (rankMain) instead of
// running the tests: the parent tests start it under mpiexec, or alone as
// a singleton.
const rankEnv = "IPP_MPI_TEST_RANK"

func TestMain(m *testing.M) {
	if os.Getenv(rankEnv) == "1" {
		os.Exit(rankMain())
	}
	os.Exit(m.Run())
}

// launcher returns the mpiexec matching the library this binary links,
// the rank count to use, and the extra environment it needs. MPICH stays
// at 2 ranks: oversubscribed, its ranks busy-poll and a test crawls.
func launcher() (cmd string, n int, env []string) {
	if flavor == "openmpi" {
		return "mpiexec.openmpi", 4, ompiEnv
	}
	return "mpiexec.mpich", 2, nil
}

// ompiEnv lets Open MPI run as root (CI containers) and put more ranks
// than cores on a small machine.
var ompiEnv = []string{
	"OMPI_ALLOW_RUN_AS_ROOT=1",
	"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
	"OMPI_MCA_rmaps_base_oversubscribe=1",
}

// runRanks runs argv with the rank environment, killing the whole process
// group if it outlives the deadline (a rank stuck in a collective would
// otherwise hang the test), and returns the combined output.
func runRanks(t *testing.T, env []string, argv ...string) string {
	t.Helper()
	// Only a hang should hit this: 4 Open MPI ranks on 2 CPUs beside two
	// busy processes (CI's loaded run) took 77-118 s for what takes
	// 2.4 s on a quiet machine (2026-12-07), and 2 minutes were not enough.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), rankEnv+"=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v timed out; output:\n%s", argv, out.String())
	}
	if err != nil {
		t.Fatalf("%v: %v; output:\n%s", argv, err, out.String())
	}
	return out.String()
}

var passLine = regexp.MustCompile(`(?m)^PASS rank (\d+)/(\d+) `)

// checkPasses fails unless every one of n ranks printed its PASS line.
func checkPasses(t *testing.T, out string, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range passLine.FindAllStringSubmatch(out, -1) {
		if m[2] != fmt.Sprint(n) {
			t.Errorf("rank %s reports size %s, want %d (binary under the wrong launcher?)", m[1], m[2], n)
		}
		seen[m[1]] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d ranks passed; output:\n%s", len(seen), n, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BENCH") {
			t.Log(l)
		}
	}
}

// TestCollectivesUnderMpiexec runs rankMain on several ranks under the
// launcher of the linked library.
func TestCollectivesUnderMpiexec(t *testing.T) {
	name, n, env := launcher()
	path, err := exec.LookPath(name)
	if err != nil {
		testutil.Missing(t, "%s not found (apt-get install %s): %v", name, map[string]string{"openmpi": "openmpi-bin", "mpich": "mpich"}[flavor], err)
	}
	out := runRanks(t, env, path, "-n", fmt.Sprint(n), os.Args[0])
	checkPasses(t, out, n)
}

// TestFunneled runs rankMain with $IPP_MPI_THREAD_LEVEL=funneled: every
// call is handed to the MPI goroutine, the path a library providing less
// than MPI_THREAD_SERIALIZED takes, and everything must work the same.
func TestFunneled(t *testing.T) {
	name, n, env := launcher()
	path, err := exec.LookPath(name)
	if err != nil {
		testutil.Missing(t, "%s not found: %v", name, err)
	}
	out := runRanks(t, append(env, levelEnv+"=funneled"), path, "-n", fmt.Sprint(n), os.Args[0])
	checkPasses(t, out, n)
}

// TestBadThreadLevel checks that an unknown $IPP_MPI_THREAD_LEVEL fails
// Init with an error naming the variable, before MPI is touched (this test
// process never initialises MPI).
func TestBadThreadLevel(t *testing.T) {
	t.Setenv(levelEnv, "multiple-please")
	err := Init()
	if err == nil || !strings.Contains(err.Error(), levelEnv) || !strings.Contains(err.Error(), "multiple-please") {
		t.Fatalf("Init with a bad %s = %v, want an error naming it", levelEnv, err)
	}
	if state.Load() != stateNone || ThreadLevel() != "" || Rank() != -1 {
		t.Fatalf("after a refused Init: state %d, ThreadLevel %q, Rank %d; want nothing initialised", state.Load(), ThreadLevel(), Rank())
	}
}

// TestSingleton runs rankMain without a launcher: MPI must come up as a
// world of size 1 and every collective must still work.
func TestSingleton(t *testing.T) {
	out := runRanks(t, ompiEnv, os.Args[0])
	checkPasses(t, out, 1)
}

// TestBeforeInit checks the state this (never initialised) test process
// is in: no rank, and calls fail with ErrNotInitialized rather than
// reaching MPI.
func TestBeforeInit(t *testing.T) {
	if !Available() {
		t.Fatal("Available() is false in an MPI build")
	}
	want := map[string]bool{"ompi": flavor == "openmpi", "mpich": flavor == "mpich"}
	if !want["ompi"] && !want["mpich"] {
		t.Fatalf("Flavor() = %q", Flavor())
	}
	if Rank() != -1 || Size() != -1 {
		t.Fatalf("Rank/Size before Init = %d/%d, want -1/-1", Rank(), Size())
	}
	x := []float64{1}
	for name, err := range map[string]error{
		"Barrier":   Barrier(),
		"Allreduce": Allreduce(x, x, Sum),
		"Bcast":     Bcast(x, 0),
		"Finalize":  Finalize(),
	} {
		if !errors.Is(err, ErrNotInitialized) {
			t.Errorf("%s before Init = %v, want ErrNotInitialized", name, err)
		}
	}
}
