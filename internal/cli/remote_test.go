package cli

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestForwardFlags: `start --ssh` passes on what the user set, one
// --name=value per value, and nothing that only means something here.
func TestForwardFlags(t *testing.T) {
	var got *StartOptions
	cmd := NewCmdStart(NewFactory(), func(o *StartOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--ssh", "login", "--ssh-ipcluster", "~/bin/ipcluster", "--profile", "hpc", "--cluster-id", "big",
		"--launcher", "slurm", "-n", "64", "--walltime", "1:00:00", "--env", "A=1", "--env", "B=x y",
		"--mpi-args", "--bind-to core", "--daemonize", "--", "--hwm", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := []string{"--env=A=1", "--env=B=x y", "--launcher=slurm", "--mpi-args=--bind-to core", "--n=64", "--walltime=1:00:00"}
	if !slices.Equal(got.remoteArgs, want) {
		t.Errorf("forwarded %q\nwant %q", got.remoteArgs, want)
	}
	if got.SSH != "login" || got.SSHIPCluster != "~/bin/ipcluster" || !slices.Equal(got.ControllerArgs, []string{"--hwm", "2"}) {
		t.Errorf("options %+v", got.ClusterFlags)
	}
}

// TestStopAllWithSSH: --all cannot be checked against one record.
func TestStopAllWithSSH(t *testing.T) {
	cmd := NewCmdStop(NewFactory(), func(*StopOptions) error { t.Error("ran"); return nil })
	cmd.SetArgs([]string{"--ssh", "login", "--all"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); err == nil {
		t.Error("stop --ssh --all was accepted")
	}
}

// TestRemoteHostOf: a client file with a record beside it tunnels
// through the record's host; any other does not.
func TestRemoteHostOf(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"", "big"} {
		if got := remoteHostOf(wire.ClientFile(dir, id)); got != "" {
			t.Errorf("no record, id %q: %q", id, got)
		}
		rec := &remote.Record{Host: "login-" + id, ClusterID: id}
		if err := rec.Save(dir); err != nil {
			t.Fatal(err)
		}
		if got := remoteHostOf(wire.ClientFile(dir, id)); got != "login-"+id {
			t.Errorf("id %q: %q", id, got)
		}
	}
	if got := remoteHostOf(filepath.Join(dir, "security", "other.json")); got != "" {
		t.Errorf("another file: %q", got)
	}
	if fi, err := os.Stat(remote.RecordFile(dir, "big")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode: %v %v", fi.Mode(), err)
	}
}
