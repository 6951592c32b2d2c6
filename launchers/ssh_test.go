package launchers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

func TestParseSSHHosts(t *testing.T) {
	got, err := parseSSHHosts([]string{"a:4", " me@b:8 ", "c", "c2:2222:3", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []sshHostCount{{"a", 4}, {"me@b", 8}, {"c", 1}, {"c2:2222", 3}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"a:0", "a:x", "a:-1", "-oProxyCommand=x:1", ":3", "a b:1"} {
		if _, err := parseSSHHosts([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseSSHHosts([]string{"a:1", "a:2"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a host named twice: %v", err)
	}
	o := &SSHOptions{Hosts: []string{"a:4", "b:8"}}
	if n := o.DefaultEngines(); n != 12 {
		t.Errorf("DefaultEngines = %d", n)
	}
}

func TestPlaceEngines(t *testing.T) {
	hosts := []sshHostCount{{"a", 2}, {"b", 2}}
	for n, want := range map[int][]sshHostCount{
		1: {{"a", 1}},
		3: {{"a", 2}, {"b", 1}},
		4: {{"a", 2}, {"b", 2}},
	} {
		got, err := placeEngines(hosts, n)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("n=%d: %v %v, want %v", n, got, err, want)
		}
	}
	if _, err := placeEngines(hosts, 5); err == nil || !strings.Contains(err.Error(), "room for 4 engines, but 5") {
		t.Errorf("too many: %v", err)
	}
	if _, err := placeEngines(nil, 1); err == nil || !strings.Contains(err.Error(), "--hosts") {
		t.Errorf("no hosts: %v", err)
	}
}

func TestDefaultRemoteProfileDir(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	if got := defaultRemoteProfileDir(filepath.Join(home, ".ipython", "profile_x")); got != "~/.ipython/profile_x" {
		t.Errorf("under home: %q", got)
	}
	if got := defaultRemoteProfileDir("/scratch/me/ipy/profile_mpi"); got != "~/.ipython/profile_mpi" {
		t.Errorf("outside home: %q", got)
	}
}

func TestSSHCommand(t *testing.T) {
	self := testutil.IPCluster(t)
	t.Setenv(protocol.EnvRemoteIPCluster, "")
	cfg := Config{Command: []string{self, EngineRole}, Args: []string{"--debug"}}
	argv, ours, err := sshCommand(cfg, &SSHOptions{}, EngineRole)
	if err != nil || !ours || !slices.Equal(argv, []string{"ipcluster", "engine", "--debug"}) {
		t.Errorf("default: %q %v %v", argv, ours, err)
	}
	t.Setenv(protocol.EnvRemoteIPCluster, "~/bin/ipcluster")
	if argv, _, _ := sshCommand(cfg, &SSHOptions{}, EngineRole); argv[0] != "~/bin/ipcluster" {
		t.Errorf("$%s: %q", protocol.EnvRemoteIPCluster, argv)
	}
	if argv, _, _ := sshCommand(cfg, &SSHOptions{RemoteIPCluster: []string{"/opt/ipp"}}, EngineRole); argv[0] != "/opt/ipp" {
		t.Errorf("--remote-ipcluster: %q", argv)
	}
	// A program of the user's (engine.Main) is a path on the hosts.
	cfg.Command = []string{"./mysim", "--x"}
	if argv, ours, _ := sshCommand(cfg, &SSHOptions{}, EngineRole); ours || !slices.Equal(argv, []string{"./mysim", "--x", "--debug"}) {
		t.Errorf("custom: %q %v", argv, ours)
	}
	if got := remoteWords([]string{"~/bin/ipcluster", "engine", "a b"}); got != `"$HOME"/bin/ipcluster engine 'a b'` {
		t.Errorf("remoteWords: %s", got)
	}
}

// TestSSHMarkers: only whole lines count, so a login script's chatter is
// never taken for a pid.
func TestSSHMarkers(t *testing.T) {
	out := "Welcome __ipp_pid_0=66__\n__ipp_pid_3=123__\n  __ipp_pid_4=9__\n__ipp_host=node1.x__\n__ipp_done=1__\n"
	ms := parseMarkers([]byte(out))
	want := []marker{{"pid", 3, "123"}, {"host", -1, "node1.x"}, {"done", -1, "1"}}
	if !slices.Equal(ms, want) {
		t.Errorf("markers %+v, want %+v", ms, want)
	}
}

func TestSameHostName(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"vm", "vm", true}, {"vm", "VM.example.org", true}, {"vm.a", "vm.b", false}, {"vm", "", false}, {"a", "b", false},
	} {
		if got := sameHostName(c.a, c.b); got != c.want {
			t.Errorf("sameHostName(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// runSh runs a script with the local sh, as `ssh host sh -s` would on a
// host.
func runSh(t *testing.T, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-s")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh -s: %v\n%s\nscript:\n%s", err, stderr.String(), script)
	}
	return string(out)
}

// TestSSHScripts runs the launcher's remote scripts with this host's sh:
// the start script detaches processes in their own sessions with the
// secret only in their environment, the status script tells live from
// dead and recycled pids, and the stop script kills a process that
// ignores SIGTERM and removes the logs.
func TestSSHScripts(t *testing.T) {
	dir := t.TempDir()
	g := &remoteGroup{cfg: Config{ProfileDir: dir, ClusterID: "c", Env: map[string]string{"OMPI_X": "a b"}, StopGrace: time.Second},
		argv: []string{"sh", "-c", `trap "" TERM; echo started "$IPP_ENGINE_INDEX"; while :; do sleep 1; done`, "sh"}, rpd: dir}
	secret := `{"key": "s3cret-'quoted'"}`
	exports, err := g.exports(map[string]string{protocol.EnvConnectionInfo: secret, protocol.EnvEngineIDBase: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.exports(map[string]string{"BAD-NAME": "x"}); err == nil {
		t.Error("a variable name the shell cannot export was accepted")
	}
	var lines []string
	logs := map[int]string{}
	for i := range 2 {
		logs[i] = filepath.Join(dir, "log", "e"+strconv.Itoa(i)+".log")
		lines = append(lines, startLine(i, protocol.EnvEngineIndex+"="+strconv.Itoa(i), remoteWords(g.argv), logs[i]))
	}
	out := runSh(t, g.startScript(exports, []string{filepath.Join(dir, "log")}, lines))
	var procs []*remoteProc
	for _, m := range parseMarkers([]byte(out)) {
		if m.key == "pid" {
			pid, _ := strconv.Atoi(m.value)
			procs = append(procs, &remoteProc{PID: pid, Index: m.index, Output: logs[m.index], State: StateRunning, Group: strings.Contains(out, "__ipp_setsid=1__")})
		}
	}
	if len(procs) != 2 {
		t.Fatalf("start script output %q", out)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
	for _, p := range procs {
		testutil.Eventually(t, 10*time.Second, func() bool {
			b, _ := os.ReadFile(p.Output)
			return strings.Contains(string(b), "started "+strconv.Itoa(p.Index))
		}, "engine %d did not start with its index: log %s", p.Index, p.Output)
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
		environ, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/environ")
		if len(cmdline) == 0 || bytes.Contains(cmdline, []byte("s3cret")) {
			t.Errorf("pid %d command line %q (the key must stay off it)", p.PID, cmdline)
		}
		if !bytes.Contains(environ, []byte(protocol.EnvConnectionInfo+"="+secret)) || !bytes.Contains(environ, []byte("OMPI_X=a b")) {
			t.Errorf("pid %d environment lacks the connection info or --env: %q", p.PID, environ)
		}
		if pgid, _ := syscall.Getpgid(p.PID); p.Group && pgid != p.PID {
			t.Errorf("pid %d is in process group %d, not its own", p.PID, pgid)
		}
	}

	alive := func(ps []*remoteProc, prog string) []int {
		script := aliveFunc + "for p in " + pidList(ps) + "; do if ipp_alive \"$p\" " + ShellQuote(prog) + "; then echo \"__ipp_alive=${p}__\"; fi; done; echo __ipp_done=1__\n"
		var pids []int
		for _, m := range parseMarkers([]byte(runSh(t, script))) {
			if m.key == "alive" {
				pid, _ := strconv.Atoi(m.value)
				pids = append(pids, pid)
			}
		}
		return pids
	}
	gone := &remoteProc{PID: 1 << 22, State: StateRunning}
	if got := alive(append(procs, gone), "sh"); len(got) != 2 {
		t.Errorf("alive %v, want both engines and not pid %d", got, gone.PID)
	}
	// A pid now running another program counts as gone.
	if got := alive(procs, "not-our-program"); len(got) != 0 {
		t.Errorf("alive as another program: %v", got)
	}

	extra := filepath.Join(dir, "security", "sent.json")
	if err := os.MkdirAll(filepath.Dir(extra), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(extra, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out = runSh(t, g.stopScript(procs, []string{logs[0], logs[1], extra}))
	var killed []string
	for _, m := range parseMarkers([]byte(out)) {
		switch m.key {
		case "killed":
			killed = append(killed, m.value)
		case "left":
			t.Errorf("pid %s left after stop", m.value)
		}
	}
	if len(killed) != 2 {
		t.Errorf("processes that ignore SIGTERM were not reported killed: %q", out)
	}
	t.Logf("stop with a 1 s grace took %v", time.Since(start))
	for _, p := range procs {
		if PIDAlive(p.PID) {
			t.Errorf("pid %d alive after the stop script", p.PID)
		}
	}
	for _, f := range []string{logs[0], logs[1], extra} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed: %v", f, err)
		}
	}
}

// sshHosts returns the test sshd's root and non-root hosts, with
// IPP_SSH_ARGS pointing at its configuration.
func sshHosts(t *testing.T) *testutil.SSHServer {
	t.Helper()
	s := testutil.SSH(t)
	s.SetEnv(t)
	return s
}

// TestSSHEngineSetReal drives the engine-set launcher against the real
// sshd with a stand-in program (sh loops) instead of engines: start on two
// host names, restore in a "new process" from the saved handle, a process
// killed with -9 seen as gone, signals, and a stop that leaves nothing.
func TestSSHEngineSetReal(t *testing.T) {
	s := sshHosts(t)
	dir := s.SharedDir(t)
	prog := `trap 'echo got-usr1' USR1; echo up $IPP_ENGINE_INDEX $IPP_ENGINE_ID_BASE; while :; do sleep 1; done`
	host, _ := os.Hostname()
	conn := []byte(`{"interface": "tcp://127.0.0.1", "location": "` + host + `", "registration": 1, "key": "k"}`)
	cfg := Config{
		ProfileDir:     filepath.Join(dir, "local"),
		ClusterID:      "t" + strconv.Itoa(os.Getpid()),
		EngineSetID:    "1",
		Command:        []string{"sh", "-c", prog, "sh"},
		ConnectionInfo: conn,
		EngineIDBase:   10,
		StopGrace:      2 * time.Second,
		// Under each account's own home: the two accounts cannot share
		// a 0700 directory.
		Options: &SSHOptions{Hosts: []string{s.Hosts[1] + ":2", s.Hosts[0] + ":1"}, RemoteProfileDir: "~/.ipython/ipp-test-" + strconv.Itoa(os.Getpid())},
	}
	homes := map[string]string{s.Hosts[0]: "/root", s.Hosts[1]: userHome(t, s.UserName)}
	for _, h := range homes {
		t.Cleanup(func() { os.RemoveAll(filepath.Join(h, ".ipython", "ipp-test-"+strconv.Itoa(os.Getpid()))) })
	}
	local := func(p *remoteProc) string { return filepath.Join(homes[p.Host], strings.TrimPrefix(p.Output, "~/")) }
	l, err := NewSSHEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.Start(ctx, 3); err != nil {
		t.Fatal(err)
	}
	procs := l.snapshot()
	t.Cleanup(func() {
		for _, p := range procs {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	})
	if len(procs) != 3 || procs[0].Host != s.Hosts[1] || procs[2].Host != s.Hosts[0] {
		t.Fatalf("procs %+v", procs)
	}
	for _, p := range procs {
		testutil.Eventually(t, 30*time.Second, func() bool {
			b, _ := os.ReadFile(local(p))
			return strings.Contains(string(b), "up "+strconv.Itoa(p.Index)+" 10")
		}, "process %d (pid %d) did not start with its index and id base", p.Index, p.PID)
	}
	if st := l.Status(); st.Running != 3 || st.State != StateRunning {
		t.Errorf("status %+v", st)
	}

	state, err := l.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Restore(KindEngines, "SSH", Config{}, state)
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Running != 3 {
		t.Errorf("restored status %+v", st)
	}
	if err := r.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		testutil.Eventually(t, 30*time.Second, func() bool {
			b, _ := os.ReadFile(local(p))
			return strings.Contains(string(b), "got-usr1")
		}, "pid %d did not get SIGUSR1", p.PID)
	}
	if err := syscall.Kill(procs[1].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		st := r.Status()
		return st.Running == 2 && st.Exited == 1
	}, "a process killed with -9 was not seen as gone: %+v", r.Status())

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if PIDAlive(p.PID) {
			t.Errorf("pid %d alive after Stop", p.PID)
		}
	}
	if st := r.Status(); st.State != StateAfter || st.Running != 0 {
		t.Errorf("status after stop %+v", st)
	}
	// Logs of processes stopped are removed; the one killed -9 stays.
	for i, p := range procs {
		_, err := os.Stat(local(p))
		if kept := err == nil; kept != (i == 1) {
			t.Errorf("log of process %d kept=%v (%v): only that of the process killed with -9 stays", i, kept, err)
		}
	}
	if _, err := Restore(KindEngines, "ssh", Config{}, state); !errors.Is(err, ErrNotRunning) {
		t.Errorf("restore after stop: %v", err)
	}
}

func userHome(t *testing.T, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.HomeDir
}

// TestSSHEngineSetErrors: a bad host starts nothing anywhere and its
// error is sshx's, naming the host; a controller on loopback elsewhere is
// refused before anything starts.
func TestSSHEngineSetErrors(t *testing.T) {
	s := sshHosts(t)
	dir := s.SharedDir(t)
	base := Config{ProfileDir: filepath.Join(dir, "local"), ClusterID: "e", Command: []string{"sleep", "300"},
		ConnectionInfo: []byte(`{"interface": "tcp://127.0.0.1", "location": "some-other-host", "registration": 1}`)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := func(hosts ...string) error {
		cfg := base
		cfg.Options = &SSHOptions{Hosts: hosts, RemoteProfileDir: filepath.Join(dir, "remote")}
		l, err := NewSSHEngineSet(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Start(ctx, 1)
		if len(l.snapshot()) != 0 {
			t.Errorf("%v: processes started despite %v", hosts, err)
		}
		return err
	}
	err := start(testutil.SSHHostUnreachable + ":1")
	var se *sshx.Error
	if !errors.As(err, &se) || se.Kind != sshx.Unreachable || !strings.Contains(err.Error(), testutil.SSHHostUnreachable) {
		t.Errorf("unreachable host: %v", err)
	}
	err = start(s.Hosts[1] + ":1")
	if err == nil || !strings.Contains(err.Error(), "listens on 127.0.0.1 only (on host some-other-host)") || !strings.Contains(err.Error(), "--ip='*'") {
		t.Errorf("loopback controller elsewhere: %v", err)
	}
	base.Command = []string{"/nonexistent/prog"}
	err = start(s.Hosts[1] + ":1")
	if !errors.As(err, &se) || se.Kind != sshx.CommandNotFound || !strings.Contains(err.Error(), "/nonexistent/prog") {
		t.Errorf("missing program: %v", err)
	}
}

func TestSSHStateRoundTrip(t *testing.T) {
	g := &remoteGroup{cfg: Config{ProfileDir: "/p", ClusterID: "c", EngineSetID: "7"}, argv: []string{"ipcluster", "engine"}, rpd: "~/.ipython/profile_default",
		procs: []*remoteProc{{Host: "a", PID: 12, Index: 0, Output: "~/x.log", State: StateAfter, Group: true}}, files: map[string][]string{"a": {"~/f"}}, pollErr: map[string]error{}}
	g.started = true
	l := &SSHEngineSet{remoteGroup: g, requested: 1}
	raw, err := l.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var st sshGroupState
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.N != 1 || st.EngineSetID != "7" || len(st.Procs) != 1 || st.Procs[0].PID != 12 || !st.Procs[0].Group || st.Files["a"][0] != "~/f" || st.RemoteProfileDir != "~/.ipython/profile_default" {
		t.Errorf("state %s", raw)
	}
	// Every process known gone: nothing to reattach to, without asking.
	if _, err := restoreSSHEngineSet(Config{}, raw); !errors.Is(err, ErrNotRunning) {
		t.Errorf("restore of a finished set: %v", err)
	}
}

// TestHostFactsSameMachine: a host is this machine by its machine id when
// both have one (host names repeat: every container is "localhost"), else
// by its name.
func TestHostFactsSameMachine(t *testing.T) {
	self, _ := os.Hostname()
	id, _ := os.ReadFile("/etc/machine-id")
	mid := strings.TrimSpace(string(id))
	if (hostFacts{Hostname: "elsewhere.example"}).sameMachine() {
		t.Error("another name without a machine id counted as this machine")
	}
	if !(hostFacts{Hostname: self}).sameMachine() {
		t.Error("this host's name without a machine id is not this machine")
	}
	if mid != "" {
		if (hostFacts{Hostname: self, MachineID: "0123456789abcdef"}).sameMachine() {
			t.Error("another machine id with the same host name counted as this machine")
		}
		if !(hostFacts{Hostname: "other", MachineID: mid}).sameMachine() {
			t.Error("this machine id under another name is not this machine")
		}
	}
}
