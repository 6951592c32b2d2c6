package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// SSHController runs the controller on another host over ssh
// (--controller ssh --controller-host HOST): `<remote ipcluster>
// controller [args]`, detached like the SSH engines (own session, nohup,
// output to <remote profile>/log/ipcontroller-<cluster>-<pid>.log), with
// IPP_PROFILE_DIR set to the remote profile. WaitConnection fetches the
// two connection files the controller writes there into the local
// profile (0600), so that engines started from here, and clients here,
// use them.
//
// A controller listening on loopback (the default --ip) serves only
// engines and clients on its own host; Start refuses that unless the
// host is this machine or --ip was given explicitly.
type SSHController struct {
	*remoteGroup
	dest string
}

// NewSSHController returns an SSH controller launcher.
func NewSSHController(cfg Config) (*SSHController, error) {
	g, err := newRemoteGroup(cfg, ControllerRole)
	if err != nil {
		return nil, err
	}
	return &SSHController{remoteGroup: g, dest: g.opts.ControllerHost}, nil
}

// remoteConnectionFiles are the controller's files in the remote profile.
func (l *SSHController) remoteConnectionFiles() (client, engine string) {
	dir := path.Join(l.rpd, "security")
	return path.Join(dir, path.Base(wire.ClientFile(l.cfg.ProfileDir, l.cfg.ClusterID))),
		path.Join(dir, path.Base(wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID)))
}

// Start implements Launcher; n must be 0 or 1.
func (l *SSHController) Start(ctx context.Context, n int) error {
	if n > 1 {
		return fmt.Errorf("a controller launcher starts one controller, not %d", n)
	}
	if l.dest == "" {
		return errors.New("--controller ssh needs --controller-host HOST (the host that runs the controller)")
	}
	if l.isStarted() {
		return errors.New("controller already started")
	}
	facts, err := l.preflight(ctx, l.dest)
	if err != nil {
		return err
	}
	if ip := argValue(l.argv, "--ip"); ip == "" && !facts.sameMachine() {
		return fmt.Errorf("a controller on %s would listen on its loopback (127.0.0.1) only, where engines and clients on other hosts, this one included, cannot reach it: add --ip='*' (or --ip=<%s's address>) to ipcluster start, or --ip=127.0.0.1 explicitly if every engine and client will run on %s",
			l.dest, l.dest, l.dest)
	}
	client, engine := l.remoteConnectionFiles()
	exports, err := l.exports(nil)
	if err != nil {
		return err
	}
	logFile := l.logPath(joinNonEmpty("-", "ipcontroller", l.cfg.ClusterID, strconv.Itoa(os.Getpid())) + ".log")
	// Files of an earlier controller of this cluster would be taken for
	// this one's.
	script := l.startScript(exports, []string{path.Join(l.rpd, "log"), path.Join(l.rpd, "security")}, []string{
		"rm -f " + sshx.RemotePath(client) + " " + sshx.RemotePath(engine) + "\n",
		startLine(0, "", remoteWords(l.argv), logFile),
	})
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	pids, group, err := l.launch(ctx, l.dest, script, []int{0})
	if pid, ok := pids[0]; ok {
		l.mu.Lock()
		l.procs = append(l.procs, &remoteProc{Host: l.dest, PID: pid, Output: logFile, State: StateRunning, Group: group})
		l.mu.Unlock()
	}
	if err != nil {
		return errors.Join(err, l.Stop(context.WithoutCancel(ctx)))
	}
	l.cfg.logger().Info("started controller over ssh", "host", l.dest, "pid", pids[0], "log", logFile)
	return nil
}

// WaitConnection implements ConnectionWaiter: it polls the remote profile
// for both connection files, copies them into the local profile, and
// fails early, with the end of the controller's log, if the controller
// exits first. Each poll is one round trip that asks both whether the
// controller runs and for the files.
func (l *SSHController) WaitConnection(ctx context.Context) (*ConnectionInfo, error) {
	h, err := l.host(l.dest)
	if err != nil {
		return nil, err
	}
	procs := l.snapshot()
	if len(procs) != 1 {
		return nil, errors.New("controller not started")
	}
	pid := procs[0].PID
	client, engine := l.remoteConnectionFiles()
	script := aliveFunc + fmt.Sprintf(`ipp_alive %d %s && echo __ipp_alive=1__
if test -s %s && test -s %s; then echo __ipp_ready=1__; cat %s; echo; echo __ipp_split=1__; cat %s; echo; fi
echo __ipp_done=1__
`, pid, ShellQuote(l.program()), sshx.RemotePath(client), sshx.RemotePath(engine), sshx.RemotePath(client), sshx.RemotePath(engine))
	var info *ConnectionInfo
	var lastErr error
	err = pollGrowing(ctx, 20*time.Millisecond, 500*time.Millisecond, func() bool {
		rctx, cancel := context.WithTimeout(ctx, sshTimeout)
		defer cancel()
		out, err := h.Run(rctx, "sh -s", strings.NewReader(script))
		if err != nil {
			lastErr = err
			return sshx.IsConnectError(err)
		}
		head, files, ready := strings.Cut(string(out), "__ipp_ready=1__\n")
		alive, done := false, false
		for _, m := range parseMarkers([]byte(head)) {
			alive = alive || m.key == "alive"
		}
		for _, m := range parseMarkers(out) {
			done = done || m.key == "done"
		}
		if !done {
			lastErr = fmt.Errorf("ssh %s: no answer from the script that waits for the connection files (output: %q)", l.dest, strings.TrimSpace(string(out)))
			return false
		}
		if !alive && !ready {
			l.mu.Lock()
			procs[0].State = StateAfter
			l.mu.Unlock()
			lastErr = fmt.Errorf("the controller on %s exited before writing its connection files%s", l.dest, l.outputHint())
			return true
		}
		if !ready {
			lastErr = fmt.Errorf("%s and %s not written yet on %s", client, engine, l.dest)
			return false
		}
		clientJSON, engineJSON, ok := strings.Cut(files, "\n__ipp_split=1__\n")
		engineJSON, _, _ = strings.Cut(engineJSON, "__ipp_done=1__")
		if !ok {
			lastErr = fmt.Errorf("ssh %s: cannot read the connection files from the output", l.dest)
			return false
		}
		info, lastErr = l.store([]byte(strings.TrimSpace(clientJSON)), []byte(strings.TrimSpace(engineJSON)))
		return lastErr == nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the controller's connection files on %s: %w (last error: %v)", l.dest, err, lastErr)
	}
	return info, lastErr
}

// store writes the controller's two files into the local profile (0600)
// and reads them back.
func (l *SSHController) store(client, engine []byte) (*ConnectionInfo, error) {
	for local, data := range map[string][]byte{
		wire.ClientFile(l.cfg.ProfileDir, l.cfg.ClusterID): client,
		wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID): engine,
	} {
		if !json.Valid(data) {
			return nil, fmt.Errorf("the controller's connection file on %s is not JSON: %q", l.dest, data)
		}
		if err := wire.WritePrivateFile(local, append(data, '\n')); err != nil {
			return nil, err
		}
	}
	return ReadConnection(l.cfg.ProfileDir, l.cfg.ClusterID)
}

// Stop implements Launcher. A controller stopped with SIGKILL leaves its
// connection files on the host: they are removed with its log.
func (l *SSHController) Stop(ctx context.Context) error {
	if l.dest != "" {
		client, engine := l.remoteConnectionFiles()
		l.mu.Lock()
		if len(l.procs) > 0 {
			l.files[l.dest] = appendMissing(l.files[l.dest], client, engine)
		}
		l.mu.Unlock()
	}
	return l.remoteGroup.Stop(ctx)
}

func appendMissing(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, x := range list {
			found = found || x == it
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

// MarshalState implements Stateful.
func (l *SSHController) MarshalState() (json.RawMessage, error) {
	if len(l.snapshot()) != 1 {
		return nil, errors.New("controller not started")
	}
	return json.Marshal(l.state(0))
}

func restoreSSHController(cfg Config, state json.RawMessage) (Launcher, error) {
	var st sshGroupState
	if err := decodeState("ssh controller", state, &st); err != nil {
		return nil, err
	}
	g, err := restoreRemoteGroup("ssh controller", cfg, st, ControllerRole)
	if err != nil {
		return nil, err
	}
	l := &SSHController{remoteGroup: g}
	if len(g.procs) > 0 {
		l.dest = g.procs[0].Host
	}
	return l, nil
}
