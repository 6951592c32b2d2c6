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

// splitCommand splits a command line into words: blanks separate words,
// single quotes keep everything literally, double quotes and backslashes
// work as in a POSIX shell (without expansions).
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// secondsValue is a duration flag that also takes plain seconds ("5",
// "2.5"), as ipyparallel's options do.
type secondsValue struct{ d *time.Duration }

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
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	return ch, func() { signal.Stop(ch) }
}

// clusterName is how a cluster is named in messages.
func clusterName(id string) string {
	if id == "" {
		return "''"
	}
	return id
}

// MPIFlags configure the mpiexec engine launcher (--engines mpiexec).
type MPIFlags struct {
	// MPIExec is the mpiexec command line ("" = mpiexec, or for
	// `ipcluster engines` the one the cluster's last set used).
	MPIExec string
	// MPIArgs are extra mpiexec arguments, shell-split, placed before -n.
	MPIArgs string
	// Env are KEY=VALUE pairs added to the engines' environment (any
	// launcher), e.g. OMPI_MCA_* or UCX_* settings for MPI engines.
	Env []string
}

func (m *MPIFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&m.MPIExec, "mpiexec", "", "mpiexec program and arguments for --engines mpiexec (default \"mpiexec\")")
	fs.StringVar(&m.MPIArgs, "mpi-args", "", "extra mpiexec arguments for --engines mpiexec, before -n (shell-like words)")
	fs.StringArrayVar(&m.Env, "env", nil, "KEY=VALUE added to the environment of the processes started (repeatable; e.g. OMPI_MCA_* for MPI engines)")
}

// apply splits the flags into the cluster options.
func (m *MPIFlags) apply(opts *launchers.ClusterOptions) error {
	var err error
	if m.MPIExec != "" {
		if opts.MPIExec, err = splitCommand(m.MPIExec); err != nil {
			return fmt.Errorf("--mpiexec: %w", err)
		}
	}
	if m.MPIArgs != "" {
		if opts.MPIArgs, err = splitCommand(m.MPIArgs); err != nil {
			return fmt.Errorf("--mpi-args: %w", err)
		}
	}
	for _, kv := range m.Env {
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
