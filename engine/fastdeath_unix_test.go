//go:build unix

package engine

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestKilledEngineSeenFast: an engine process killed with SIGKILL sends
// nothing, yet the controller unregisters it long before heartbeats would
// (ten missed 3 s beats), because its connections close; the engine that
// is still alive stays registered.
func TestKilledEngineSeenFast(t *testing.T) {
	c, err := controller.New(controller.Config{HeartbeatPeriod: 3 * time.Second, HeartbeatMisses: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := json.Marshal(c.EngineInfo())
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for range 2 {
		var out testutil.SyncBuffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestEngineProcess$")
		cmd.Env = append(os.Environ(), engineProcessEnv+"=1", protocol.EnvConnectionInfo+"="+string(info))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return len(c.Engines()) == 2 }, "two engines register")
	if err := procs[0].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	procs[0].Wait()
	killed := time.Now()
	// Heartbeats alone would take 30 s or more.
	testutil.Eventually(t, 10*time.Second, func() bool { return len(c.Engines()) == 1 }, "the killed engine is unregistered")
	t.Logf("killed engine unregistered %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	left := c.Engines()
	var survivor protocol.EngineInfo
	if len(left) != 1 || json.Unmarshal(left[0].Info, &survivor) != nil {
		t.Fatalf("engines after the kill: %+v", left)
	}
	if survivor.PID != procs[1].Process.Pid {
		t.Fatalf("the engine left registered is pid %d; the killed one was %d, the survivor %d",
			survivor.PID, procs[0].Process.Pid, procs[1].Process.Pid)
	}
}
