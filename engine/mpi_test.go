package engine

import (
	"context"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/mpi"
)

// clearLauncherEnv hides any MPI launcher variables the test process
// itself may have inherited, so detection starts from a clean slate.
func clearLauncherEnv(t *testing.T) {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID", "SLURM_MPI_TYPE",
		"SLURM_STEP_NUM_TASKS", protocol.EnvMPISize, protocol.EnvEngineIDBase} {
		t.Setenv(k, "")
	}
}

func TestMPIModeFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want MPIMode
	}{
		{nil, MPIAuto},
		{[]string{"--mpi"}, MPIOn},
		{[]string{"--mpi=false"}, MPIOff},
		{[]string{"--mpi=auto"}, MPIAuto},
		{[]string{"--mpi=1"}, MPIOn},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var m MPIMode
		fs.Var(&m, "mpi", "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if m != tc.want {
			t.Errorf("%q gave %v, want %v", tc.args, m.String(), tc.want.String())
		}
	}
	var m MPIMode
	if err := m.Set("maybe"); err == nil {
		t.Error(`Set("maybe") succeeded`)
	}
}

func TestMPILauncherDetected(t *testing.T) {
	clearLauncherEnv(t)
	if MPILauncherDetected() {
		t.Fatal("detected a launcher in a clean environment")
	}
	if MPIAuto.Enabled() || MPIOff.Enabled() || !MPIOn.Enabled() {
		t.Error("modes resolve wrongly without a launcher")
	}
	for _, env := range [][2]string{{"OMPI_COMM_WORLD_SIZE", "2"}, {"PMI_SIZE", "2"}, {"PMIX_RANK", "0"}} {
		t.Run(env[0], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			if !MPIAuto.Enabled() {
				t.Errorf("%s=%s not detected", env[0], env[1])
			}
			if MPIOff.Enabled() {
				t.Error("--mpi=false overridden by the environment")
			}
		})
	}
	t.Run("srun", func(t *testing.T) {
		t.Setenv("SLURM_STEP_ID", "0")
		if MPILauncherDetected() {
			t.Error("srun without an MPI plugin taken for an MPI launch")
		}
		t.Setenv("SLURM_MPI_TYPE", "pmix")
		if !MPILauncherDetected() {
			t.Error("srun --mpi=pmix not detected")
		}
	})
}

func TestApplyMPIFlags(t *testing.T) {
	clearLauncherEnv(t)
	var cfg Config
	if err := ApplyMPIFlags(&cfg, MPIAuto, -1); err != nil || cfg.MPI {
		t.Fatalf("auto without a launcher: MPI=%v err=%v", cfg.MPI, err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "3")
	t.Setenv(protocol.EnvEngineIDBase, "10")
	if err := ApplyMPIFlags(&cfg, MPIAuto, -1); err != nil {
		t.Fatal(err)
	}
	if !cfg.MPI || cfg.MPIExpectedSize != 3 || cfg.MPIIDBase != 10 {
		t.Errorf("launcher count: got MPI=%v size=%d base=%d, want true 3 10", cfg.MPI, cfg.MPIExpectedSize, cfg.MPIIDBase)
	}
	// IPP_MPI_SIZE (the ipcluster launcher's word) beats the launcher's
	// count, and --mpi-size beats both.
	t.Setenv(protocol.EnvMPISize, "4")
	if err := ApplyMPIFlags(&cfg, MPIAuto, -1); err != nil || cfg.MPIExpectedSize != 4 {
		t.Errorf("IPP_MPI_SIZE=4: size %d, err %v", cfg.MPIExpectedSize, err)
	}
	if err := ApplyMPIFlags(&cfg, MPIAuto, 5); err != nil || cfg.MPIExpectedSize != 5 {
		t.Errorf("--mpi-size 5: size %d, err %v", cfg.MPIExpectedSize, err)
	}
	t.Setenv(protocol.EnvEngineIDBase, "x")
	if err := ApplyMPIFlags(&cfg, MPIOn, 2); err == nil || !strings.Contains(err.Error(), protocol.EnvEngineIDBase) {
		t.Errorf("bad %s: err %v", protocol.EnvEngineIDBase, err)
	}
}

func TestCheckWorldSize(t *testing.T) {
	clearLauncherEnv(t)
	for _, ok := range [][2]int{{0, 1}, {0, 4}, {1, 1}, {4, 4}} {
		if err := checkWorldSize(ok[0], ok[1], "openmpi"); err != nil {
			t.Errorf("expected %d, size %d: %v", ok[0], ok[1], err)
		}
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	err := checkWorldSize(2, 1, "mpich")
	if err == nil {
		t.Fatal("a singleton where 2 ranks were launched passed")
	}
	for _, want := range []string{"world of 1 process but 2 were launched", "MPICH build under Open MPI's mpiexec",
		"srun without --mpi=pmix", "the environment shows Open MPI's mpiexec", "make build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := checkWorldSize(4, 2, "openmpi"); err == nil || !strings.Contains(err.Error(), "world of 2 processes but the launcher asked for 4") {
		t.Errorf("size 2 for 4: %v", err)
	}
}

// TestMPISymbols checks that snippets can import package mpi: the yaegi
// table is built into every engine, MPI or not.
func TestMPISymbols(t *testing.T) {
	ns, err := interp.New(interp.Options{Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if _, err := ns.Exec(context.Background(), `import "github.com/ipp-hpc/ipp/mpi"`); err != nil {
		t.Fatal(err)
	}
	res, err := ns.Exec(context.Background(), `mpi.Flavor() + "|" + mpi.Sum.String()`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Text, mpi.Flavor()+"|Sum"; !strings.Contains(got, want) {
		t.Errorf("snippet gave %q, want %q", got, want)
	}
}

// TestMainMPIWithoutLibrary: --mpi in a binary built without MPI fails
// with exit status 1 before registering, naming the fix.
func TestMainMPIWithoutLibrary(t *testing.T) {
	if mpi.Flavor() != "" {
		t.Skip("this build has MPI")
	}
	clearLauncherEnv(t)
	err := Run(context.Background(), Config{Info: sampleInfo(1), MPI: true, RequestedID: -1})
	if err == nil {
		t.Fatal("Run with MPI in a build without MPI succeeded")
	}
	for _, want := range []string{"built without MPI", "make build", "libopenmpi-dev or libmpich-dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	file := filepath.Join(t.TempDir(), "engine.json")
	if err := wire.WritePrivateJSON(file, sampleInfo(1)); err != nil {
		t.Fatal(err)
	}
	if code := mainWithArgs("engine", []string{"--file", file, "--mpi"}); code != 1 {
		t.Errorf("--mpi without MPI: exit status %d, want 1", code)
	}
}
