package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// remoteE2E is a "laptop" (the e2e's IPYTHONDIR) driving ipcluster on a
// "login node" reached through the test sshd: the same machine, but
// another IPYTHONDIR that only the remote command line names, so every
// file the laptop uses must have come over ssh.
type remoteE2E struct {
	*e2e
	ssh  *testutil.SSHServer
	host string
	// remoteIPy is the login node's IPYTHONDIR; remoteBin its ipcluster.
	remoteIPy, remoteBin string
	// sched are scheduler variables (SLURM_CONF) for the remote side.
	sched []string
}

// newRemoteE2E prepares host with a binary built with tags (copied to a
// directory every account can read) and an IPYTHONDIR the remote user
// creates.
func newRemoteE2E(t *testing.T, host string, sched []string, tags ...string) *remoteE2E {
	t.Helper()
	s := testutil.SSH(t)
	r := &remoteE2E{e2e: newE2E(t), ssh: s, host: host, sched: sched}
	r.remoteBin = s.Share(t, testutil.IPCluster(t, tags...))
	r.remoteIPy = strings.TrimSpace(s.Run(t, host, "mktemp -d /tmp/ipp-login-ipy-XXXXXX"))
	t.Cleanup(func() {
		// Whatever a failed test left running on the login node.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.Command(ctx, host, r.remoteCmd("stop", "--all", "--stop-grace", "1")).Run()
		_ = s.Command(ctx, host, "rm -rf "+shellwords.Quote(r.remoteIPy)).Run()
	})
	r.env = append(r.env, s.ArgsEnv())
	return r
}

// ipclusterWords is the remote ipcluster command the laptop passes as
// --ssh-ipcluster: ssh carries no environment, so it is on the line.
func (r *remoteE2E) ipclusterWords() string {
	words := append(append([]string{"env", "IPYTHONDIR=" + r.remoteIPy}, r.sched...), r.remoteBin)
	return shellwords.Quote(words...)
}

// remoteCmd is a command line run on the login node directly.
func (r *remoteE2E) remoteCmd(args ...string) string {
	return r.ipclusterWords() + " " + shellwords.Quote(args...)
}

// remote runs ipcluster with --ssh HOST --ssh-ipcluster ... added.
func (r *remoteE2E) remote(want int, args ...string) (string, string) {
	r.t.Helper()
	full := append(append([]string{}, args...), "--ssh", r.host, "--ssh-ipcluster", r.ipclusterWords())
	return r.must(want, full...)
}

// remoteProcesses lists live processes whose environment names the login
// node's IPYTHONDIR: the controller, engines, mpiexec and job steps.
func (r *remoteE2E) remoteProcesses() []string {
	want := []byte("IPYTHONDIR=" + r.remoteIPy)
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "environ"))
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		found = append(found, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '})))
	}
	return found
}

// checkStopped: nothing of the cluster runs on the login node, and the
// laptop's record and client file are gone.
func (r *remoteE2E) checkStopped(cid string) {
	r.t.Helper()
	testutil.Eventually(r.t, 15*time.Second, func() bool { return len(r.remoteProcesses()) == 0 },
		"processes of the remote cluster left after stop:\n%s", strings.Join(r.remoteProcesses(), "\n"))
	for _, p := range []string{remote.RecordFile(r.profile, cid), wire.ClientFile(r.profile, cid)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			r.t.Errorf("%s left on the laptop after stop: %v", p, err)
		}
	}
}

// checkClientFile: the laptop's client file came from the login node's
// profile and tunnels through host.
func (r *remoteE2E) checkClientFile(cid string) {
	r.t.Helper()
	info, err := wire.LoadClientInfo(wire.ClientFile(r.profile, cid))
	if err != nil {
		r.t.Fatalf("no client file on the laptop: %v", err)
	}
	if info.SSH != r.host {
		r.t.Errorf("client file ssh field %q, want %q", info.SSH, r.host)
	}
	remoteInfo := r.ssh.Run(r.t, r.host, "cat", remote.ClientFile(filepath.Join(r.remoteIPy, "profile_default"), cid))
	if !strings.Contains(remoteInfo, fmt.Sprintf("%q", info.Key)) {
		r.t.Errorf("laptop's key %q is not the login node's:\n%s", info.Key, remoteInfo)
	}
	if _, err := os.Stat(wire.ClusterFile(r.profile, cid)); !os.IsNotExist(err) {
		r.t.Errorf("a cluster file on the laptop side: %v (nothing runs here)", err)
	}
}

func mpiTag(t *testing.T) string {
	tag := testutil.MPITag()
	if tag == "" {
		testutil.Missing(t, "no MPI installed (pkg-config ompi or mpich)")
	}
	return tag
}

// TestRemoteE2EMPIExec: the "by hand" run. start --ssh ci with
// mpiexec on the login node, exec --ssh from the laptop prints ranks
// 0..3, stop --ssh leaves no process there.
func TestRemoteE2EMPIExec(t *testing.T) {
	r := newRemoteE2E(t, testutil.SSHHostRoot, nil, mpiTag(t))
	cid := fmt.Sprintf("remote-mpi-%d", os.Getpid())
	_, errOut := r.remote(0, "start", "--launcher", "mpiexec", "-n", "4", "--daemonize", "--cluster-id", cid)
	if !strings.Contains(errOut, "is running on "+r.host) {
		t.Errorf("start does not say where the cluster runs:\n%s", errOut)
	}
	r.checkClientFile(cid)

	out, _ := r.remote(0, "exec", "--cluster-id", cid, `fmt.Println(mpi.Rank(), os.Getenv("IPYTHONDIR"))`)
	var want strings.Builder
	for i := range 4 {
		fmt.Fprintf(&want, "[stdout:%d] %d %s\n", i, i, r.remoteIPy)
	}
	if out = byEngine(out); out != want.String() {
		t.Errorf("exec --ssh:\n%s\nwant:\n%s", out, want.String())
	}
	// Without --ssh, exec finds the laptop's client file (and its ssh field).
	out, _ = r.must(0, "exec", "--cluster-id", cid, `fmt.Println(mpi.Size())`)
	if strings.Count(out, "] 4\n") != 4 {
		t.Errorf("exec from the laptop's client file:\n%s", out)
	}

	out, _ = r.remote(0, "list")
	if !strings.Contains(out, cid) || !strings.Contains(out, "4/4") {
		t.Errorf("list --ssh does not show the remote cluster with 4/4 engines:\n%s", out)
	}

	_, errOut = r.remote(0, "stop", "--cluster-id", cid, "--stop-grace", "2")
	if !strings.Contains(errOut, "Stopped cluster "+cid+" on "+r.host) {
		t.Errorf("stop --ssh output:\n%s", errOut)
	}
	r.checkStopped(cid)
	// Stopped twice: nothing to stop, as for a local cluster.
	r.remote(ExitAlreadyStopped, "stop", "--cluster-id", cid)
}

// slurmJobs lists the ids of the laptop's record.
func (r *remoteE2E) recordJobs(cid string) []string {
	r.t.Helper()
	rec, err := remote.LoadRecord(r.profile, cid)
	if err != nil {
		r.t.Fatalf("no record of the remote cluster on the laptop: %v", err)
	}
	var ids []string
	for _, j := range rec.Jobs {
		if j.Launcher != "slurm" {
			r.t.Errorf("job %s recorded with launcher %q", j.ID, j.Launcher)
		}
		ids = append(ids, j.ID)
	}
	return ids
}

// squeue is what the queue shows of job id (pending, running or
// completing), "" once it has left.
func (r *remoteE2E) squeue(id string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testutil.Command(ctx, r.sched, "squeue", "-h", "-j", id).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Invalid job id") {
			return ""
		}
		r.t.Fatalf("squeue -h -j %s: %v\n%s", id, err, out)
	}
	return strings.TrimSpace(string(out))
}

// runRemoteSlurm starts a Slurm cluster of 2 MPI engines on the login
// node as host's user, checks exec, and returns its id and job.
func runRemoteSlurm(t *testing.T, host, name string) (*remoteE2E, string, string) {
	sched := testutil.Slurm(t)
	r := newRemoteE2E(t, host, sched, mpiTag(t))
	t.Cleanup(func() {
		for _, id := range r.recordJobsQuiet(name) {
			if q := r.squeue(id); q != "" {
				t.Logf("cleanup: cancelling job %s: %s", id, q)
				_ = testutil.Command(context.Background(), r.sched, "scancel", id).Run()
			}
		}
	})
	cid := fmt.Sprintf("remote-%s-%d", name, os.Getpid())
	r.remote(0, "start", "--launcher", "slurm", "-n", "2", "--daemonize", "--cluster-id", cid, "--wait-timeout", "90")
	r.checkClientFile(cid)
	jobs := r.recordJobs(cid)
	if len(jobs) != 1 {
		t.Fatalf("recorded jobs %v, want the one job of the engines", jobs)
	}
	if q := r.squeue(jobs[0]); !strings.Contains(q, " R ") {
		t.Errorf("squeue of job %s: %q, want running", jobs[0], q)
	}
	out, _ := r.remote(0, "exec", "--cluster-id", cid, `fmt.Println(mpi.Rank(), os.Getenv("SLURM_JOB_ID"))`)
	if want := fmt.Sprintf("[stdout:0] 0 %s\n[stdout:1] 1 %s\n", jobs[0], jobs[0]); byEngine(out) != want {
		t.Errorf("exec --ssh on Slurm engines:\n%s\nwant:\n%s", out, want)
	}
	return r, cid, jobs[0]
}

func (r *remoteE2E) recordJobsQuiet(name string) []string {
	rec, err := remote.LoadRecord(r.profile, fmt.Sprintf("remote-%s-%d", name, os.Getpid()))
	if err != nil {
		return nil
	}
	var ids []string
	for _, j := range rec.Jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestRemoteE2ESlurm: the login node runs --launcher slurm; stop --ssh
// from the laptop leaves squeue without the job and no process.
func TestRemoteE2ESlurm(t *testing.T) {
	r, cid, job := runRemoteSlurm(t, testutil.SSHHostRoot, "slurm")
	out, _ := r.remote(0, "list")
	if !strings.Contains(out, job+":RUNNING") {
		t.Errorf("list --ssh does not show job %s running:\n%s", job, out)
	}
	_, errOut := r.remote(0, "stop", "--cluster-id", cid, "--stop-grace", "2")
	if !strings.Contains(errOut, "batch jobs "+job+" not in the queue") {
		t.Errorf("stop does not report the queue check of job %s:\n%s", job, errOut)
	}
	if q := r.squeue(job); q != "" {
		t.Errorf("job %s still queued after stop --ssh: %s", job, q)
	}
	r.checkStopped(cid)
}

// TestRemoteE2ESlurmLostJobs: ipyparallel's known failure, provoked. The
// login node's ipcluster loses track of the cluster (its cluster file is
// gone, the controller killed), so its stop stops nothing; the laptop's
// plain `stop` (no --ssh: the record names the host) must still take the
// job out of the queue, from the job ids it recorded.
func TestRemoteE2ESlurmLostJobs(t *testing.T) {
	r, cid, job := runRemoteSlurm(t, testutil.SSHHostRoot, "lost")
	profile := filepath.Join(r.remoteIPy, "profile_default")
	r.ssh.Run(t, r.host, "rm", "-f", filepath.Join(profile, "security", "cluster-"+cid+".json"))
	_, errOut := r.must(0, "stop", "--cluster-id", cid)
	if !strings.Contains(errOut, "jobs "+job+" were still queued after the remote stop and were cancelled from here") {
		t.Errorf("stop does not say it cancelled job %s itself:\n%s", job, errOut)
	}
	if q := r.squeue(job); q != "" {
		t.Errorf("job %s still queued after stop: %s", job, q)
	}
	// The controller the lost file orphaned runs outside the queue: only
	// the engines, which ran in the job, must be gone.
	testutil.Eventually(t, 15*time.Second, func() bool {
		for _, p := range r.remoteProcesses() {
			if !strings.Contains(p, " controller") {
				return false
			}
		}
		return true
	}, "engine processes left after the job was cancelled:\n%s", strings.Join(r.remoteProcesses(), "\n"))
	for _, p := range r.remoteProcesses() {
		if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestRemoteE2ESlurmNonRoot: the same as a user who is not root, with
// the binary in a shared 0755 directory.
func TestRemoteE2ESlurmNonRoot(t *testing.T) {
	r, cid, job := runRemoteSlurm(t, testutil.SSHHostUser, "user")
	if owner := strings.TrimSpace(r.ssh.Run(t, r.host, "stat", "-c", "%U", r.remoteIPy)); owner != testutil.SSHUserName {
		t.Errorf("login node's IPYTHONDIR owned by %q, want %q", owner, testutil.SSHUserName)
	}
	r.remote(0, "stop", "--cluster-id", cid, "--stop-grace", "2")
	if q := r.squeue(job); q != "" {
		t.Errorf("job %s still queued after stop --ssh: %s", job, q)
	}
	r.checkStopped(cid)
}

// TestRemoteE2EErrors: the three ways a remote start fails before
// anything starts, each fast and saying what to fix.
func TestRemoteE2EErrors(t *testing.T) {
	s := testutil.SSH(t)
	e := newE2E(t)
	e.env = append(e.env, s.ArgsEnv())
	bin := s.Share(t, testutil.IPCluster(t))
	for _, tc := range []struct {
		name, host, ipcluster string
		want                  []string
	}{
		{"unreachable", testutil.SSHHostUnreachable, bin,
			[]string{"ssh " + testutil.SSHHostUnreachable, "cannot connect", "check the host, port, network or VPN"}},
		{"refused key", s.BadKeyHost, bin,
			[]string{"ssh " + s.BadKeyHost, "refused the login", "ssh " + s.BadKeyHost + " true"}},
		{"no ipcluster", testutil.SSHHostRoot, "/nonexistent/ipcluster",
			[]string{"ipcluster is not installed on ci (or not on PATH of a non-interactive shell); pass --ssh-ipcluster /path/to/ipcluster"}},
		// Debian's python3-ipyparallel: an ipcluster, but not ours.
		{"python ipcluster", testutil.SSHHostRoot, "/usr/bin/ipcluster",
			[]string{"/usr/bin/ipcluster on ci is not this project's ipcluster", "--ssh-ipcluster"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ipcluster == "/usr/bin/ipcluster" {
				if _, err := os.Stat(tc.ipcluster); err != nil {
					t.Skip("no Python ipcluster installed")
				}
			}
			began := time.Now()
			_, errOut, code := e.run("start", "-n", "1", "--ssh", tc.host, "--ssh-ipcluster", tc.ipcluster, "--cluster-id", "never")
			took := time.Since(began)
			if code != ExitError {
				t.Errorf("exit %d, want %d\n%s", code, ExitError, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error lacks %q:\n%s", w, errOut)
				}
			}
			// Generous: ssh's ConnectTimeout is 5 s; the point is no
			// 120 s engine wait.
			if took > 45*time.Second {
				t.Errorf("took %v", took)
			}
			if _, err := os.Stat(remote.RecordFile(e.profile, "never")); !os.IsNotExist(err) {
				t.Errorf("a failed start left a record: %v", err)
			}
		})
	}
	// A missing program on exec and stop too, not only start.
	_, errOut, code := e.run("stop", "--ssh", testutil.SSHHostRoot, "--ssh-ipcluster", "/nonexistent/ipcluster", "--cluster-id", "never")
	if code != ExitError || !strings.Contains(errOut, "pass --ssh-ipcluster") {
		t.Errorf("stop with a missing remote ipcluster: exit %d\n%s", code, errOut)
	}
}

// TestRemoteE2ELoginNamespace: the login node is a network namespace
// whose loopback this machine cannot reach: the controller listens there
// on 127.0.0.1, so exec from the laptop works only through the ssh tunnel
// (a direct connection to the file's address would find nothing).
func TestRemoteE2ELoginNamespace(t *testing.T) {
	ns := testutil.LoginNamespace(t)
	r := newRemoteE2E(t, ns.Host, nil)
	cid := fmt.Sprintf("remote-ns-%d", os.Getpid())
	r.remote(0, "start", "-n", "2", "--daemonize", "--cluster-id", cid)
	info, err := wire.LoadClientInfo(wire.ClientFile(r.profile, cid))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing of the controller is reachable from here directly.
	addr := fmt.Sprintf("127.0.0.1:%d", info.Registration)
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		conn.Close()
		t.Fatalf("the controller's %s is reachable without the tunnel: the test proves nothing", addr)
	}
	out, _ := r.remote(0, "exec", "--cluster-id", cid, `fmt.Println("hi")`)
	if byEngine(out) != "[stdout:0] hi\n[stdout:1] hi\n" {
		t.Errorf("exec through the tunnel:\n%s", out)
	}
	// The laptop's own list names it under the clusters started elsewhere.
	out, _ = r.must(0, "list")
	if !strings.Contains(out, "Started on other hosts") || !regexp.MustCompile(cid+`\s+`+ns.Host+`\s+-`).MatchString(out) {
		t.Errorf("list on the laptop does not show the remote cluster:\n%s", out)
	}
	// Without --ssh: the laptop's record makes the client tunnel too.
	out, _ = r.must(0, "exec", "--cluster-id", cid, `fmt.Println("again")`)
	if byEngine(out) != "[stdout:0] again\n[stdout:1] again\n" {
		t.Errorf("exec from the laptop's client file:\n%s", out)
	}
	// A controller killed on the login node: exec says so at once (12)
	// instead of waiting for it, and stop cleans up the engines it left.
	for _, p := range r.remoteProcesses() {
		if f := strings.Fields(p); len(f) > 2 && f[2] == "controller" {
			pid, _ := strconv.Atoi(f[0])
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, errOut := r.remote(ExitNoCluster, "exec", "--cluster-id", cid, `fmt.Println("dead")`)
	// Its engines may notice and exit first; then the cluster is gone.
	if !strings.Contains(errOut, "has died; 'ipcluster stop --ssh "+r.host+"' stops what it left") &&
		!strings.Contains(errOut, "no cluster "+cid) {
		t.Errorf("exec on a dead remote controller:\n%s", errOut)
	}
	r.must(0, "stop", "--cluster-id", cid, "--stop-grace", "2")
	r.checkStopped(cid)
}

// TestRemoteE2EPureGoLaptop is the laptop without libzmq: the login node's
// controller binds every interface for engines (CURVE on for them, as for
// compute nodes), and a CGO_ENABLED=0 ipcluster on the laptop — no CURVE in
// its transport — still runs code there, because `start --ssh` puts the
// client ports on the login node's loopback (unencrypted, reached through
// the tunnel) unless told otherwise.
func TestRemoteE2EPureGoLaptop(t *testing.T) {
	r := newRemoteE2E(t, testutil.SSHHostRoot, nil)
	pure := filepath.Join(t.TempDir(), "ipcluster-nocgo")
	build := exec.Command("go", "build", "-o", pure, "../../cmd/ipcluster")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	cid := fmt.Sprintf("remote-pure-%d", os.Getpid())
	// Engines reach the controller through --location 127.0.0.1: the test
	// never uses this machine's external address.
	r.remote(0, "start", "-n", "2", "--ip=*", "--location=127.0.0.1", "--daemonize", "--cluster-id", cid)
	defer r.run("stop", "--cluster-id", cid, "--stop-grace", "2", "--ssh", r.host, "--ssh-ipcluster", r.ipclusterWords())
	info, err := wire.LoadClientInfo(wire.ClientFile(r.profile, cid))
	if err != nil {
		t.Fatal(err)
	}
	if info.Interface != "tcp://127.0.0.1" || info.CurveServerKey != nil {
		t.Errorf("laptop's client file: interface %q, curve key %v; want the login node's loopback, unencrypted",
			info.Interface, info.CurveServerKey)
	}
	remoteEngineFile := strings.TrimSpace(r.ssh.Run(t, r.host, "ls "+r.remoteIPy+"/profile_default/security/ipcontroller-"+cid+"-engine.json"))
	eng, err := wire.LoadEngineInfo(remoteEngineFile)
	if err != nil {
		t.Fatal(err)
	}
	if eng.CurveServerKey == nil || eng.Interface != "tcp://0.0.0.0" {
		t.Errorf("login node's engine file: interface %q, curve key %v; want every interface with CURVE", eng.Interface, eng.CurveServerKey)
	}
	cgoBin := r.bin
	r.bin = pure
	defer func() { r.bin = cgoBin }()
	out, _ := r.remote(0, "exec", "--cluster-id", cid, `fmt.Println(6*7)`)
	if byEngine(out) != "[stdout:0] 42\n[stdout:1] 42\n" {
		t.Errorf("pure-Go exec through the tunnel:\n%s", out)
	}
}
