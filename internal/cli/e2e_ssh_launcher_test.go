package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// The SSH launcher tests drive ipcluster against the loopback sshd of
// scripts/sshd.sh (testutil.SSH: hosts ci and localhost-ci log in as root,
// ci-user as the unprivileged ippci). The "remote" hosts are this machine,
// so the tests check the remote processes by pid in /proc.

// sshE2E is an e2e whose ipcluster reaches the test sshd.
type sshE2E struct {
	*e2e
	ssh *testutil.SSHServer
	// remote is our ipcluster where every account can run it.
	remote string
}

func newSSHE2E(t *testing.T) *sshE2E {
	t.Helper()
	e := newE2E(t)
	s := testutil.SSH(t)
	se := &sshE2E{e2e: e, ssh: s}
	// ippci cannot enter root's 0700 build directories.
	se.remote = s.Share(t, e.bin)
	e.bin = se.remote
	e.env = append(e.env, s.ArgsEnv())
	return se
}

// sshProcs reads the hosts and pids of the SSH launchers' processes from
// the cluster file: the engine sets' (by engine index) and the
// controller's.
func sshProcs(t *testing.T, path string) (engines map[int]int, controller int) {
	t.Helper()
	f, err := launchers.ReadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type proc struct {
		Host  string
		PID   int
		Index int
	}
	engines = map[int]int{}
	for _, st := range f.Engines.Sets {
		var set struct{ Procs []proc }
		if err := json.Unmarshal(st, &set); err != nil {
			t.Fatal(err)
		}
		for _, p := range set.Procs {
			engines[p.Index] = p.PID
		}
	}
	if f.Controller != nil && f.Controller.Class == "ssh" {
		var ctl struct{ Procs []proc }
		if err := json.Unmarshal(f.Controller.State, &ctl); err != nil {
			t.Fatal(err)
		}
		if len(ctl.Procs) == 1 {
			controller = ctl.Procs[0].PID
		}
	}
	return engines, controller
}

// execPIDs runs a snippet printing each engine's pid and returns them by
// engine id.
func (e *sshE2E) execPIDs(cid string) map[int]int {
	e.t.Helper()
	out, _ := e.must(0, "exec", "--cluster-id", cid, `fmt.Println(os.Getpid(), os.Getenv("IPP_ENGINE_ID_BASE"), os.Getenv("IPP_ENGINE_INDEX"))`)
	got := map[int]int{}
	re := regexp.MustCompile(`\[stdout:(\d+)\] (\d+) (\d+) (\d+)\n`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		id, _ := strconv.Atoi(m[1])
		pid, _ := strconv.Atoi(m[2])
		base, _ := strconv.Atoi(m[3])
		index, _ := strconv.Atoi(m[4])
		if base+index != id {
			e.t.Errorf("engine %d has IPP_ENGINE_ID_BASE %d + IPP_ENGINE_INDEX %d: ids must follow the order of --hosts", id, base, index)
		}
		got[id] = pid
	}
	if len(got) == 0 {
		e.t.Errorf("exec output:\n%s", out)
	}
	return got
}

func pidUID(pid int) int {
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		return -1
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// TestSSHLauncherE2E: four engines over two host names (root), ids in the
// order of --hosts, list, an engine killed with -9 seen gone, and a stop
// that leaves no engine process and no log of a stopped engine.
func TestSSHLauncherE2E(t *testing.T) {
	e := newSSHE2E(t)
	cid := fmt.Sprintf("ssh-%d", os.Getpid())
	rpd := filepath.Join(e.ssh.SharedDir(t), "remote")
	start := time.Now()
	// A short heartbeat, so that the controller notices the engine
	// killed below within seconds.
	e.must(0, "start", "--cluster-id", cid, "--launcher", "ssh", "--hosts", testutil.SSHHostRoot+":2,"+testutil.SSHHostAlias+":2",
		"-n", "4", "--remote-ipcluster", e.remote, "--remote-profile-dir", rpd, "--daemonize", "--wait-timeout", "120", "--", "--ping", "250")
	t.Logf("start over ssh: %v", time.Since(start))
	clusterFile := wire.ClusterFile(e.profile, cid)
	engines, _ := sshProcs(t, clusterFile)
	for _, pid := range engines {
		e.pids = append(e.pids, pid)
	}
	e.pids = append(e.pids, recordedPIDs(t, clusterFile)[0])
	if len(engines) != 4 {
		t.Fatalf("recorded engines %v, want 4", engines)
	}
	got := e.execPIDs(cid)
	for id := range 4 {
		if got[id] == 0 || got[id] != engines[id] {
			t.Errorf("engine %d runs as pid %d, the launcher recorded %d", id, got[id], engines[id])
		}
	}
	if rows := e.listRows(); len(rows) != 1 || !strings.HasPrefix(rows[0], "default "+cid+" True 4/4 SSH") {
		t.Errorf("list rows %q", rows)
	}

	if err := syscall.Kill(engines[3], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		rows := e.listRows()
		return len(rows) == 1 && strings.HasPrefix(rows[0], "default "+cid+" True 3/4 SSH")
	}, "list does not show the engine killed with -9 as gone: %q", e.listRows())

	_, errOut := e.must(0, "stop", "--cluster-id", cid)
	if !strings.Contains(errOut, "stopped remote processes") {
		t.Errorf("stop did not report the remote processes:\n%s", errOut)
	}
	for _, pid := range e.pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d still running after stop", pid)
		}
	}
	if _, err := os.Stat(clusterFile); !os.IsNotExist(err) {
		t.Errorf("cluster file left after stop: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(rpd, "log", "*"))
	if len(logs) != 1 || !strings.HasSuffix(logs[0], "-3.log") {
		t.Errorf("remote logs after stop %v: only the killed engine's should stay", logs)
	}
}

// TestSSHLauncherE2EUser: the same as the unprivileged ippci, with the
// default remote profile (under ippci's home), through `engines` too.
func TestSSHLauncherE2EUser(t *testing.T) {
	e := newSSHE2E(t)
	cid := fmt.Sprintf("sshu-%d", os.Getpid())
	u, err := user.Lookup(e.ssh.UserName)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	remoteLog := filepath.Join(u.HomeDir, ".ipython", "profile_default", "log")
	t.Cleanup(func() {
		old, _ := filepath.Glob(filepath.Join(remoteLog, "ipengine-"+cid+"-*"))
		for _, f := range old {
			os.Remove(f)
		}
	})
	// -n defaults to the hosts' count.
	e.must(0, "start", "--cluster-id", cid, "--launcher", "ssh", "--hosts", testutil.SSHHostUser+":2",
		"--remote-ipcluster", e.remote, "--daemonize", "--wait-timeout", "120")
	clusterFile := wire.ClusterFile(e.profile, cid)
	e.pids = append(e.pids, recordedPIDs(t, clusterFile)[0])
	// A second set on the recorded host, by `ipcluster engines`, reading
	// the engine file copied into the remote profile.
	e.must(0, "engines", "--cluster-id", cid, "-n", "1", "--no-connection-env", "--wait-timeout", "120")
	sent := filepath.Join(u.HomeDir, ".ipython", "profile_default", "security", "ipcontroller-"+cid+"-engine.json")
	if fi, err := os.Stat(sent); err != nil || fi.Mode().Perm() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("engine file on the host: %v %v", fi, err)
	}
	engines, _ := sshProcs(t, clusterFile)
	for _, pid := range engines {
		e.pids = append(e.pids, pid)
	}
	got := e.execPIDs(cid)
	if len(got) != 3 {
		t.Fatalf("engines answering %v, want 3", got)
	}
	for id, pid := range got {
		if pidUID(pid) != uid {
			t.Errorf("engine %d (pid %d) runs as uid %d, not %s's %d", id, pid, pidUID(pid), e.ssh.UserName, uid)
		}
	}
	e.must(0, "stop", "--cluster-id", cid)
	for _, pid := range e.pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d still running after stop", pid)
		}
	}
	if logs, _ := filepath.Glob(filepath.Join(remoteLog, "ipengine-"+cid+"-*")); len(logs) != 0 {
		t.Errorf("remote logs left: %v", logs)
	}
	if _, err := os.Stat(sent); !os.IsNotExist(err) {
		t.Errorf("engine file left on the host: %v", err)
	}
}

// TestSSHControllerE2E: the controller runs as ippci over ssh, its
// connection files come back to the local profile, local engines use
// them, and stop leaves neither the remote controller nor its files.
func TestSSHControllerE2E(t *testing.T) {
	e := newSSHE2E(t)
	cid := fmt.Sprintf("sshc-%d", os.Getpid())
	u, err := user.Lookup(e.ssh.UserName)
	if err != nil {
		t.Fatal(err)
	}
	remoteSec := filepath.Join(u.HomeDir, ".ipython", "profile_default", "security")
	e.must(0, "start", "--cluster-id", cid, "--controller", "ssh", "--controller-host", testutil.SSHHostUser, "-n", "2",
		"--remote-ipcluster", e.remote, "--daemonize", "--wait-timeout", "120")
	clusterFile := wire.ClusterFile(e.profile, cid)
	_, ctl := sshProcs(t, clusterFile)
	if ctl == 0 {
		t.Fatal("no controller pid recorded")
	}
	e.pids = append(e.pids, ctl)
	f, err := launchers.ReadClusterFile(clusterFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range f.Engines.Sets {
		var set struct{ Engines map[string]struct{ PID int } }
		json.Unmarshal(st, &set)
		for _, p := range set.Engines {
			e.pids = append(e.pids, p.PID)
		}
	}
	if uid := pidUID(ctl); strconv.Itoa(uid) != u.Uid {
		t.Errorf("controller pid %d runs as uid %d, want %s", ctl, uid, u.Uid)
	}
	for _, name := range []string{wire.ClientFile(e.profile, cid), wire.EngineFile(e.profile, cid)} {
		fi, err := os.Stat(name)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("fetched connection file %s: %v %v", name, fi, err)
		}
	}
	if out, _ := e.must(0, "exec", "--cluster-id", cid, "fmt.Println(6*7)"); byEngine(out) != "[stdout:0] 42\n[stdout:1] 42\n" {
		t.Errorf("exec output:\n%s", out)
	}
	if rows := e.listRows(); len(rows) != 1 || !strings.HasPrefix(rows[0], "default "+cid+" True 2/2 Local") {
		t.Errorf("list rows %q", rows)
	}
	e.must(0, "stop", "--cluster-id", cid)
	for _, pid := range e.pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d still running after stop", pid)
		}
	}
	// The task database stays (ipcluster clean removes it).
	left, _ := filepath.Glob(filepath.Join(remoteSec, "ipcontroller-"+cid+"-*"))
	left = slices.DeleteFunc(left, func(f string) bool { return strings.Contains(f, "-tasks.db") })
	if len(left) != 0 {
		t.Errorf("remote connection files left: %v", left)
	}
}

// TestSSHLauncherE2EErrors: an unreachable host and a missing remote
// ipcluster fail start quickly with sshx's message naming the host (and
// the program), and leave nothing running.
func TestSSHLauncherE2EErrors(t *testing.T) {
	e := newSSHE2E(t)
	cid := fmt.Sprintf("sshe-%d", os.Getpid())
	// Writable by ippci, whose engine keeps its log there when it dies.
	rpd := filepath.Join(e.ssh.SharedDir(t), "remote")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"unreachable", []string{"--hosts", testutil.SSHHostUnreachable + ":1", "--remote-ipcluster", e.remote},
			[]string{"ssh " + testutil.SSHHostUnreachable, "cannot connect", "Connection refused"}},
		{"missing ipcluster", []string{"--hosts", testutil.SSHHostUser + ":1", "--remote-ipcluster", "/nonexistent/ipcluster"},
			[]string{"ssh " + testutil.SSHHostUser + ": command not found on " + testutil.SSHHostUser + ": /nonexistent/ipcluster (exit 127)", "--remote-ipcluster"}},
		{"too many engines", []string{"--hosts", testutil.SSHHostUser + ":1", "-n", "3", "--remote-ipcluster", e.remote},
			[]string{"room for 1 engines, but 3 were asked for"}},
		{"controller without host", []string{"--controller", "ssh", "-n", "1"},
			[]string{"--controller ssh needs --controller-host HOST"}},
		// An engine that dies on its host: its remote log is in the error.
		{"engine exits", []string{"--hosts", testutil.SSHHostUser + ":1", "--remote-ipcluster", e.remote,
			"--engine-cmd", e.remote + " engine --file /nonexistent.json", "--remote-profile-dir", rpd},
			[]string{"1 of 1 engines exited before registering", testutil.SSHHostUser + ":" + rpd + "/log/ipengine-" + cid, "no connection file /nonexistent.json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"start", "--cluster-id", cid, "--launcher", "ssh", "--daemonize", "--wait-timeout", "120"}, c.args...)
			if slices.Contains(c.args, "--controller") {
				args[4] = "local"
			}
			start := time.Now()
			_, errOut, code := e.run(args...)
			took := time.Since(start)
			if code != ExitError {
				t.Errorf("exit %d, want %d\n%s", code, ExitError, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			// Generous: a hang would be the wait timeout (120 s).
			if took > 90*time.Second {
				t.Errorf("failing took %v", took)
			}
			if _, err := os.Stat(wire.ClusterFile(e.profile, cid)); !os.IsNotExist(err) {
				t.Errorf("cluster file left after a failed start: %v", err)
			}
		})
	}
}
