package ipp_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestClusterSSH: the Cluster API with SSH set starts the cluster through
// the login node's ipcluster (its own IPYTHONDIR, named only on the remote
// command line), connects here from the client file it copied back, and
// Stop leaves neither the remote cluster nor the local record.
func TestClusterSSH(t *testing.T) {
	s := testutil.SSH(t)
	s.SetEnv(t)
	bin := s.Share(t, testutil.IPCluster(t))
	remoteIPy := strings.TrimSpace(s.Run(t, testutil.SSHHostRoot, "mktemp -d /tmp/ipp-login-ipy-XXXXXX"))
	t.Cleanup(func() { s.Run(t, testutil.SSHHostRoot, "rm -rf "+remoteIPy) })
	local := t.TempDir()
	c, err := ipp.NewCluster(ipp.ClusterOptions{
		N: 2, ProfileDir: local, ClusterID: "api", SSH: testutil.SSHHostRoot,
		SSHIPCluster: []string{"env", "IPYTHONDIR=" + remoteIPy, bin},
		Env:          map[string]string{"IPP_TEST_MARK": "from the laptop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client, err := c.StartAndConnect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if ids := client.IDs(); len(ids) != 2 {
		t.Errorf("engines %v, want 2", ids)
	}
	ar, err := client.View().Execute(ctx, `fmt.Println(os.Getenv("IPYTHONDIR"), os.Getenv("IPP_TEST_MARK"))`, ipp.Silent(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.GetList(ctx); err != nil {
		t.Fatal(err)
	}
	for i, out := range ar.Stdout() {
		if want := remoteIPy + " from the laptop\n"; out != want {
			t.Errorf("engine %d printed %q, want %q", i, out, want)
		}
	}
	info, err := wire.LoadClientInfo(wire.ClientFile(local, "api"))
	if err != nil || info.SSH != testutil.SSHHostRoot {
		t.Errorf("local client file: ssh %q, %v", info.SSH, err)
	}
	if !c.Running() {
		t.Error("Running is false after Start")
	}
	client.Close()

	// Another program takes the cluster over from the record.
	again, err := ipp.ClusterFromFile(ctx, wire.ClusterFile(local, "api"))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(remote.RecordFile(local, "api")); !os.IsNotExist(err) {
		t.Errorf("record left after Stop: %v", err)
	}
	// The task database stays (a later --restore or query reads it;
	// ipcluster clean removes it); nothing else may.
	out := s.Run(t, testutil.SSHHostRoot, "ls", remoteIPy+"/profile_default/security/")
	var left []string
	for _, f := range strings.Fields(out) {
		if !strings.Contains(f, "-tasks.db") {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("remote security dir after Stop: %q", left)
	}
}
