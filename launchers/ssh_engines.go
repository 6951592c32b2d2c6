package launchers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// SSHEngineSet runs an engine set on other hosts over ssh (--launcher ssh
// --hosts host1:4,host2:8). Per host, one ssh command pipes a script into
// `sh -s` that starts that host's engines detached: each in its own
// session (setsid where the host has it) under nohup, stdin from
// /dev/null, output to <remote profile>/log/ipengine-<cluster>-<set>-<i>.log,
// and reports each engine's pid. The engines' connection info travels in
// IPP_CONNECTION_INFO, exported by that script (read from ssh's standard
// input, so it never appears in a command line that ps shows); with
// --no-connection-env the engine file is copied (0600) into the remote
// profile instead. Engine i of the set asks for id IPP_ENGINE_ID_BASE +
// IPP_ENGINE_INDEX, so ids follow the order of --hosts.
//
// Status asks each host, at most once a second and only when asked,
// which pids still run (kill -0, and the command line still naming our
// program, so a recycled pid is not taken for an engine). Stop sends
// SIGTERM to each engine's process group, SIGKILL to what is left after
// the grace period, checks that nothing remains and removes the logs.
type SSHEngineSet struct {
	*remoteGroup
	requested int
}

// NewSSHEngineSet returns an SSH engine-set launcher.
func NewSSHEngineSet(cfg Config) (*SSHEngineSet, error) {
	g, err := newRemoteGroup(cfg, EngineRole)
	if err != nil {
		return nil, err
	}
	return &SSHEngineSet{remoteGroup: g}, nil
}

// Requested is the number of engines asked for.
func (l *SSHEngineSet) Requested() int { return l.requested }

// Start implements Launcher: n engines over the --hosts in order (each
// host takes up to its count). Every host is checked first (login, our
// ipcluster there, a controller it can reach), so a bad host starts
// nothing anywhere; if starting fails on one host, the engines started on
// the others are stopped.
func (l *SSHEngineSet) Start(ctx context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("cannot start %d engines", n)
	}
	if l.isStarted() {
		return errors.New("engine set already started")
	}
	hosts, err := parseSSHHosts(l.opts.Hosts)
	if err != nil {
		return err
	}
	placed, err := placeEngines(hosts, n)
	if err != nil {
		return err
	}
	raw := l.cfg.ConnectionInfo
	// Python engines (7.x) read only the profile's file, never
	// IPP_CONNECTION_INFO: they need it on every host.
	sendFile := len(raw) == 0 || IsPythonEngine(l.argv)
	if len(raw) == 0 {
		if raw, err = os.ReadFile(wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID)); err != nil {
			return fmt.Errorf("reading the controller's engine connection file, to copy it to the hosts: %w", err)
		}
	}
	var info wire.Common
	if err := json.Unmarshal(raw, &info); err != nil {
		return fmt.Errorf("reading the controller's connection info: %w", err)
	}

	facts := make([]hostFacts, len(placed))
	errs := make([]error, len(placed))
	var wg sync.WaitGroup
	for i, h := range placed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			facts[i], errs[i] = l.preflight(ctx, h.Dest)
			if errs[i] == nil {
				errs[i] = reachable(info, h.Dest, facts[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	l.mu.Lock()
	l.requested = n
	l.started = true
	l.mu.Unlock()
	offset := 0
	for i, h := range placed {
		first := offset
		offset += h.N
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.startHost(ctx, h, first, raw, sendFile)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if stopErr := l.Stop(context.WithoutCancel(ctx)); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the engines already started: %w", stopErr))
		}
		return err
	}
	return nil
}

// reachable refuses engines on a host that cannot reach the controller: a
// controller listening on loopback only serves engines on its own host
// (the connection file's location).
func reachable(info wire.Common, dest string, f hostFacts) error {
	iface := strings.TrimPrefix(info.Interface, "tcp://")
	if !strings.HasPrefix(info.Interface, "tcp://") || !isLoopback(iface) {
		return nil
	}
	if info.Location != "" && sameHostName(info.Location, f.Hostname) {
		return nil
	}
	if info.Location == "" && f.sameMachine() {
		return nil
	}
	return fmt.Errorf("the controller listens on %s only (on host %s), which engines on %s (host %s) cannot reach: restart the cluster with --ip='*' (or --ip=<an address %s can reach>) and, if %s knows the controller's host by another name, --location=<that name>",
		iface, info.Location, dest, f.Hostname, dest, dest)
}

// startHost starts one host's engines, indices first.. of the set.
func (l *SSHEngineSet) startHost(ctx context.Context, h sshHostCount, first int, raw []byte, sendFile bool) error {
	extra := map[string]string{protocol.EnvEngineIDBase: strconv.Itoa(l.cfg.EngineIDBase)}
	if sendFile {
		if err := l.sendEngineFile(ctx, h.Dest, raw); err != nil {
			return err
		}
	} else {
		extra[protocol.EnvConnectionInfo] = string(raw)
	}
	exports, err := l.exports(extra)
	if err != nil {
		return err
	}
	argv := remoteWords(l.argv)
	var lines []string
	var want []int
	logs := map[int]string{}
	for i := first; i < first+h.N; i++ {
		logs[i] = l.logPath(joinNonEmpty("-", "ipengine", l.cfg.ClusterID, l.cfg.EngineSetID, strconv.Itoa(i)) + ".log")
		lines = append(lines, startLine(i, protocol.EnvEngineIndex+"="+strconv.Itoa(i), argv, logs[i]))
		want = append(want, i)
	}
	script := l.startScript(exports, []string{path.Join(l.rpd, "log")}, lines)
	pids, group, err := l.launch(ctx, h.Dest, script, want)
	l.mu.Lock()
	for _, i := range want {
		if pid, ok := pids[i]; ok {
			l.procs = append(l.procs, &remoteProc{Host: h.Dest, PID: pid, Index: i, Output: logs[i], State: StateRunning, Group: group})
		}
	}
	slices.SortFunc(l.procs, func(a, b *remoteProc) int { return a.Index - b.Index })
	l.mu.Unlock()
	if err != nil {
		return err
	}
	var list []string
	for _, i := range want {
		list = append(list, strconv.Itoa(pids[i]))
	}
	l.cfg.logger().Info("started engines over ssh", "host", h.Dest, "engines", h.N, "pids", strings.Join(list, " "), "log_dir", path.Join(l.rpd, "log"))
	return nil
}

// sendEngineFile puts the engine connection file (0600) where engines
// without IPP_CONNECTION_INFO look for it in the remote profile. A file
// already there with the same content (the controller's own, on its
// host) is left alone and not removed at stop.
func (l *SSHEngineSet) sendEngineFile(ctx context.Context, dest string, raw []byte) error {
	h, err := l.host(dest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sshTimeout)
	defer cancel()
	remote := path.Join(l.rpd, "security", path.Base(wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID)))
	if cur, err := h.Run(ctx, "cat "+sshx.RemotePath(remote)+" 2>/dev/null || true", nil); err == nil && bytes.Equal(cur, raw) {
		return nil
	}
	if err := h.WriteFile(ctx, remote, raw, 0o600); err != nil {
		return fmt.Errorf("copying the engine connection file to %s: %w", dest, err)
	}
	l.mu.Lock()
	l.files[dest] = append(l.files[dest], remote)
	l.mu.Unlock()
	return nil
}

// MarshalState implements Stateful: the hosts, pids and remote paths, so
// that `ipcluster stop` in another process stops the engines.
func (l *SSHEngineSet) MarshalState() (json.RawMessage, error) {
	if !l.isStarted() {
		return nil, errors.New("engine set not started")
	}
	return json.Marshal(l.state(l.requested))
}

func restoreSSHEngineSet(cfg Config, state json.RawMessage) (Launcher, error) {
	var st sshGroupState
	if err := decodeState("ssh engine set", state, &st); err != nil {
		return nil, err
	}
	g, err := restoreRemoteGroup("ssh engine set "+st.EngineSetID, cfg, st, EngineRole)
	if err != nil {
		return nil, err
	}
	return &SSHEngineSet{remoteGroup: g, requested: st.N}, nil
}
