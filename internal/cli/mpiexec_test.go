package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

func TestMPIFlags(t *testing.T) {
	var so *StartOptions
	cmd := NewCmdStart(&Factory{}, func(o *StartOptions) error { so = o; return nil })
	if err := run(cmd, "--engines", "MPI", "-n", "4", "--mpiexec", "mpiexec.openmpi --bind-to none", "--mpi-args", `-x FOO --host 'a,b'`); err != nil {
		t.Fatal(err)
	}
	if so.Launcher != "MPI" || so.N != 4 {
		t.Errorf("start options %+v", so)
	}
	o, err := so.LauncherFlags.Options.For(so.Launcher)
	if err != nil {
		t.Fatal(err)
	}
	mo, ok := o.(*launchers.MPIExecOptions)
	if !ok || !slices.Equal(mo.MPIExec, []string{"mpiexec.openmpi", "--bind-to", "none"}) ||
		!slices.Equal(mo.MPIArgs, []string{"-x", "FOO", "--host", "a,b"}) {
		t.Errorf("settings for MPI: %#v", o)
	}
	if err := run(NewCmdStart(&Factory{}, func(*StartOptions) error { return nil }), "--mpi-args", `"open`); err == nil || !strings.Contains(err.Error(), "mpi-args") {
		t.Errorf("bad --mpi-args: %v", err)
	}
	if err := run(cmd, "--launcher", "mpiexec", "--env", "OMPI_MCA_btl=self,vader", "--env", "EMPTY="); err != nil {
		t.Fatal(err)
	}
	var eopts launchers.ClusterOptions
	if err := so.LauncherFlags.environ(&eopts); err != nil {
		t.Fatal(err)
	}
	if eopts.Env["OMPI_MCA_btl"] != "self,vader" || eopts.Env["EMPTY"] != "" || len(eopts.Env) != 2 {
		t.Errorf("--env gave %v", eopts.Env)
	}
	if err := (&LauncherFlags{Env: []string{"NOEQUALS"}}).environ(&eopts); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Errorf("bad --env: %v", err)
	}

	var eo *EnginesOptions
	cmd = NewCmdEngines(&Factory{}, func(o *EnginesOptions) error { eo = o; return nil })
	if err := run(cmd, "--engines", "mpiexec", "-n", "2", "--mpiexec", "mpiexec.mpich", "--mpi-args", "-v"); err != nil {
		t.Fatal(err)
	}
	o, _ = eo.LauncherFlags.Options.For(eo.Launcher)
	if mo, _ := o.(*launchers.MPIExecOptions); eo.Launcher != "mpiexec" || mo == nil || !slices.Equal(mo.MPIExec, []string{"mpiexec.mpich"}) || !slices.Equal(mo.MPIArgs, []string{"-v"}) {
		t.Errorf("engines options %+v %+v", eo, o)
	}
}

func TestNextEngineID(t *testing.T) {
	for _, c := range []struct {
		ids  []int
		want int
	}{{nil, 0}, {[]int{0, 1, 2}, 3}, {[]int{0, 5, 2}, 6}} {
		if got := nextEngineID(c.ids); got != c.want {
			t.Errorf("nextEngineID(%v) = %d, want %d", c.ids, got, c.want)
		}
	}
}

// TestStartStopMPIExec starts a cluster whose engines are the ranks of a
// real MPI job (fake engines: the test binary), adds a second MPI set,
// and checks that stop leaves no process of either job.
func TestStartStopMPIExec(t *testing.T) {
	for _, impl := range []string{"mpiexec.openmpi", "mpiexec.mpich"} {
		t.Run(impl, func(t *testing.T) {
			path, err := exec.LookPath(impl)
			if err != nil {
				testutil.Missing(t, "%s not found (apt-get install openmpi-bin mpich): %v", impl, err)
				return
			}
			testStartStopMPIExec(t, path)
		})
	}
}

func testStartStopMPIExec(t *testing.T, mpiexec string) {
	e := newTestEnv(t)
	rankDir := t.TempDir()
	t.Setenv(rankDirEnv, rankDir)
	ctx := context.Background()
	var pids []int
	killAll(t, &pids)

	o := startOpts(e, 2)
	o.Launcher = "mpiexec"
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.LauncherFlags.bind(fs)
	if err := fs.Set("mpiexec", mpiexec); err != nil {
		t.Fatal(err)
	}
	if err := startRun(ctx, o); err != nil {
		t.Fatalf("start: %v\n%s", err, e.err)
	}
	file := wire.ClusterFile(e.profileDir(), "")
	ranks := func() map[int]string {
		out := map[int]string{}
		entries, _ := os.ReadDir(rankDir)
		for _, ent := range entries {
			pid, _ := strconv.Atoi(ent.Name())
			data, _ := os.ReadFile(filepath.Join(rankDir, ent.Name()))
			out[pid] = string(data)
		}
		return out
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return len(ranks()) == 2 }, "2 ranks of the first set")

	// A second set: its engine ids start after the registered ones.
	eo := &EnginesOptions{F: e.f, N: 2, Launcher: "mpiexec", Daemonize: true, WaitTimeout: 20 * time.Second, StopGrace: 2 * time.Second}
	if err := enginesRun(ctx, eo); err != nil {
		t.Fatalf("engines: %v\n%s", err, e.err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return len(ranks()) == 4 }, "2 more ranks")
	var infos []string
	for pid, info := range ranks() {
		pids = append(pids, pid)
		infos = append(infos, info)
	}
	slices.Sort(infos)
	if !slices.Equal(infos, []string{"2 0", "2 0", "2 2", "2 2"}) {
		t.Errorf("ranks saw IPP_MPI_SIZE and IPP_ENGINE_ID_BASE %q, want 2 0 (first set) and 2 2 (second)", infos)
	}
	pids = append(pids, recordedPIDs(t, file)...)
	if len(pids) != 4+3 {
		t.Errorf("pids %v: want 4 ranks, the controller and 2 mpiexec", pids)
	}

	if err := stopRun(ctx, &StopOptions{F: e.f, StopGrace: 5 * time.Second}); err != nil {
		t.Fatalf("stop: %v\n%s", err, e.err)
	}
	for _, pid := range pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("cluster file left: %v", err)
	}
}
