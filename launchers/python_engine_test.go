package launchers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

func TestWithClusterArgs(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want []string
	}{
		{[]string{"/usr/bin/python3", "-m", "ipyparallel.engine"},
			[]string{"/usr/bin/python3", "-m", "ipyparallel.engine", "--profile-dir=/p", "--cluster-id=c"}},
		{[]string{"/usr/local/bin/ipengine", "--log-level=10"},
			[]string{"/usr/local/bin/ipengine", "--log-level=10", "--profile-dir=/p", "--cluster-id=c"}},
		{[]string{"python3", "-m", "ipyparallel.apps.ipengineapp", "--cluster-id=other"},
			[]string{"python3", "-m", "ipyparallel.apps.ipengineapp", "--cluster-id=other", "--profile-dir=/p"}},
		// --file says where the connection is: nothing to add.
		{[]string{"ipengine", "--file=/x.json"}, []string{"ipengine", "--file=/x.json"}},
		// Ours read IPP_PROFILE_DIR/IPP_CLUSTER_ID; a user's program may
		// not accept the flags.
		{[]string{"/bin/ipcluster", "engine"}, []string{"/bin/ipcluster", "engine"}},
		{[]string{"./mysim", "--x"}, []string{"./mysim", "--x"}},
	} {
		if got := withClusterArgs(tc.argv, "/p", "c"); !slices.Equal(got, tc.want) {
			t.Errorf("withClusterArgs(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
	if got := withClusterArgs([]string{"ipengine"}, "/p", ""); !slices.Equal(got, []string{"ipengine", "--profile-dir=/p"}) {
		t.Errorf("unnamed cluster: %q", got)
	}
}

// TestEngineCommandsCarryClusterID checks every engine launcher's command
// line for a Python engine: local, mpiexec, batch (the job script) and
// ssh (with the remote profile directory).
func TestEngineCommandsCarryClusterID(t *testing.T) {
	py := []string{"/usr/bin/python3", "-m", "ipyparallel.engine"}
	cfg := Config{ProfileDir: "/prof/profile_x", ClusterID: "big", Command: py}
	want := []string{"--profile-dir=/prof/profile_x", "--cluster-id=big"}
	hasAll := func(what string, argv []string, want []string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(argv, w) {
				t.Errorf("%s: %q lacks %s", what, argv, w)
			}
		}
	}
	local, err := NewLocalEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hasAll("local", local.argv, want)
	m, err := NewMPIExecEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hasAll("mpiexec", m.Argv(2), want)
	b, err := NewBatchLauncher(slurmDialect, KindEngines, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hasAll("batch", b.argv, want)
	ctl, err := NewBatchLauncher(slurmDialect, KindController, Config{ProfileDir: "/p", ClusterID: "big", Command: []string{"ctl"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ctl.argv, []string{"ctl"}) {
		t.Errorf("a controller command was changed: %q", ctl.argv)
	}
	scfg := cfg
	scfg.Options = &SSHOptions{Hosts: []string{"h1"}, RemoteProfileDir: "/remote/profile_x"}
	s, err := NewSSHEngineSet(scfg)
	if err != nil {
		t.Fatal(err)
	}
	hasAll("ssh", s.argv, []string{"--profile-dir=/remote/profile_x", "--cluster-id=big"})
}

// TestPythonEnginesHonourClusterID starts real Python engines with the
// local launcher against our controller serving a named cluster in a
// profile that is not the default: before the fix they waited forever
// for ipcontroller-engine.json in profile_default.
func TestPythonEnginesHonourClusterID(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	root := t.TempDir()
	t.Setenv("IPYTHONDIR", filepath.Join(root, "ipython"))
	prof := filepath.Join(root, "profile_named")
	c, err := controller.New(controller.Config{IP: "127.0.0.1", ProfileDir: prof, ClusterID: "conf", HeartbeatPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := NewLocalEngineSet(Config{ProfileDir: prof, ClusterID: "conf", Command: []string{py, "-m", "ipyparallel.engine"}, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Python engines fork a nanny into a session of its own; stop those
	// by pid whatever happens.
	var nannies []int
	t.Cleanup(func() {
		for _, pid := range nannies {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	killPIDs(t, l.PIDs)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := l.Start(ctx, 2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(c.Engines()) < 2 {
		if time.Now().After(deadline) {
			out := l.Output(20)
			var logs []string
			for k, v := range out {
				logs = append(logs, k+":\n"+v)
			}
			t.Fatalf("%d of 2 Python engines registered in 60 s; engine logs:\n%s", len(c.Engines()), strings.Join(logs, "\n"))
		}
		for _, pid := range l.PIDs() {
			for _, d := range procDescendantsOf([]int{pid})[0] {
				if !slices.Contains(nannies, d) {
					nannies = append(nannies, d)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(nannies) == 0 {
		t.Fatal("found no nanny process under the Python engines (ipyparallel 7.1 forks one per engine)")
	}
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Stop leaves nothing: not the engines, not their nannies (a session
	// of their own, out of reach of the group's SIGKILL).
	for _, pid := range nannies {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z ") {
				t.Errorf("nanny %d still alive after Stop", pid)
			}
		}
	}
}

// TestSSHPythonEngines starts a real Python engine over ssh (the test
// sshd's unprivileged account) in a remote profile: the launcher sends
// the engine file there and gives the engine --profile-dir and
// --cluster-id, which is all ipyparallel 7 reads.
func TestSSHPythonEngines(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	s := sshHosts(t)
	root := t.TempDir()
	prof := filepath.Join(root, "profile_ssh")
	cid := "py" + strconv.Itoa(os.Getpid())
	c, err := controller.New(controller.Config{IP: "127.0.0.1", ProfileDir: prof, ClusterID: cid, HeartbeatPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, err := os.ReadFile(c.EngineFile())
	if err != nil {
		t.Fatal(err)
	}
	rpd := "~/.ipython/ipp-pytest-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { os.RemoveAll(filepath.Join(userHome(t, s.UserName), strings.TrimPrefix(rpd, "~/"))) })
	l, err := NewSSHEngineSet(Config{
		ProfileDir: prof, ClusterID: cid, EngineSetID: "1",
		Command: []string{py, "-m", "ipyparallel.engine"},
		// Our engines would take this; Python's must get the file.
		ConnectionInfo: conn,
		StopGrace:      2 * time.Second,
		Options:        &SSHOptions{Hosts: []string{s.Hosts[1] + ":1"}, RemoteProfileDir: rpd},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for len(c.Engines()) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the Python engine started over ssh did not register in 90 s; its output:\n%v", l.Output(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
