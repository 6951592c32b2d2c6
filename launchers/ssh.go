package launchers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/sshx"
)

// SSHOptions are the settings of the SSH launchers. Their json names are
// their flag names (see Options).
type SSHOptions struct {
	// Hosts are the engine hosts with their engine counts, "host:N",
	// "user@host:N" or "host:port:N" (a host without ":N" takes one
	// engine). Engines are placed in this order, up to start's n.
	Hosts []string `json:"hosts,omitempty"`
	// ControllerHost is where --controller ssh runs the controller.
	ControllerHost string `json:"controller-host,omitempty"`
	// RemoteIPCluster is our ipcluster program on the hosts (words;
	// default $IPP_REMOTE_IPCLUSTER, else "ipcluster" from the remote
	// PATH).
	RemoteIPCluster []string `json:"remote-ipcluster,omitempty"`
	// RemoteProfileDir is the profile directory on the hosts (default:
	// the local profile's path relative to the local home, under the
	// remote home; ~/.ipython/<profile_name> when it is not under home).
	RemoteProfileDir string `json:"remote-profile-dir,omitempty"`
	// SSHArgs are extra ssh arguments for these launchers' connections
	// (after $IPP_SSH_ARGS), e.g. "-i ~/.ssh/cluster_key".
	SSHArgs []string `json:"ssh-args,omitempty"`
}

// BindFlags implements Options.
func (o *SSHOptions) BindFlags(fs *pflag.FlagSet) {
	const s = "ssh launchers: "
	fs.StringSliceVar(&o.Hosts, "hosts", nil, s+"engine hosts and counts, comma-separated: host1:4,user@host2:8 (host:port:N with a port; -n defaults to the sum)")
	fs.StringVar(&o.ControllerHost, "controller-host", "", s+"host that runs the controller for --controller ssh ([user@]host[:port])")
	WordsVar(fs, &o.RemoteIPCluster, "remote-ipcluster", s+"this project's ipcluster on the hosts (default $"+protocol.EnvRemoteIPCluster+", else ipcluster from the remote PATH)")
	fs.StringVar(&o.RemoteProfileDir, "remote-profile-dir", "", s+"profile directory on the hosts (default: the local profile's path under the remote home)")
	WordsVar(fs, &o.SSHArgs, "ssh-args", s+"extra ssh arguments (after $IPP_SSH_ARGS), e.g. \"-i ~/.ssh/key\"")
}

// DefaultEngines implements EngineCounter: the engines --hosts asks for.
func (o *SSHOptions) DefaultEngines() int {
	hosts, err := parseSSHHosts(o.Hosts)
	if err != nil {
		return 0
	}
	total := 0
	for _, h := range hosts {
		total += h.N
	}
	return total
}

// EngineCounter is an engine launcher's settings that say how many
// engines to start when the user gives no count (the ssh launcher's
// --hosts host1:4,host2:8 means 12).
type EngineCounter interface {
	// DefaultEngines is that count, 0 when the settings do not say.
	DefaultEngines() int
}

// sshHostCount is one --hosts entry.
type sshHostCount struct {
	Dest string // as ssh takes it: host, user@host, host:port
	N    int
}

// parseSSHHosts reads --hosts entries. The count is the last ":N", so
// "host:2222:4" is port 2222 with 4 engines; a host named twice is an
// error rather than a silent sum, since the order matters for ids.
func parseSSHHosts(entries []string) ([]sshHostCount, error) {
	var out []sshHostCount
	seen := map[string]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		dest, n := e, 1
		if i := strings.LastIndexByte(e, ':'); i >= 0 && !strings.Contains(e[i:], "]") {
			v, err := strconv.Atoi(e[i+1:])
			if err != nil || v < 1 {
				return nil, fmt.Errorf("--hosts %q: the engine count after the last ':' must be a positive number (host:N, user@host:N, host:port:N)", e)
			}
			dest, n = e[:i], v
		}
		if dest == "" || strings.HasPrefix(dest, "-") || strings.ContainsAny(dest, " \t\n,") {
			return nil, fmt.Errorf("--hosts %q: bad host name", e)
		}
		if seen[dest] {
			return nil, fmt.Errorf("--hosts names %s twice; give its total count once", dest)
		}
		seen[dest] = true
		out = append(out, sshHostCount{Dest: dest, N: n})
	}
	return out, nil
}

// placeEngines fills the hosts in order with n engines: n is an upper
// bound per host, as ipyparallel's SSH engine set does. More engines than
// the hosts hold is an error, since start would then wait for engines
// that never come.
func placeEngines(hosts []sshHostCount, n int) ([]sshHostCount, error) {
	if len(hosts) == 0 {
		return nil, errors.New("the ssh engine launcher needs --hosts host1:N1,host2:N2")
	}
	var out []sshHostCount
	left := n
	for _, h := range hosts {
		if left == 0 {
			break
		}
		k := min(h.N, left)
		out = append(out, sshHostCount{Dest: h.Dest, N: k})
		left -= k
	}
	if left > 0 {
		total := n - left
		var parts []string
		for _, h := range hosts {
			parts = append(parts, fmt.Sprintf("%s:%d", h.Dest, h.N))
		}
		return nil, fmt.Errorf("--hosts %s has room for %d engines, but %d were asked for: raise the counts (host:N) or lower -n", strings.Join(parts, ","), total, n)
	}
	return out, nil
}

// defaultRemoteProfileDir is where the hosts keep the profile: the local
// profile's path relative to the local home, under the remote home (as
// ipyparallel), or ~/.ipython/<base name> when it is not under home.
func defaultRemoteProfileDir(local string) string {
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		if rel, err := filepath.Rel(home, local); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return "~/" + filepath.ToSlash(rel)
		}
	}
	return "~/.ipython/" + filepath.Base(local)
}

// remoteIPCluster is our ipcluster on the hosts.
func (o *SSHOptions) remoteIPCluster() ([]string, error) {
	if len(o.RemoteIPCluster) > 0 {
		return o.RemoteIPCluster, nil
	}
	if v := strings.TrimSpace(os.Getenv(protocol.EnvRemoteIPCluster)); v != "" {
		w, err := SplitWords(v)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", protocol.EnvRemoteIPCluster, err)
		}
		return w, nil
	}
	return []string{"ipcluster"}, nil
}

// sshCommand is the remote command line of a role, and whether it is our
// ipcluster (which the launcher checks on each host before starting).
// The command the Cluster passes is this program's path on this host with
// the role: on the hosts that becomes the remote ipcluster. Any other
// command (--engine-cmd ./mysim) is taken as a path on the hosts.
func sshCommand(cfg Config, o *SSHOptions, role string) (argv []string, ours bool, err error) {
	cmd := cfg.Command
	remote, err := o.remoteIPCluster()
	if err != nil {
		return nil, false, err
	}
	switch {
	case len(cmd) == 0:
		argv, ours = append(slices.Clone(remote), role), true
	case len(cmd) >= 2 && cmd[1] == role && CheckIPCluster(cmd[0]) == nil:
		argv, ours = append(append(slices.Clone(remote), role), cmd[2:]...), true
	default:
		argv = slices.Clone(cmd)
	}
	return append(argv, cfg.Args...), ours, nil
}

// remoteWords quotes a command for the remote shell; a leading "~/" in
// the program is the remote home.
func remoteWords(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	s := sshx.RemotePath(argv[0])
	if len(argv) > 1 {
		s += " " + ShellQuote(argv[1:]...)
	}
	return s
}

// remoteProc is one process on a host, as saved in the cluster file.
type remoteProc struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Index is the engine's index within its set (0 for a controller).
	Index int `json:"index"`
	// Output is its log file on the host.
	Output string `json:"output_file"`
	State  State  `json:"state"`
	// Group: the process leads its own process group (setsid was there),
	// which signals then reach as a whole.
	Group bool `json:"group,omitempty"`

	stopping bool // Stop signalled it: its log goes with it
}

// sshPollInterval is how often Status asks the hosts whether their
// processes live; one round trip on the shared connection per host.
const sshPollInterval = time.Second

// sshTimeout bounds every remote command but the wait of Stop.
const sshTimeout = 60 * time.Second

// remoteGroup is what the SSH controller and engine launchers share:
// processes on other hosts, started from one command line, watched by
// polling with `kill -0`, stopped with kill.
type remoteGroup struct {
	cfg  Config
	opts SSHOptions
	role string
	argv []string // the remote command
	ours bool     // argv is our ipcluster
	rpd  string   // the remote profile directory

	mu       sync.Mutex
	hosts    map[string]*sshx.Host
	procs    []*remoteProc
	files    map[string][]string // per host: files we put there
	started  bool
	lastPoll time.Time
	polling  bool
	pollErr  map[string]error // per host: the last poll's failure
}

func newRemoteGroup(cfg Config, role string) (*remoteGroup, error) {
	if cfg.ProfileDir == "" {
		return nil, errors.New("launchers: no profile directory")
	}
	g := &remoteGroup{cfg: cfg, role: role, hosts: map[string]*sshx.Host{}, files: map[string][]string{}, pollErr: map[string]error{}}
	if o, ok := cfg.Options.(*SSHOptions); ok && o != nil {
		g.opts = *o
	}
	var err error
	if g.argv, g.ours, err = sshCommand(cfg, &g.opts, role); err != nil {
		return nil, err
	}
	g.rpd = g.opts.RemoteProfileDir
	if g.rpd == "" {
		g.rpd = defaultRemoteProfileDir(cfg.ProfileDir)
	}
	if role == EngineRole {
		g.argv = withClusterArgs(g.argv, g.rpd, cfg.ClusterID)
	}
	return g, nil
}

// host returns the connection to dest, one per destination.
func (g *remoteGroup) host(dest string) (*sshx.Host, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if h := g.hosts[dest]; h != nil {
		return h, nil
	}
	h, err := sshx.New(dest, g.opts.SSHArgs...)
	if err != nil {
		return nil, err
	}
	g.hosts[dest] = h
	return h, nil
}

// program is the base name that recognises our processes on a host, so
// that a recycled pid is never taken for one of them.
func (g *remoteGroup) program() string {
	if len(g.argv) == 0 {
		return ""
	}
	return path.Base(g.argv[0])
}

// logPath is a process's log on the hosts.
func (g *remoteGroup) logPath(name string) string {
	return path.Join(g.rpd, "log", name)
}

// hostFacts is what the preflight learns about a host.
type hostFacts struct {
	Hostname, MachineID string
}

// markerRe finds the lines our remote scripts print to report back: the
// whole line, so nothing a login script prints can be taken for one.
var markerRe = regexp.MustCompile(`(?m)^__ipp_([a-z_]+)(?:_(\d+))?=([^\n]*)__$`)

type marker struct {
	key   string
	index int // -1 without an index
	value string
}

func parseMarkers(out []byte) []marker {
	var ms []marker
	for _, m := range markerRe.FindAllStringSubmatch(string(out), -1) {
		idx := -1
		if m[2] != "" {
			idx, _ = strconv.Atoi(m[2])
		}
		ms = append(ms, marker{key: m[1], index: idx, value: strings.TrimSpace(m[3])})
	}
	return ms
}

// preflight logs in to a host and checks the remote program before
// anything is started: the errors of an unreachable host, a refused key
// or a missing ipcluster (sshx's, naming host and command) come first and
// alone, and a Python ipcluster found in the remote PATH is refused.
func (g *remoteGroup) preflight(ctx context.Context, dest string) (hostFacts, error) {
	h, err := g.host(dest)
	if err != nil {
		return hostFacts{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, sshTimeout)
	defer cancel()
	if err := h.Connect(ctx); err != nil {
		return hostFacts{}, err
	}
	prog := remoteWords(g.argv[:1])
	var check string
	if g.ours {
		check = prog + " --version || exit $?; "
	} else {
		// Any program: only whether the shell finds it (127 if not).
		check = "command -v " + prog + " >/dev/null 2>&1 || exit 127; "
	}
	script := check + `echo "__ipp_host=$(hostname 2>/dev/null || uname -n)__"; echo "__ipp_machine=$(cat /etc/machine-id 2>/dev/null)__"`
	out, err := h.Run(ctx, script, nil)
	if err != nil {
		return hostFacts{}, g.explainProgram(dest, err)
	}
	if g.ours && !strings.HasPrefix(strings.TrimSpace(string(out)), "ipcluster version ") {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return hostFacts{}, fmt.Errorf("ssh %s: %s is not this project's ipcluster (its --version says %q; Python ipyparallel's ipcluster cannot play our roles): give ours with --remote-ipcluster or $%s",
			h.Name(), strings.Join(g.argv[:1], " "), first, protocol.EnvRemoteIPCluster)
	}
	var f hostFacts
	for _, m := range parseMarkers(out) {
		switch m.key {
		case "host":
			f.Hostname = m.value
		case "machine":
			f.MachineID = m.value
		}
	}
	return f, nil
}

// explainProgram adds to sshx's "command not found" which setting names
// the program.
func (g *remoteGroup) explainProgram(dest string, err error) error {
	var se *sshx.Error
	if errors.As(err, &se) && se.Kind == sshx.CommandNotFound {
		// Name the program as the user gave it, not our check script.
		c := *se
		c.Command = g.argv[0]
		err = &c
		if g.ours {
			return fmt.Errorf("%w; give the path of this project's ipcluster on %s with --remote-ipcluster or $%s", err, dest, protocol.EnvRemoteIPCluster)
		}
		return fmt.Errorf("%w; the command must be a program on %s", err, dest)
	}
	return err
}

// sameMachine reports whether a host is this machine: the same
// /etc/machine-id when both have one, else the same host name.
func (f hostFacts) sameMachine() bool {
	if f.MachineID != "" {
		if b, err := os.ReadFile("/etc/machine-id"); err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b)) == f.MachineID
		}
	}
	self, _ := os.Hostname()
	return sameHostName(self, f.Hostname)
}

// sameHostName compares host names, the short form when either is short.
func sameHostName(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if strings.EqualFold(a, b) {
		return true
	}
	as, _, _ := strings.Cut(a, ".")
	bs, _, _ := strings.Cut(b, ".")
	return strings.EqualFold(as, bs) && (!strings.Contains(a, ".") || !strings.Contains(b, "."))
}

// validEnvName is a variable name a POSIX shell can export.
var validEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// exports are the export lines of a start script: the cluster's
// variables, Config.Env and extra. Values travel in the script on ssh's
// standard input, never on a command line that ps would show.
func (g *remoteGroup) exports(extra map[string]string) (string, error) {
	set := map[string]string{protocol.EnvClusterID: g.cfg.ClusterID}
	maps.Copy(set, g.cfg.Env)
	maps.Copy(set, extra)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if !validEnvName.MatchString(k) {
			return "", fmt.Errorf("environment variable name %q cannot be exported by a shell", k)
		}
		fmt.Fprintf(&b, "%s=%s; export %s\n", k, ShellQuote(set[k]), k)
	}
	fmt.Fprintf(&b, "%[1]s=%[2]s; export %[1]s\n", protocol.EnvProfileDir, sshx.RemotePath(g.rpd))
	return b.String(), nil
}

// aliveFunc is the shell function that tells whether pid $1 is still one
// of ours: alive, not a zombie, and (when $2 is given) with a command line
// naming our program, so that a recycled pid counts as gone. Linux has
// /proc; elsewhere ps answers, and without either kill -0 decides.
const aliveFunc = `ipp_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    ipp_s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    ipp_a=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null)
  else
    ipp_s=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
    ipp_a=$(ps -o args= -p "$1" 2>/dev/null)
  fi
  case "$ipp_s" in Z*|X*) return 1;; esac
  [ -z "$2" ] && return 0
  case "$ipp_a" in *"$2"*) return 0;; esac
  return 1
}
`

// startLine is one detached process of a start script: its own session
// (setsid when the host has it), immune to the hang-up of the ssh
// session, stdin from /dev/null and output to its log. The process
// reports its own pid through fd 3 before it becomes the program, which
// holds even where setsid forks, then closes it, so that ssh returns.
func startLine(index int, vars, argv, logFile string) string {
	return fmt.Sprintf("%s $ipp_setsid sh -c 'echo \"__ipp_pid_%d=$$__\" >&3; exec 3>&-; exec nohup \"$@\"' sh %s 3>&1 > %s 2>&1 < /dev/null &\n",
		vars, index, argv, sshx.RemotePath(logFile))
}

// startScript is the script that starts the processes on one host.
func (g *remoteGroup) startScript(exports string, mkdirs []string, lines []string) string {
	var b strings.Builder
	b.WriteString("umask 077\n")
	for _, d := range mkdirs {
		fmt.Fprintf(&b, "mkdir -p %s || exit 1\n", sshx.RemotePath(d))
	}
	b.WriteString(exports)
	b.WriteString("if command -v setsid >/dev/null 2>&1; then ipp_setsid=setsid; echo __ipp_setsid=1__; else ipp_setsid=; fi\n")
	for _, l := range lines {
		b.WriteString(l)
	}
	b.WriteString("echo __ipp_done=1__\n")
	return b.String()
}

// launch runs a start script on a host and returns the pids it reported
// by index. Every expected index must report: a missing one means the
// script failed halfway, and whatever did start is returned with the
// error so the caller can stop it.
func (g *remoteGroup) launch(ctx context.Context, dest, script string, want []int) (map[int]int, bool, error) {
	h, err := g.host(dest)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, sshTimeout)
	defer cancel()
	out, runErr := h.Run(ctx, "sh -s", strings.NewReader(script))
	pids := map[int]int{}
	group, done := false, false
	for _, m := range parseMarkers(out) {
		switch m.key {
		case "pid":
			if pid, err := strconv.Atoi(m.value); err == nil && pid > 0 && m.index >= 0 {
				pids[m.index] = pid
			}
		case "setsid":
			group = true
		case "done":
			done = true
		}
	}
	if runErr != nil {
		return pids, group, runErr
	}
	// The processes were there a moment ago: the next Status need not ask.
	g.mu.Lock()
	g.lastPoll = time.Now()
	g.mu.Unlock()
	var missing []string
	for _, i := range want {
		if _, ok := pids[i]; !ok {
			missing = append(missing, strconv.Itoa(i))
		}
	}
	if len(missing) > 0 || !done {
		return pids, group, fmt.Errorf("ssh %s: the start script did not report the pids of %s (output: %q)", h.Name(), strings.Join(missing, ","), strings.TrimSpace(string(out)))
	}
	return pids, group, nil
}

// isStarted reports whether Start ran (or a restore found processes).
func (g *remoteGroup) isStarted() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

func (g *remoteGroup) snapshot() []*remoteProc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.procs)
}

// byHost groups processes by host, in first-seen order of the hosts.
func byHost(procs []*remoteProc) ([]string, map[string][]*remoteProc) {
	var order []string
	m := map[string][]*remoteProc{}
	for _, p := range procs {
		if _, ok := m[p.Host]; !ok {
			order = append(order, p.Host)
		}
		m[p.Host] = append(m[p.Host], p)
	}
	return order, m
}

// pidList is the pids of procs as shell words.
func pidList(procs []*remoteProc) string {
	var w []string
	for _, p := range procs {
		w = append(w, strconv.Itoa(p.PID))
	}
	return strings.Join(w, " ")
}

// poll asks one host which of procs still run. An error leaves their
// states as they were: a host that cannot be reached never makes its
// processes count as gone.
func (g *remoteGroup) poll(ctx context.Context, dest string, procs []*remoteProc) (map[int]bool, error) {
	h, err := g.host(dest)
	if err != nil {
		return nil, err
	}
	script := aliveFunc + "for p in " + pidList(procs) + "; do if ipp_alive \"$p\" " + ShellQuote(g.program()) + "; then echo \"__ipp_alive=${p}__\"; fi; done; echo __ipp_done=1__\n"
	out, err := h.Run(ctx, "sh -s", strings.NewReader(script))
	if err != nil {
		return nil, err
	}
	alive := map[int]bool{}
	done := false
	for _, m := range parseMarkers(out) {
		switch m.key {
		case "alive":
			if pid, err := strconv.Atoi(m.value); err == nil {
				alive[pid] = true
			}
		case "done":
			done = true
		}
	}
	if !done {
		return nil, fmt.Errorf("ssh %s: no answer from the status script (output: %q)", h.Name(), strings.TrimSpace(string(out)))
	}
	return alive, nil
}

// refresh polls the hosts whose processes are not known to be gone, when
// the last poll is older than sshPollInterval (or force). One poll runs at
// a time; callers meanwhile see the previous answer.
func (g *remoteGroup) refresh(ctx context.Context, force bool) {
	g.mu.Lock()
	if g.polling || (!force && time.Since(g.lastPoll) < sshPollInterval) {
		g.mu.Unlock()
		return
	}
	var live []*remoteProc
	for _, p := range g.procs {
		if p.State == StateRunning {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		g.mu.Unlock()
		return
	}
	g.polling = true
	g.mu.Unlock()

	order, hosts := byHost(live)
	results := make([]map[int]bool, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, dest := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			results[i], errs[i] = g.poll(pctx, dest, hosts[dest])
		}()
	}
	wg.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	g.polling = false
	g.lastPoll = time.Now()
	for i, dest := range order {
		if errs[i] != nil {
			if prev := g.pollErr[dest]; prev == nil || prev.Error() != errs[i].Error() {
				g.cfg.logger().Warn("asking a host whether its processes run", "host", dest, "err", errs[i])
			}
			g.pollErr[dest] = errs[i]
			continue
		}
		delete(g.pollErr, dest)
		for _, p := range hosts[dest] {
			if !results[i][p.PID] {
				p.State = StateAfter
			}
		}
	}
}

// Status implements Launcher. Exit codes of remote processes are not
// known (nothing waits for them there): an engine set that ended has
// ExitCode -1.
func (g *remoteGroup) Status() Status {
	g.refresh(context.Background(), false)
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Status{State: StateBefore, Total: len(g.procs), ExitCode: -1}
	if len(g.procs) == 0 {
		return st
	}
	var details []string
	order, hosts := byHost(g.procs)
	for _, dest := range order {
		running := 0
		for _, p := range hosts[dest] {
			if p.State == StateRunning {
				running++
			} else {
				st.Exited++
			}
		}
		st.Running += running
		d := fmt.Sprintf("%s: %d/%d running", dest, running, len(hosts[dest]))
		if err := g.pollErr[dest]; err != nil {
			d += " (unreachable: " + err.Error() + ")"
		}
		details = append(details, d)
	}
	st.Detail = strings.Join(details, ", ")
	if st.Running > 0 {
		st.State = StateRunning
	} else {
		st.State = StateAfter
	}
	return st
}

// Wait implements Launcher.
func (g *remoteGroup) Wait(ctx context.Context) error {
	return pollUntil(ctx, func() bool { return g.Status().State == StateAfter })
}

// signalScript signals the listed pids that are still ours: the whole
// process group when the process leads one.
func (g *remoteGroup) signalScript(procs []*remoteProc, name string) string {
	var b strings.Builder
	b.WriteString(aliveFunc)
	prog := ShellQuote(g.program())
	for _, p := range procs {
		if p.Group {
			fmt.Fprintf(&b, "ipp_alive %d %s && { kill -s %s -- -%d 2>/dev/null || kill -s %s %d; }\n", p.PID, prog, name, p.PID, name, p.PID)
		} else {
			fmt.Fprintf(&b, "ipp_alive %d %s && kill -s %s %d\n", p.PID, prog, name, p.PID)
		}
	}
	b.WriteString("echo __ipp_done=1__\n")
	return b.String()
}

// signalHost sends a signal to procs on one host.
func (g *remoteGroup) signalHost(ctx context.Context, dest string, procs []*remoteProc, sig syscall.Signal) error {
	name, ok := signalNames[sig]
	if !ok {
		// Numbers differ between systems (SIGUSR1 is 10 on Linux, 30 on
		// macOS): only names are sent.
		return fmt.Errorf("signal %d has no name every system agrees on", int(sig))
	}
	h, err := g.host(dest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sshTimeout)
	defer cancel()
	_, err = h.Run(ctx, "sh -s", strings.NewReader(g.signalScript(procs, name)))
	return err
}

// Signal implements Launcher: `kill -s SIG` on each host, to the process
// groups of the processes still running.
func (g *remoteGroup) Signal(sig syscall.Signal) error {
	order, hosts := byHost(g.liveProcs())
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, dest := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.signalHost(context.Background(), dest, hosts[dest], sig)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (g *remoteGroup) liveProcs() []*remoteProc {
	g.mu.Lock()
	defer g.mu.Unlock()
	var live []*remoteProc
	for _, p := range g.procs {
		if p.State == StateRunning {
			live = append(live, p)
		}
	}
	return live
}

// Stop implements Launcher, host by host at once, one ssh command per
// host: SIGTERM to each process (group), a wait until they are gone or
// the grace period ends, SIGKILL to what is left, a last check, and a
// SIGKILL sweep of the groups so that nothing an engine started outlives
// it. Processes still there are named in the error. The logs of the
// processes it stopped, and the files the launcher put on the hosts, are
// removed. The waiting happens on the host: one round trip instead of
// one per poll, which matters on a slow link.
func (g *remoteGroup) Stop(ctx context.Context) error {
	live := g.liveProcs()
	g.mu.Lock()
	for _, p := range live {
		p.stopping = true
	}
	order, hosts := byHost(live)
	// Hosts with files but no process left still get cleaned.
	for dest := range g.files {
		if _, ok := hosts[dest]; !ok {
			order = append(order, dest)
		}
	}
	g.mu.Unlock()
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, dest := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.stopHost(ctx, dest, hosts[dest])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopScript stops procs on one host and removes files once they are all
// gone. It prints __ipp_killed=PID__ for each process that needed
// SIGKILL and __ipp_left=PID__ for each one still there at the end.
func (g *remoteGroup) stopScript(procs []*remoteProc, files []string) string {
	grace := max(1, int((g.cfg.stopGrace()+time.Second-1)/time.Second))
	var groups []string
	for _, p := range procs {
		if p.Group {
			groups = append(groups, strconv.Itoa(p.PID))
		}
	}
	var b strings.Builder
	b.WriteString(aliveFunc)
	fmt.Fprintf(&b, "ipp_prog=%s\nipp_pids=%s\nipp_groups=%s\n", ShellQuote(g.program()), ShellQuote(pidList(procs)), ShellQuote(" "+strings.Join(groups, " ")+" "))
	b.WriteString(`ipp_left() { l=; for p in $ipp_pids; do ipp_alive "$p" "$ipp_prog" && l="$l $p"; done; ipp_pids=$l; }
ipp_kill() { for p in $ipp_pids; do case "$ipp_groups" in *" $p "*) kill -s "$1" -- "-$p" 2>/dev/null || kill -s "$1" "$p" 2>/dev/null;; *) kill -s "$1" "$p" 2>/dev/null;; esac; done; }
ipp_wait() { ipp_end=$(( $(date +%s) + $1 )); ipp_left; while [ -n "$ipp_pids" ] && [ "$(date +%s)" -le "$ipp_end" ]; do sleep 0.1 2>/dev/null || sleep 1; ipp_left; done; }
ipp_left
ipp_kill TERM
`)
	fmt.Fprintf(&b, "ipp_wait %d\n", grace)
	b.WriteString(`for p in $ipp_pids; do echo "__ipp_killed=${p}__"; done
if [ -n "$ipp_pids" ]; then ipp_kill KILL; ipp_wait 10; fi
for p in $ipp_groups; do kill -s KILL -- "-$p" 2>/dev/null; done
for p in $ipp_pids; do echo "__ipp_left=${p}__"; done
`)
	if len(files) > 0 {
		var words []string
		for _, f := range files {
			words = append(words, sshx.RemotePath(f))
		}
		fmt.Fprintf(&b, "[ -z \"$ipp_pids\" ] && rm -f %s\n", strings.Join(words, " "))
	}
	b.WriteString("echo __ipp_done=1__\n")
	return b.String()
}

// stopHost stops procs on one host and cleans up its files.
func (g *remoteGroup) stopHost(ctx context.Context, dest string, procs []*remoteProc) error {
	log := g.cfg.logger().With("host", dest)
	h, err := g.host(dest)
	if err != nil {
		return err
	}
	g.mu.Lock()
	files := slices.Clone(g.files[dest])
	for _, p := range g.procs {
		if p.Host == dest && (p.stopping || slices.Contains(procs, p)) && p.Output != "" {
			files = append(files, p.Output)
		}
	}
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.stopGrace()+10*time.Second+sshTimeout)
	defer cancel()
	if len(procs) > 0 {
		log.Debug("stopping remote processes", "pids", pidList(procs))
	}
	out, err := h.Run(ctx, "sh -s", strings.NewReader(g.stopScript(procs, files)))
	if err != nil {
		return fmt.Errorf("stopping pids %s on %s: %w", pidList(procs), dest, err)
	}
	var killed, left []string
	done := false
	for _, m := range parseMarkers(out) {
		switch m.key {
		case "killed":
			killed = append(killed, m.value)
		case "left":
			left = append(left, m.value)
		case "done":
			done = true
		}
	}
	if !done {
		return fmt.Errorf("stopping pids %s on %s: no answer from the stop script (output: %q)", pidList(procs), dest, strings.TrimSpace(string(out)))
	}
	if len(killed) > 0 {
		log.Warn("processes ignored SIGTERM; sent SIGKILL", "pids", strings.Join(killed, " "), "grace", g.cfg.stopGrace())
	}
	if len(left) > 0 {
		return fmt.Errorf("pids %s on %s still running after SIGKILL", strings.Join(left, " "), dest)
	}
	g.mu.Lock()
	for _, p := range procs {
		p.State = StateAfter
	}
	delete(g.files, dest)
	g.mu.Unlock()
	if len(procs) > 0 {
		log.Info("stopped remote processes", "pids", pidList(procs))
	}
	return nil
}

// Output implements OutputReader: the tail of each process's log, read
// from its host, keyed "host:path".
func (g *remoteGroup) Output(maxLines int) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := "+1"
	if maxLines > 0 {
		n = strconv.Itoa(maxLines)
	}
	for _, p := range g.snapshot() {
		if p.Output == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := g.host(p.Host)
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			text, err := h.Run(ctx, "tail -n "+n+" "+sshx.RemotePath(p.Output), nil)
			if err != nil {
				return
			}
			mu.Lock()
			out[p.Host+":"+p.Output] = string(text)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// outputHint is the end of the logs, for error messages.
func (g *remoteGroup) outputHint() string { return tailText(g) }

// sshGroupState is what both SSH launchers save in the cluster file.
type sshGroupState struct {
	Version          int                 `json:"version"`
	N                int                 `json:"n,omitempty"`
	EngineSetID      string              `json:"engine_set_id,omitempty"`
	State            State               `json:"state"`
	ProfileDir       string              `json:"profile_dir"`
	ClusterID        string              `json:"cluster_id"`
	RemoteProfileDir string              `json:"remote_profile_dir"`
	Cmd              []string            `json:"cmd"`
	SSHArgs          []string            `json:"ssh_args,omitempty"`
	Procs            []remoteProc        `json:"procs"`
	Files            map[string][]string `json:"files,omitempty"`
}

func (g *remoteGroup) state(n int) sshGroupState {
	st := g.Status().State
	g.mu.Lock()
	defer g.mu.Unlock()
	s := sshGroupState{
		Version:          StateVersion,
		N:                n,
		EngineSetID:      g.cfg.EngineSetID,
		State:            st,
		ProfileDir:       g.cfg.ProfileDir,
		ClusterID:        g.cfg.ClusterID,
		RemoteProfileDir: g.rpd,
		Cmd:              g.argv,
		SSHArgs:          g.opts.SSHArgs,
		Files:            maps.Clone(g.files),
	}
	for _, p := range g.procs {
		s.Procs = append(s.Procs, *p)
	}
	return s
}

// restoreRemoteGroup rebuilds a group from its handle and asks the hosts
// which processes still run. Gone means a host answered that none does;
// a host that cannot be reached keeps its processes as running, so that
// stop reports it rather than forgetting them.
func restoreRemoteGroup(what string, cfg Config, st sshGroupState, role string) (*remoteGroup, error) {
	cfg.restored(st.ProfileDir, st.EngineSetID, st.Cmd)
	opts := SSHOptions{}
	if o, ok := cfg.Options.(*SSHOptions); ok && o != nil {
		opts = *o
	}
	opts.SSHArgs = st.SSHArgs
	opts.RemoteProfileDir = st.RemoteProfileDir
	cfg.Options = &opts
	g := &remoteGroup{cfg: cfg, opts: opts, role: role, argv: st.Cmd, rpd: st.RemoteProfileDir,
		hosts: map[string]*sshx.Host{}, files: map[string][]string{}, pollErr: map[string]error{}}
	maps.Copy(g.files, st.Files)
	for _, p := range st.Procs {
		g.procs = append(g.procs, &p)
	}
	g.started = true
	g.refresh(context.Background(), true)
	if g.Status().State == StateAfter {
		var pids []string
		for _, p := range g.procs {
			pids = append(pids, fmt.Sprintf("%s:%d", p.Host, p.PID))
		}
		return nil, fmt.Errorf("%s %s: %w", what, strings.Join(pids, " "), ErrNotRunning)
	}
	return g, nil
}
