package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// ClusterFlags select a profile and a cluster, as ipcluster's common
// options do.
type ClusterFlags struct {
	// Profile is a profile name under $IPYTHONDIR ("" = default).
	Profile string
	// ProfileDir overrides Profile with a directory.
	ProfileDir string
	// ClusterID names the cluster ("" is ipcluster's default cluster).
	ClusterID string
	// SSH is the host whose ipcluster does the work (--ssh; see
	// remote.go); "" means this host.
	SSH string
	// SSHIPCluster is the ipcluster command on the SSH host (words).
	SSHIPCluster string
}

func (c *ClusterFlags) bind(fs *pflag.FlagSet, withClusterID bool) {
	fs.StringVar(&c.Profile, "profile", "", "IPython profile name under $IPYTHONDIR (default \"default\")")
	fs.StringVar(&c.ProfileDir, "profile-dir", "", "profile directory (overrides --profile)")
	if withClusterID {
		fs.StringVar(&c.ClusterID, "cluster-id", "", "cluster id (default: the unnamed cluster)")
	}
}

// Dir is the profile directory, absolute.
func (c *ClusterFlags) Dir() (string, error) {
	dir := c.ProfileDir
	if dir == "" {
		dir = wire.ProfileDir(c.Profile)
	}
	return filepath.Abs(dir)
}

// profileGiven reports whether the user picked a profile explicitly.
func (c *ClusterFlags) profileGiven() bool { return c.Profile != "" || c.ProfileDir != "" }

// ensureProfile creates the profile's security and log folders (0700),
// as ipcluster start does for a missing profile.
func ensureProfile(dir string) error {
	for _, d := range []string{wire.SecurityDir(dir), wire.LogDir(dir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// splitCommand splits a command line into words as a POSIX shell would,
// without expansions.
func splitCommand(s string) ([]string, error) { return launchers.SplitWords(s) }

// secondsValue is a duration flag that also takes plain seconds ("5",
// "2.5"), as ipyparallel's options do.
type secondsValue struct{ d *time.Duration }

// waitTimeoutHelp describes --wait-timeout's default (engineWaitTimeout).
const waitTimeoutHelp = "how long to wait for the engines to register (default: 120 s plus 0.2 s per engine)"

// engineWaitTimeout is --wait-timeout: as given, or by default 120 s plus
// 0.2 s per engine. Engines start in parallel but share the node's cores:
// 1,000 local engines on 2 cores take 135–155 s to register, past a fixed
// 120 s, and a batch queue's start-up grows with the job too.
func engineWaitTimeout(given time.Duration, n int) time.Duration {
	if given > 0 {
		return given
	}
	return 120*time.Second + time.Duration(max(n, 0))*200*time.Millisecond
}

func newSecondsValue(d *time.Duration, def time.Duration) secondsValue {
	*d = def
	return secondsValue{d}
}

func (s secondsValue) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s secondsValue) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want seconds or a duration such as 90s")
	}
	*s.d = d
	return nil
}

func (s secondsValue) Type() string { return "seconds" }

// signals returns the channel of signals foreground commands react to.
func (f *Factory) signals(ctx context.Context) (<-chan os.Signal, func()) {
	if f.Signals != nil {
		return f.Signals(ctx)
	}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, append([]os.Signal{os.Interrupt, syscall.SIGTERM}, relayedSignals...)...)
	return ch, func() { signal.Stop(ch) }
}

// clusterName is how a cluster is named in messages.
func clusterName(id string) string {
	if id == "" {
		return "''"
	}
	return id
}

// LauncherFlags are every launcher's own settings as flags, each declared
// once by its catalog entry (--mpiexec, --queue, --walltime...), plus
// --env for the environment of whatever is started.
type LauncherFlags struct {
	// Env are KEY=VALUE pairs added to the environment of the processes
	// started (any launcher), e.g. OMPI_MCA_* or UCX_* settings.
	Env []string
	// Options holds the launchers' settings as parsed.
	Options *launchers.OptionsFlags
}

func (l *LauncherFlags) bind(fs *pflag.FlagSet) {
	l.Options = launchers.BindOptionsFlags(fs)
	fs.StringArrayVar(&l.Env, "env", nil, "KEY=VALUE added to the environment of the processes started (repeatable; e.g. OMPI_MCA_* for MPI engines; local engines get GOMAXPROCS = CPUs / engines unless it is set here or exported)")
}

// environ parses --env into the cluster options.
func (l *LauncherFlags) environ(opts *launchers.ClusterOptions) error {
	for _, kv := range l.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		if opts.Env == nil {
			opts.Env = map[string]string{}
		}
		opts.Env[k] = v
	}
	return nil
}

// nextEngineID is the engine id after the highest registered one: the
// first id of a new engine set (0 for an empty cluster).
func nextEngineID(ids []int) int {
	next := 0
	for _, id := range ids {
		next = max(next, id+1)
	}
	return next
}
