// Package remote runs this project's ipcluster on another host (a login
// node) through the system ssh, for `ipcluster --ssh HOST` and the Cluster
// API's SSH option.
//
// The remote ipcluster does the work with whatever launcher it has there
// (Slurm, mpiexec...); the laptop only keeps a record (Record) of what it
// started: the host, the remote command, the remote profile and the batch
// job ids. Stopping runs the remote `ipcluster stop` and then asks the
// queue itself for those job ids, cancelling what is left: a proxy that
// stops without its engines' jobs is the failure this package exists to
// avoid.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/launchers"
)

// Remote is ipcluster on one host, reached through ssh.
type Remote struct {
	// Host is the ssh destination.
	Host *sshx.Host
	// IPCluster is the remote command line of ipcluster: a program and
	// possibly environment words before it ("env SLURM_CONF=... ipcluster").
	IPCluster []string
	// Hint says how the user names the remote program, for the message
	// of a missing one ("pass --ssh-ipcluster /path/to/ipcluster").
	Hint string
}

// New prepares ipcluster on host; ipcluster "" means $IPP_SSH_IPCLUSTER,
// else "ipcluster" on the remote PATH. Nothing is contacted yet.
func New(host string, ipcluster []string, hint string) (*Remote, error) {
	h, err := sshx.New(host)
	if err != nil {
		return nil, err
	}
	if len(ipcluster) == 0 {
		if v := strings.TrimSpace(os.Getenv(protocol.EnvSSHIPCluster)); v != "" {
			if ipcluster, err = shellwords.Split(v); err != nil {
				return nil, fmt.Errorf("$%s: %w", protocol.EnvSSHIPCluster, err)
			}
		}
	}
	if len(ipcluster) == 0 {
		ipcluster = []string{"ipcluster"}
	}
	// A leading assignment must stay an assignment: quoted, the remote
	// shell would take it for a program name. `env` keeps it one.
	if strings.Contains(ipcluster[0], "=") {
		ipcluster = append([]string{"env"}, ipcluster...)
	}
	return &Remote{Host: h, IPCluster: ipcluster, Hint: hint}, nil
}

// Name is the host as the user gave it.
func (r *Remote) Name() string { return r.Host.Name() }

// envPrefix are the environment words of IPCluster ("env K=V ..."), which
// the scheduler commands run here also need (ssh passes no environment).
func (r *Remote) envPrefix() []string {
	if len(r.IPCluster) == 0 || r.IPCluster[0] != "env" {
		return nil
	}
	n := 1
	for n < len(r.IPCluster)-1 && strings.Contains(r.IPCluster[n], "=") && !strings.HasPrefix(r.IPCluster[n], "-") {
		n++
	}
	return r.IPCluster[:n]
}

// commandLine is `ipcluster sub args...` for the remote shell.
func (r *Remote) commandLine(sub string, args ...string) string {
	return r.quoteIPCluster() + " " + shellwords.Quote(append([]string{sub}, args...)...)
}

// quoteIPCluster quotes the words of IPCluster for the remote shell,
// keeping a leading ~/ of the program meaning the remote home, as users
// write it (a quoted ~ is not expanded).
func (r *Remote) quoteIPCluster() string {
	parts := make([]string, len(r.IPCluster))
	for i, w := range r.IPCluster {
		if strings.HasPrefix(w, "~/") {
			parts[i] = sshx.RemotePath(w)
		} else {
			parts[i] = shellwords.Quote(w)
		}
	}
	return strings.Join(parts, " ")
}

// ExitError is a remote ipcluster that ran and exited non-zero; its
// messages went to the caller's stderr as they came.
type ExitError struct {
	Host, Command string
	Code          int
	// Tail is the end of what it wrote on stderr.
	Tail string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s on %s exited with status %d", e.Command, e.Host, e.Code)
	if t := strings.TrimSpace(e.Tail); t != "" {
		msg += ": " + t[strings.LastIndexByte(t, '\n')+1:]
	}
	return msg
}

// Run runs `ipcluster sub args...` remotely, copying its output to stdout
// and stderr as it comes (either may be nil).
func (r *Remote) Run(ctx context.Context, stdout, stderr io.Writer, sub string, args ...string) error {
	return r.run(ctx, stdout, stderr, r.commandLine(sub, args...), sub)
}

// notOursMarker starts the line RunChecked's script writes when the
// remote program is not this project's ipcluster.
const notOursMarker = "ipp-remote: not this project's ipcluster: "

// notOursExit is the script's exit status then.
const notOursExit = 98

// RunChecked is Run after the check of Check, in the same ssh session
// (each session costs a remote login shell): the remote program must say
// it is this project's ipcluster before it is given our flags.
func (r *Remote) RunChecked(ctx context.Context, stdout, stderr io.Writer, sub string, args ...string) error {
	ipc := r.quoteIPCluster()
	script := fmt.Sprintf(`v=$(%s --version 2>&1); s=$?; if [ $s -eq 127 ] || [ $s -eq 126 ]; then exit $s; fi; `+
		`case "$v" in "ipcluster version"*) ;; *) printf '%%s%%s\n' %s "$(printf '%%s' "$v" | head -n 1)" >&2; exit %d;; esac; exec %s`,
		ipc, shellwords.Quote(notOursMarker), notOursExit, r.commandLine(sub, args...))
	var marker tailBuffer
	err := r.run(ctx, stdout, io.MultiWriter(stderr, &marker), script, sub)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == notOursExit {
		if _, got, ok := strings.Cut(marker.String(), notOursMarker); ok {
			got, _, _ = strings.Cut(got, "\n")
			return r.notOurs(got)
		}
	}
	return err
}

func (r *Remote) notOurs(version string) error {
	return fmt.Errorf("%s on %s is not this project's ipcluster (`--version` printed %q; Python's ipyparallel has one of the same name); %s",
		r.program(), r.Name(), strings.TrimSpace(version), r.Hint)
}

func (r *Remote) run(ctx context.Context, stdout, stderr io.Writer, line, sub string) error {
	cmd, err := r.Host.Command(ctx, line)
	if err != nil {
		return err
	}
	var tail tailBuffer
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(stderr, &tail)
	runErr := cmd.Run()
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("ssh %s: `ipcluster %s`: %w", r.Name(), sub, context.Cause(ctx))
	}
	return r.explain(sub, r.Host.Explain(line, runErr, tail.Bytes()), tail.String())
}

// Output runs `ipcluster sub args...` remotely and returns its stdout.
func (r *Remote) Output(ctx context.Context, sub string, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	if err := r.Run(ctx, &out, &errb, sub, args...); err != nil {
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

// explain turns the errors of running ipcluster into messages that say
// what to do.
func (r *Remote) explain(sub string, err error, tail string) error {
	var se *sshx.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Kind {
	case sshx.CommandNotFound:
		// sshx's own message would name the first word of our script.
		return fmt.Errorf("%s is not installed on %s (or not on PATH of a non-interactive shell); %s (tried: %s)",
			path.Base(r.program()), r.Name(), r.Hint, strings.Join(r.IPCluster, " "))
	case sshx.CommandFailed:
		if se.ExitCode > 0 && se.ExitCode != 255 {
			return &ExitError{Host: r.Name(), Command: "ipcluster " + sub, Code: se.ExitCode, Tail: tail}
		}
	}
	return err
}

// program is the ipcluster program word of IPCluster.
func (r *Remote) program() string {
	p := r.envPrefix()
	if len(p) < len(r.IPCluster) {
		return r.IPCluster[len(p)]
	}
	return r.IPCluster[len(r.IPCluster)-1]
}

// Check logs in and makes sure the remote program is this project's
// ipcluster: Debian's python3-ipyparallel puts Python's on PATH, which
// would take our flags for its own and start another kind of cluster.
func (r *Remote) Check(ctx context.Context) error {
	if err := r.Host.Connect(ctx); err != nil {
		return err
	}
	line := r.quoteIPCluster() + " --version"
	out, err := r.Host.Run(ctx, line, nil)
	if err = r.explain("--version", err, ""); err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	if !bytes.HasPrefix(bytes.TrimSpace(out), []byte("ipcluster version")) {
		return r.notOurs(firstLine(out))
	}
	return nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte  { return t.b }
func (t *tailBuffer) String() string { return string(t.b) }

// Job is a batch job of a remote cluster.
type Job struct {
	// Launcher is the catalog name of the batch system ("slurm").
	Launcher string `json:"launcher"`
	ID       string `json:"id"`
}

// Cluster is what the remote ipcluster reports of one running cluster.
type Cluster struct {
	// ProfileDir is the remote profile directory.
	ProfileDir string
	ClusterID  string
	Running    bool
	// Jobs are the batch jobs its controller and engine sets recorded.
	Jobs []Job
}

// listEntry is the part of `ipcluster list -o json` read here.
type listEntry struct {
	launchers.ClusterFile
	Status struct {
		ProfileDir string `json:"profile_dir"`
		ClusterID  string `json:"cluster_id"`
		Running    bool   `json:"running"`
	} `json:"status"`
}

// Find asks the remote ipcluster for cluster id of profile (""
// = "default"); nil without error when it does not run there.
func (r *Remote) Find(ctx context.Context, profile, id string) (*Cluster, error) {
	if profile == "" {
		profile = "default"
	}
	out, err := r.Output(ctx, "list", "-o", "json", "--profile="+profile)
	if err != nil {
		return nil, err
	}
	var entries []listEntry
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("reading `ipcluster list -o json` from %s: %w (output: %q)", r.Name(), err, firstLine(out))
	}
	for _, e := range entries {
		if e.Status.ClusterID != id {
			continue
		}
		c := &Cluster{ProfileDir: e.Status.ProfileDir, ClusterID: id, Running: e.Status.Running}
		c.Jobs = recordedJobs(&e.ClusterFile)
		return c, nil
	}
	return nil, nil
}

// recordedJobs lists the batch job ids of a cluster file's controller and
// engine sets.
func recordedJobs(f *launchers.ClusterFile) []Job {
	var jobs []Job
	add := func(launcher string, state json.RawMessage) {
		var st struct {
			Jobs []struct {
				ID string `json:"id"`
			} `json:"jobs"`
		}
		if json.Unmarshal(state, &st) != nil {
			return
		}
		for _, j := range st.Jobs {
			if j.ID != "" {
				jobs = append(jobs, Job{Launcher: launcher, ID: j.ID})
			}
		}
	}
	if f.Controller != nil {
		add(f.Controller.Class, f.Controller.State)
	}
	for _, id := range f.SetIDs() {
		add(launchers.SetLauncher(f, id), f.Engines.Sets[id])
	}
	return jobs
}

// ClientFile is the remote path of a cluster's client connection file
// (the remote is POSIX whatever this host is).
func ClientFile(profileDir, id string) string {
	name := "ipcontroller-client.json"
	if id != "" {
		name = "ipcontroller-" + id + "-client.json"
	}
	return path.Join(profileDir, "security", name)
}

// ClientInfo copies a remote cluster's client connection file, with its
// `ssh` field set to this host so that clients tunnel through it. Fields
// this version does not know are kept.
func (r *Remote) ClientInfo(ctx context.Context, c *Cluster) ([]byte, error) {
	data, err := r.Host.ReadFile(ctx, ClientFile(c.ProfileDir, c.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("reading the client connection file of cluster %q on %s: %w", c.ClusterID, r.Name(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("client connection file of cluster %q on %s: %w", c.ClusterID, r.Name(), err)
	}
	m["ssh"] = r.Name()
	return json.MarshalIndent(m, "", "  ")
}
