//go:build ompi || mpich

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/mpi"
)

// engineProcEnv makes the test binary run as an engine (TestMPIEngineProcess)
// when mpiexec starts it.
const engineProcEnv = "IPP_TEST_MPI_ENGINE"

// TestMPIEngineProcess is not a test: under mpiexec it is each rank's
// engine, started with the flags engine.Main would parse.
func TestMPIEngineProcess(t *testing.T) {
	if os.Getenv(engineProcEnv) != "1" {
		t.Skip("runs only as an engine under mpiexec")
	}
	code := mainWithArgs("engine", []string{"--log-level", "debug"})
	transport.Shutdown()
	os.Exit(code)
}

// mpiLauncher returns the mpiexec of the library this binary links, the
// rank count the engine tests use with it, and the environment it needs.
// Open MPI runs 4 ranks oversubscribed; MPICH stays at 2 because its
// oversubscribed ranks busy-poll and a test crawls.
func mpiLauncher() (name string, ranks int, env []string) {
	if mpi.Flavor() == "mpich" {
		return "mpiexec.mpich", 2, nil
	}
	return "mpiexec.openmpi", 4, []string{
		"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_rmaps_base_oversubscribe=1",
	}
}

// mpiRanks is an mpiexec run of this test binary as engines.
type mpiRanks struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

// startRanks starts n engine ranks connected to c, with extra environment.
// The whole process group is killed at the end of the test (or after two
// minutes), so a rank stuck in a collective cannot outlive it.
func startRanks(t *testing.T, c *controller.Controller, n int, env ...string) *mpiRanks {
	t.Helper()
	name, _, launchEnv := mpiLauncher()
	mpiexec, err := exec.LookPath(name)
	if err != nil {
		testutil.Missing(t, "%s not found (apt-get install %s): %v", name,
			map[string]string{"mpiexec.openmpi": "openmpi-bin", "mpiexec.mpich": "mpich"}[name], err)
	}
	info, err := json.Marshal(c.EngineInfo())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &mpiRanks{done: make(chan error, 1)}
	r.cmd = exec.CommandContext(ctx, mpiexec, "-n", fmt.Sprint(n), os.Args[0], "-test.run=^TestMPIEngineProcess$")
	r.cmd.Env = append(os.Environ(), launchEnv...)
	r.cmd.Env = append(r.cmd.Env, engineProcEnv+"=1", protocol.EnvConnectionInfo+"="+string(info))
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.Cancel = func() error { return syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL) }
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait returns mpiexec's exit error, failing the test after timeout.
func (r *mpiRanks) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("mpiexec still running after %s; output:\n%s", timeout, r.out.String())
		return nil
	}
}

func newTestController(t *testing.T) *controller.Controller {
	t.Helper()
	c, err := controller.New(controller.Config{HeartbeatPeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMPIEngines starts engines under the linked library's mpiexec (4
// oversubscribed ranks with Open MPI, 2 with MPICH): they register
// with ids following their ranks and report rank, size and flavour, and
// snippets call package mpi without an import line, collectives included.
func TestMPIEngines(t *testing.T) {
	c := newTestController(t)
	t.Setenv(protocol.EnvEngineIDBase, "") // ids must start at 0
	_, n, _ := mpiLauncher()
	ranks := startRanks(t, c, n, fmt.Sprintf("%s=%d", protocol.EnvMPISize, n))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := ipp.ConnectInfo(ctx, c.ClientInfo())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WaitForEngines(ctx, n); err != nil {
		t.Fatalf("engines did not register: %v; output:\n%s", err, ranks.out.String())
	}
	engines, err := client.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != n {
		t.Fatalf("%d engines registered, want %d: %+v", len(engines), n, engines)
	}
	flavor := mpi.Flavor()
	if flavor != "openmpi" && flavor != "mpich" {
		t.Fatalf("mpi.Flavor() = %q in an MPI build", flavor)
	}
	for i, e := range engines {
		if e.ID != i || e.MPIRank != i || e.MPISize != n || e.MPIFlavor != flavor || e.Host == "" {
			t.Errorf("engine %d: id %d rank %d size %d flavor %q host %q; want id = rank = %d, size %d, %s, a host",
				i, e.ID, e.MPIRank, e.MPISize, e.MPIFlavor, e.Host, i, n, flavor)
		}
	}
	// Values the snippets must print, computed here: the sum of the
	// ranks and n*100 for the loop of 100 allreduces of 1.
	rankSum := 0
	for r := range n {
		rankSum += r
	}
	wantIDs := make([]string, n)
	for i := range n {
		wantIDs[i] = fmt.Sprint(i)
	}
	sort.Strings(wantIDs)

	run := func(code string, want func(id int) string) {
		t.Helper()
		ar, err := client.All().Execute(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		if err := ar.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", code, err)
		}
		ids, outs := ar.EngineIDs(), ar.Stdout()
		got := make([]string, len(ids))
		for i, id := range ids {
			if outs[i] != want(id) {
				t.Errorf("%s on engine %d printed %q, want %q", code, id, outs[i], want(id))
			}
			got[i] = fmt.Sprint(id)
		}
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
			t.Errorf("%s ran on engines %v, want %v", code, got, wantIDs)
		}
	}
	run(`fmt.Println("R", mpi.Rank(), mpi.Size())`, func(id int) string { return fmt.Sprintf("R %d %d\n", id, n) })
	run(`v, err := mpi.AllreduceInt64(int64(mpi.Rank()), mpi.Sum); fmt.Println(v, err)`,
		func(int) string { return fmt.Sprintf("%d <nil>\n", rankSum) })
	// Both libraries provide MPI_THREAD_SERIALIZED, so a snippet's calls
	// go to MPI from its own thread.
	run(`fmt.Println(mpi.ThreadLevel())`, func(int) string { return "serialized\n" })
	// Goroutines a snippet starts call MPI too, while the snippet waits
	// for them: identical collectives pair up in whatever order each
	// rank's goroutines reach MPI, so every call returns the full sum.
	run(`import "sync"
var wg sync.WaitGroup
var mu sync.Mutex
bad := 0
for g := 0; g < 3; g++ {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if v, err := mpi.AllreduceInt64(1, mpi.Sum); err != nil || v != int64(mpi.Size()) {
				mu.Lock(); bad++; mu.Unlock()
			}
		}
	}()
}
wg.Wait()
fmt.Println("bad", bad)`, func(int) string { return "bad 0\n" })
	// Blocking collectives inside Run (no interrupt; MPI's own calls).
	run(`var s float64; mpi.Run(func() { for i := 0; i < 100; i++ { x, _ := mpi.AllreduceFloat64(1, mpi.Sum); s += x } }); fmt.Println(s)`,
		func(int) string { return fmt.Sprintf("%d\n", 100*n) })

	if err := client.Shutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := ranks.wait(t, 30*time.Second); err != nil {
		t.Errorf("mpiexec after shutdown: %v; output:\n%s", err, ranks.out.String())
	}
}

// TestMPIEngineSizeMismatch starts one rank where IPP_MPI_SIZE promises
// two: the engine must refuse to run, saying why, instead of registering
// as if all were well.
func TestMPIEngineSizeMismatch(t *testing.T) {
	c := newTestController(t)
	ranks := startRanks(t, c, 1, protocol.EnvMPISize+"=2")
	err := ranks.wait(t, time.Minute)
	if err == nil {
		t.Fatalf("a 1-rank world where 2 were asked for exited 0; output:\n%s", ranks.out.String())
	}
	if !bytes.Contains(ranks.out.Bytes(), []byte("MPI reports a world of 1 process but 2 were launched")) {
		t.Errorf("output does not explain the mismatch:\n%s", ranks.out.String())
	}
}
