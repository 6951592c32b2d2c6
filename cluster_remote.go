package ipp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// remoteCluster is a Cluster whose ipcluster runs on ClusterOptions.SSH.
type remoteCluster struct {
	r *remote.Remote
	t remote.Target
}

func newRemoteCluster(opts ClusterOptions) (*Cluster, error) {
	words := opts.SSHIPCluster
	if len(words) == 0 && opts.IPCluster != "" {
		words = []string{opts.IPCluster}
	}
	r, err := remote.New(opts.SSH, words, "set ClusterOptions.SSHIPCluster (or $"+protocol.EnvSSHIPCluster+") to the path of ipcluster on "+opts.SSH)
	if err != nil {
		return nil, fmt.Errorf("ipp: %w", err)
	}
	rc := &remoteCluster{r: r, t: remote.Target{LocalProfileDir: opts.ProfileDir, Profile: opts.Profile, ClusterID: opts.ClusterID}}
	return &Cluster{opts: opts, rem: rc}, nil
}

// remoteFromRecord reattaches to a cluster this host started on another
// one, from the record Start left in the profile.
func remoteFromRecord(opts ClusterOptions) (*Cluster, bool) {
	rec, err := remote.LoadRecord(opts.ProfileDir, opts.ClusterID)
	if err != nil {
		return nil, false
	}
	opts.SSH, opts.SSHIPCluster, opts.Profile = rec.Host, rec.IPCluster, rec.Profile
	opts.EngineTimeout = 60 * time.Second
	c, err := newRemoteCluster(opts)
	return c, err == nil
}

func (rc *remoteCluster) file() string {
	return remote.RecordFile(rc.t.LocalProfileDir, rc.t.ClusterID)
}

func (rc *remoteCluster) running() bool {
	_, err := os.Stat(rc.file())
	return err == nil
}

// startArgs are the flags of a remote `ipcluster start` (or engines) that
// repeat opts.
func startArgs(opts ClusterOptions, n int, withController bool) ([]string, error) {
	args := []string{"--n=" + strconv.Itoa(n), "--wait-timeout=" + strconv.FormatFloat(opts.EngineTimeout.Seconds(), 'f', -1, 64)}
	if opts.Launcher != "" {
		args = append(args, "--launcher="+opts.Launcher)
	}
	if len(opts.EngineCmd) > 0 {
		args = append(args, "--engine-cmd="+shellwords.Quote(opts.EngineCmd...))
	}
	if opts.NoConnectionEnv {
		args = append(args, "--no-connection-env")
	}
	keys := make([]string, 0, len(opts.Env))
	for k := range opts.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--env="+k+"="+opts.Env[k])
	}
	launcher := opts.Launcher
	if launcher == "" {
		launcher = "local"
	}
	seen := map[string]bool{}
	add := func(name string, o launchers.Options) error {
		more, err := remote.OptionArgs(name, o)
		if err != nil {
			return err
		}
		for _, a := range more {
			if !seen[a] {
				seen[a] = true
				args = append(args, a)
			}
		}
		return nil
	}
	if err := add(launcher, opts.LauncherOptions); err != nil {
		return nil, err
	}
	if !withController {
		return args, nil
	}
	if opts.ControllerLauncher != "" {
		args = append(args, "--controller="+opts.ControllerLauncher)
		if err := add(opts.ControllerLauncher, opts.ControllerLauncherOptions); err != nil {
			return nil, err
		}
	}
	if len(opts.ControllerCmd) > 0 {
		args = append(args, "--controller-cmd="+shellwords.Quote(opts.ControllerCmd...))
	}
	if opts.ControllerIP != "" {
		args = append(args, "--ip="+opts.ControllerIP)
	}
	if opts.ControllerLocation != "" {
		args = append(args, "--location="+opts.ControllerLocation)
	}
	if len(opts.ControllerArgs) > 0 {
		args = append(append(args, "--"), opts.ControllerArgs...)
	}
	return args, nil
}

func (rc *remoteCluster) start(ctx context.Context, opts ClusterOptions, n int) error {
	args, err := startArgs(opts, n, true)
	if err != nil {
		return fmt.Errorf("ipp: %w", err)
	}
	w := logWriter(opts.Logger, rc.r.Name())
	defer w.Close()
	if _, err := rc.r.Start(ctx, w, w, rc.t, args); err != nil {
		return fmt.Errorf("ipp: starting the cluster on %s: %w", rc.r.Name(), err)
	}
	return nil
}

func (rc *remoteCluster) engines(ctx context.Context, opts ClusterOptions, n int) error {
	if n <= 0 {
		n = opts.N
	}
	args, err := startArgs(opts, n, false)
	if err != nil {
		return fmt.Errorf("ipp: %w", err)
	}
	w := logWriter(opts.Logger, rc.r.Name())
	defer w.Close()
	if err := rc.r.Engines(ctx, w, w, rc.t, args); err != nil {
		return fmt.Errorf("ipp: starting engines on %s: %w", rc.r.Name(), err)
	}
	return nil
}

// connect opens a client on the client file Start copied back; its `ssh`
// field makes the client tunnel through the host.
func (rc *remoteCluster) connect(ctx context.Context, opts ClusterOptions) (*Client, error) {
	path := wire.ClientFile(opts.ProfileDir, opts.ClusterID)
	if _, err := os.Stat(path); err != nil {
		// Started elsewhere (or by another program): fetch it.
		if path, err = rc.r.Sync(ctx, rc.t, nil); err != nil {
			return nil, fmt.Errorf("ipp: cluster on %s: %w", rc.r.Name(), err)
		}
	}
	// Always through the host: the file's ssh field alone is skipped when
	// the controller's location looks like this machine. Options given
	// later (a WithSSH of the caller's) win.
	copts := append([]Option{WithSSH(rc.r.Name())}, opts.ClientOptions...)
	if opts.Logger != nil {
		copts = append([]Option{WithLogger(opts.Logger)}, copts...)
	}
	return Connect(ctx, path, copts...)
}

func (rc *remoteCluster) stop(ctx context.Context, opts ClusterOptions) error {
	rec, err := remote.LoadRecord(rc.t.LocalProfileDir, rc.t.ClusterID)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ipp: %w", err)
	}
	w := logWriter(opts.Logger, rc.r.Name())
	defer w.Close()
	if _, err := rc.r.Stop(ctx, w, w, rc.t, rec, nil); err != nil {
		return fmt.Errorf("ipp: stopping the cluster on %s: %w", rc.r.Name(), err)
	}
	return nil
}

// logWriter logs each line the remote ipcluster prints at info level.
func logWriter(l *slog.Logger, host string) io.WriteCloser {
	if l == nil {
		l = slog.Default()
	}
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.Info("remote ipcluster", "host", host, "line", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return &waitCloser{pw, &wg}
}

type waitCloser struct {
	*io.PipeWriter
	wg *sync.WaitGroup
}

func (w *waitCloser) Close() error {
	err := w.PipeWriter.Close()
	w.wg.Wait()
	return err
}
