package procid

import (
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

func TestSelfRunning(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process identities need /proc (Linux)")
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if !self.Local() || !self.Running() {
		t.Fatalf("Self %+v: Local %v, Running %v; want both", self, self.Local(), self.Running())
	}
	// A recycled pid (another start time), another host or namespace, or
	// nothing at all never passes for this process.
	for name, id := range map[string]ID{
		"other start": {PID: self.PID, Start: self.Start + 1, Host: self.Host},
		"other host":  {PID: self.PID, Start: self.Start, Host: "x" + self.Host},
		"no host":     {PID: self.PID, Start: self.Start},
		"zero":        {},
	} {
		if id.Running() {
			t.Errorf("%s: %+v taken for a running process", name, id)
		}
	}
}

// TestExitedProcess: a process that exited and was reaped is not running;
// a zombie (exited, not yet reaped) is not either.
func TestExitedProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process identities need /proc (Linux)")
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, start, err := Stat(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("Stat of a fresh child: %v", err)
	}
	id := ID{PID: cmd.Process.Pid, Start: start, Host: self.Host}
	// Until it is reaped the child is a zombie (or still running "true").
	testutil.Eventually(t, 10*time.Second, func() bool {
		state, _, err := Stat(id.PID)
		return err == nil && state == 'Z'
	}, "the child never became a zombie")
	if id.Running() {
		t.Error("a zombie is taken for a running process")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if id.Running() {
		t.Error("a reaped process is taken for a running process")
	}
}
