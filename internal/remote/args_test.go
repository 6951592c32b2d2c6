package remote

import (
	"slices"
	"testing"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/launchers"
)

// TestOptionArgs: a launcher's settings become the remote flags that set
// them, lists either repeated or as one flag of words as each flag
// parses them, defaults left out.
func TestOptionArgs(t *testing.T) {
	got, err := OptionArgs("slurm", &launchers.BatchOptions{Queue: "debug", Walltime: "1:00:00", Nodes: 2,
		Directives: []string{"--exclusive", "--constraint=a b"}, MPI: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--directive=--exclusive", "--directive=--constraint=a b", "--mpi=true", "--nodes=2", "--queue=debug", "--walltime=1:00:00"}
	if !slices.Equal(got, want) {
		t.Errorf("slurm: %q\nwant %q", got, want)
	}
	got, err = OptionArgs("mpiexec", &launchers.MPIExecOptions{MPIArgs: []string{"--bind-to", "core"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--mpi-args=--bind-to core"}; !slices.Equal(got, want) {
		t.Errorf("mpiexec: %q, want %q", got, want)
	}
	if got, err := OptionArgs("local", nil); err != nil || got != nil {
		t.Errorf("local: %q, %v", got, err)
	}
	if _, err := OptionArgs("nosuch", &launchers.BatchOptions{}); err == nil {
		t.Error("an unknown launcher gave no error")
	}
}

// TestNewRemote: the remote command's words, and environment words kept
// as assignments.
func TestNewRemote(t *testing.T) {
	t.Setenv(protocol.EnvSSHIPCluster, "")
	r, err := New("login", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.IPCluster, []string{"ipcluster"}) || r.envPrefix() != nil {
		t.Errorf("default: %q prefix %q", r.IPCluster, r.envPrefix())
	}
	t.Setenv(protocol.EnvSSHIPCluster, "SLURM_CONF=/etc/s.conf ~/bin/ipcluster")
	r, _ = New("login", nil, "")
	if !slices.Equal(r.envPrefix(), []string{"env", "SLURM_CONF=/etc/s.conf"}) || r.program() != "~/bin/ipcluster" {
		t.Errorf("from $%s: %q prefix %q program %q", protocol.EnvSSHIPCluster, r.IPCluster, r.envPrefix(), r.program())
	}
	// ~/ stays the remote home: quoted, the remote shell would not expand it.
	if line, want := r.commandLine("stop", "--cluster-id=a b"), `env SLURM_CONF=/etc/s.conf "$HOME"/bin/ipcluster stop '--cluster-id=a b'`; line != want {
		t.Errorf("command line:\n%s\nwant\n%s", line, want)
	}
	if _, err := New("-oProxyCommand=x", nil, ""); err == nil {
		t.Error("a host starting with - was accepted")
	}
}

func TestLoopbackClients(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{"--client-ip=127.0.0.1"}},
		{[]string{"--ip=*", "--", "--ping=250"}, []string{"--client-ip=127.0.0.1", "--ip=*", "--", "--ping=250"}},
		{[]string{"--client-ip=10.0.0.1"}, []string{"--client-ip=10.0.0.1"}},
		{[]string{"--controller=local"}, []string{"--client-ip=127.0.0.1", "--controller=local"}},
		{[]string{"--controller=slurm"}, []string{"--controller=slurm"}},
		// After "--" the words are the controller's own: they do not count.
		{[]string{"--", "--client-ip=x"}, []string{"--client-ip=127.0.0.1", "--", "--client-ip=x"}},
	} {
		if got := LoopbackClients(c.in); !slices.Equal(got, c.want) {
			t.Errorf("LoopbackClients(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
