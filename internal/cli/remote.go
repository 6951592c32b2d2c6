package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// Remote mode (--ssh HOST): start, engines, list and stop run ipcluster on
// HOST, which does the work with its own launchers; this side keeps the
// client file (its `ssh` field set to HOST, so clients tunnel) and a record
// of the host and the batch jobs in its profile, so that stop can check
// the queue itself. exec and console connect from here through the
// tunnel, so Ctrl-C and streaming behave as for a local cluster.

// sshIPClusterHint is how the user fixes a missing remote ipcluster.
const sshIPClusterHint = "pass --ssh-ipcluster /path/to/ipcluster (or set $" + protocol.EnvSSHIPCluster + ")"

// bindRemote adds --ssh and --ssh-ipcluster, for the commands that can
// drive or reach a cluster on another host.
func (c *ClusterFlags) bindRemote(fs *pflag.FlagSet) {
	fs.StringVar(&c.SSH, "ssh", "", "work on this host through ssh (a login node; names from ~/.ssh/config work): its ipcluster starts, lists or stops the cluster, and clients here tunnel to it")
	fs.StringVar(&c.SSHIPCluster, "ssh-ipcluster", "", "the ipcluster command on the --ssh host, as words (default $"+protocol.EnvSSHIPCluster+", else ipcluster on its PATH), e.g. \"env SLURM_CONF=/etc/slurm.conf ~/bin/ipcluster\"")
}

// localOnlyFlags mean something on this side only and are never passed
// on to the remote ipcluster.
var localOnlyFlags = map[string]bool{
	"ssh": true, "ssh-ipcluster": true, "profile": true, "profile-dir": true, "cluster-id": true, "daemonize": true,
}

// forwardFlags repeats the flags the user set, for the remote ipcluster:
// one --name=value per value, so nothing depends on how the remote shell
// or parser groups words.
func forwardFlags(fs *pflag.FlagSet) []string {
	var args []string
	fs.Visit(func(f *pflag.Flag) {
		if localOnlyFlags[f.Name] {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return args
}

// remoteFor prepares the remote ipcluster of flags (host and command),
// falling back on the command a record saved.
func remoteFor(flags ClusterFlags, host string, rec *remote.Record) (*remote.Remote, error) {
	var words []string
	if flags.SSHIPCluster != "" {
		var err error
		if words, err = shellwords.Split(flags.SSHIPCluster); err != nil {
			return nil, fmt.Errorf("--ssh-ipcluster: %w", err)
		}
		if len(words) == 0 {
			return nil, errors.New("--ssh-ipcluster is empty")
		}
	} else if rec != nil && rec.Host == host {
		words = rec.IPCluster
	}
	return remote.New(host, words, sshIPClusterHint)
}

// target is the cluster of flags on both sides.
func (c *ClusterFlags) target() (remote.Target, error) {
	dir, err := c.Dir()
	if err != nil {
		return remote.Target{}, err
	}
	return remote.Target{LocalProfileDir: dir, Profile: c.Profile, ClusterID: c.ClusterID}, nil
}

// remoteError maps the remote ipcluster's exit codes to ours, so scripts
// see the same 10, 11 and 12 as for a local cluster.
func remoteError(err error) error {
	var ee *remote.ExitError
	switch {
	case errors.As(err, &ee) && ee.Code == ExitAlreadyStarted:
		return fmt.Errorf("%w (%v)", launchers.ErrAlreadyStarted, err)
	case errors.As(err, &ee) && ee.Code == ExitAlreadyStopped:
		return fmt.Errorf("%w (%v)", ErrAlreadyStopped, err)
	case errors.As(err, &ee) && ee.Code == ExitNoCluster, errors.Is(err, remote.ErrNotRunning):
		return fmt.Errorf("%w (%v)", ErrNoCluster, err)
	}
	return err
}

// startRemote is `ipcluster start --ssh HOST`.
func startRemote(ctx context.Context, o *StartOptions) error {
	r, err := remoteFor(o.ClusterFlags, o.SSH, nil)
	if err != nil {
		return err
	}
	t, err := o.target()
	if err != nil {
		return err
	}
	args := o.remoteArgs
	if len(o.ControllerArgs) > 0 {
		args = append(append(args, "--"), o.ControllerArgs...)
	}
	path, err := r.Start(ctx, o.F.IO.ErrOut, o.F.IO.ErrOut, t, args)
	if path != "" {
		fmt.Fprintf(o.F.IO.ErrOut, "Client connection file (tunnelled through %s): %s\n", o.SSH, path)
	}
	if err != nil {
		return remoteError(err)
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Cluster %s is running on %s. Use it with: ipcluster exec --ssh %s%s CODE\nStop it with: ipcluster stop --ssh %s%s\n",
		clusterName(o.ClusterID), o.SSH, o.SSH, stopFlags(o.ClusterFlags), o.SSH, stopFlags(o.ClusterFlags))
	return nil
}

// enginesRemote is `ipcluster engines --ssh HOST`.
func enginesRemote(ctx context.Context, o *EnginesOptions) error {
	t, err := o.target()
	if err != nil {
		return err
	}
	rec, _ := remote.LoadRecord(t.LocalProfileDir, t.ClusterID)
	r, err := remoteFor(o.ClusterFlags, o.SSH, rec)
	if err != nil {
		return err
	}
	return remoteError(r.Engines(ctx, o.F.IO.ErrOut, o.F.IO.ErrOut, t, o.remoteArgs))
}

// listRemote is `ipcluster list --ssh HOST`: the remote list, as it prints it.
func listRemote(ctx context.Context, o *ListOptions) error {
	r, err := remoteFor(o.ClusterFlags, o.SSH, nil)
	if err != nil {
		return err
	}
	args := o.remoteArgs
	if o.Profile != "" {
		args = append(args, "--profile="+o.Profile)
	}
	return remoteError(r.RunChecked(ctx, o.F.IO.Out, o.F.IO.ErrOut, "list", args...))
}

// stopRemote stops a cluster on host and checks its jobs left the queue.
func stopRemote(ctx context.Context, o *StopOptions, host string, t remote.Target, rec *remote.Record) error {
	r, err := remoteFor(o.ClusterFlags, host, rec)
	if err != nil {
		return err
	}
	if rec != nil && rec.Profile != "" && t.Profile == "" {
		t.Profile = rec.Profile
	}
	rep, err := r.Stop(ctx, o.F.IO.ErrOut, o.F.IO.ErrOut, t, rec, o.remoteArgs)
	if err != nil {
		return remoteError(err)
	}
	if rep.NotRunning && rec == nil {
		return fmt.Errorf("%w: cluster %s on %s", ErrAlreadyStopped, clusterName(t.ClusterID), host)
	}
	var ids []string
	for _, j := range rep.Checked {
		ids = append(ids, j.ID)
	}
	what := "no batch jobs"
	if len(ids) > 0 {
		what = fmt.Sprintf("batch jobs %s not in the queue", strings.Join(ids, " "))
	}
	if len(rep.Cancelled) > 0 {
		var c []string
		for _, j := range rep.Cancelled {
			c = append(c, j.ID)
		}
		what += fmt.Sprintf("; jobs %s were still queued after the remote stop and were cancelled from here", strings.Join(c, " "))
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Stopped cluster %s on %s (%s)\n", clusterName(t.ClusterID), host, what)
	return nil
}

// remoteHostOf is the host of the remote record beside a client file
// (security/ipcontroller[-<id>]-client.json), or "".
func remoteHostOf(clientFile string) string {
	base := filepath.Base(clientFile)
	if !strings.HasPrefix(base, "ipcontroller") || !strings.HasSuffix(base, "-client.json") {
		return ""
	}
	id := strings.TrimSuffix(strings.TrimPrefix(base, "ipcontroller"), "-client.json")
	id = strings.TrimPrefix(id, "-")
	profileDir := filepath.Dir(filepath.Dir(clientFile))
	rec, err := remote.LoadRecord(profileDir, id)
	if err != nil || wire.ClientFile(profileDir, id) != filepath.Clean(clientFile) {
		return ""
	}
	return rec.Host
}

// writeRemoteRecords lists, under the table of `list`, the clusters this
// machine started on other hosts (profile dir, or every profile when ""):
// they run elsewhere, so only their records are here.
func writeRemoteRecords(f *Factory, dir string) error {
	pattern := filepath.Join(wire.IPythonDir(), "profile_*", "security", "remote-cluster-*.json")
	if dir != "" {
		pattern = remote.RecordFile(dir, "*")
	}
	files, _ := filepath.Glob(pattern)
	if len(files) == 0 {
		return nil
	}
	fmt.Fprintln(f.IO.Out, "\nStarted on other hosts (their state: ipcluster list --ssh HOST):")
	tw := tabwriter.NewWriter(f.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tCLUSTER ID\tHOST\tJOBS")
	for _, file := range files {
		profileDir := filepath.Dir(filepath.Dir(file))
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "remote-cluster-"), ".json")
		rec, err := remote.LoadRecord(profileDir, id)
		if err != nil {
			continue
		}
		var jobs []string
		for _, j := range rec.Jobs {
			jobs = append(jobs, j.ID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", launchers.AbbreviateProfileDir(profileDir), clusterName(id), rec.Host, cmp.Or(strings.Join(jobs, " "), "-"))
	}
	return tw.Flush()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// clusterClientFile is the client file a client of flags connects to.
// With --ssh it is fetched from the host first (its `ssh` field makes the
// client tunnel); otherwise it is the local one, after checking that a
// cluster file's controller still runs.
func (f *Factory) clusterClientFile(ctx context.Context, flags ClusterFlags) (string, error) {
	dir, err := flags.Dir()
	if err != nil {
		return "", err
	}
	if flags.SSH != "" {
		t, err := flags.target()
		if err != nil {
			return "", err
		}
		rec, _ := remote.LoadRecord(dir, flags.ClusterID)
		if rec != nil && rec.Profile != "" && t.Profile == "" {
			t.Profile = rec.Profile
		}
		r, err := remoteFor(flags, flags.SSH, rec)
		if err != nil {
			return "", err
		}
		path, err := r.Sync(ctx, t, nil)
		return path, remoteError(err)
	}
	if err := checkControllerAlive(ctx, f, flags, dir); err != nil {
		return "", err
	}
	path := wire.ClientFile(dir, flags.ClusterID)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: cluster %s (%v)", ErrNoCluster, clusterName(flags.ClusterID), err)
	}
	return path, nil
}
