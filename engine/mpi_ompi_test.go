//go:build ompi

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
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
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

// mpiRanks is an mpiexec.openmpi run of this test binary as engines.
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
	mpiexec, err := exec.LookPath("mpiexec.openmpi")
	if err != nil {
		testutil.Missing(t, "mpiexec.openmpi not found (install openmpi-bin): %v", err)
	}
	info, err := json.Marshal(c.EngineInfo())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &mpiRanks{done: make(chan error, 1)}
	r.cmd = exec.CommandContext(ctx, mpiexec, "-n", fmt.Sprint(n), os.Args[0], "-test.run=^TestMPIEngineProcess$")
	r.cmd.Env = append(os.Environ(),
		"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_rmaps_base_oversubscribe=1",
		engineProcEnv+"=1", EnvConnectionInfo+"="+string(info))
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

// TestMPIEngines starts two engines under mpiexec.openmpi: they register
// with ids following their ranks and report rank, size and flavour, and
// snippets call package mpi without an import line, collectives included.
func TestMPIEngines(t *testing.T) {
	c := newTestController(t)
	t.Setenv(EnvEngineIDBase, "") // ids must start at 0
	ranks := startRanks(t, c, 2, EnvMPISize+"=2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := ipp.ConnectInfo(ctx, c.ClientInfo())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WaitForEngines(ctx, 2); err != nil {
		t.Fatalf("engines did not register: %v; output:\n%s", err, ranks.out.String())
	}
	engines, err := client.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != 2 {
		t.Fatalf("%d engines registered, want 2: %+v", len(engines), engines)
	}
	for i, e := range engines {
		if e.ID != i || e.MPIRank != i || e.MPISize != 2 || e.MPIFlavor != "openmpi" || e.Host == "" {
			t.Errorf("engine %d: id %d rank %d size %d flavor %q host %q; want id = rank = %d, size 2, openmpi, a host",
				i, e.ID, e.MPIRank, e.MPISize, e.MPIFlavor, e.Host, i)
		}
	}

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
		if fmt.Sprint(got) != "[0 1]" {
			t.Errorf("%s ran on engines %v, want [0 1]", code, got)
		}
	}
	run(`fmt.Println("R", mpi.Rank(), mpi.Size())`, func(id int) string { return fmt.Sprintf("R %d 2\n", id) })
	run(`v, err := mpi.AllreduceInt64(int64(mpi.Rank()), mpi.Sum); fmt.Println(v, err)`, func(int) string { return "1 <nil>\n" })
	// The fast path a loop of collectives should take.
	run(`var s float64; mpi.Run(func() { for i := 0; i < 100; i++ { x, _ := mpi.AllreduceFloat64(1, mpi.Sum); s += x } }); fmt.Println(s)`,
		func(int) string { return "200\n" })

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
	ranks := startRanks(t, c, 1, EnvMPISize+"=2")
	err := ranks.wait(t, time.Minute)
	if err == nil {
		t.Fatalf("a 1-rank world where 2 were asked for exited 0; output:\n%s", ranks.out.String())
	}
	if !bytes.Contains(ranks.out.Bytes(), []byte("MPI reports a world of 1 process but 2 were launched")) {
		t.Errorf("output does not explain the mismatch:\n%s", ranks.out.String())
	}
}
