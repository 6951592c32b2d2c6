package launchers

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/procid"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// childLive tells a running child from an exited one that nobody has
// reaped yet, and leaves the reaping to its owner.
func TestChildLiveSeesZombiesWithoutReaping(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !childLive(pid) {
		t.Fatal("a running child is not live")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return !childLive(pid) }, "the killed child still looks live")
	if state, _, err := procid.Stat(pid); err != nil || state != 'Z' {
		t.Fatalf("after childLive: state %q, err %v; want a zombie still waiting for its reaper", state, err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("Wait of a killed child returned no error")
	} else if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("Wait = %v; childLive must not have reaped the child", err)
	}
	if childLive(pid) {
		t.Error("a reaped child is live")
	}
}
