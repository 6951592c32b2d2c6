//go:build unix

package engine

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// controllerProcessEnv makes TestControllerProcess run a controller that
// writes its connection files into the profile directory it names.
const controllerProcessEnv = "IPP_TEST_CONTROLLER_PROFILE"

// TestControllerProcess is the controller process of
// TestEngineExitsAfterControllerTimeout: a test cannot SIGKILL a
// controller that lives in its own process.
func TestControllerProcess(t *testing.T) {
	dir := os.Getenv(controllerProcessEnv)
	if dir == "" {
		t.Skip("runs only as the controller process of TestEngineExitsAfterControllerTimeout")
	}
	// Pings every 100 ms, so the engine's silence starts right at the kill.
	c, err := controller.New(controller.Config{ProfileDir: dir, HeartbeatPeriod: 100 * time.Millisecond})
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		os.Stderr.WriteString("controller: " + err.Error() + "\n")
		transport.Shutdown()
		os.Exit(1)
	}
	// The test kills this process; the bound only keeps an abandoned one
	// from living on.
	<-time.After(5 * time.Minute)
	os.Exit(3)
}

// TestEngineExitsAfterControllerTimeout: an engine process whose
// controller is SIGKILLed (it sends nothing) exits with status 1 once
// --controller-timeout has passed without a heartbeat, and its log says
// why.
func TestEngineExitsAfterControllerTimeout(t *testing.T) {
	const timeout = 2 * time.Second
	profile := t.TempDir()
	ctl := exec.Command(os.Args[0], "-test.run=^TestControllerProcess$")
	ctl.Env = append(os.Environ(), controllerProcessEnv+"="+profile)
	var ctlOut testutil.SyncBuffer
	ctl.Stdout, ctl.Stderr = &ctlOut, &ctlOut
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Wait() }()
	t.Cleanup(func() {
		ctl.Process.Kill()
		<-ctlDone
	})
	engineFile := wire.EngineFile(profile, "")
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(engineFile)
		return err == nil
	}, "the controller process wrote no %s:\n%s", engineFile, &ctlOut)

	eng := exec.Command(os.Args[0], "-test.run=^TestEngineProcess$")
	eng.Env = append(os.Environ(), engineProcessEnv+"=1", engineArgsEnv+"=--controller-timeout 2 --mpi=false",
		protocol.EnvConnectionInfo+"=", protocol.EnvProfileDir+"="+profile, protocol.EnvClusterID+"=", protocol.EnvControllerTimeout+"=")
	var out testutil.SyncBuffer
	eng.Stdout, eng.Stderr = &out, &out
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Wait() }()
	t.Cleanup(func() {
		eng.Process.Kill()
		select {
		case <-engDone:
		case <-time.After(10 * time.Second):
		}
	})
	testutil.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(out.String(), "registration complete")
	}, "the engine did not register:\n%s\ncontroller:\n%s", &out, &ctlOut)

	if err := ctl.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var err error
	select {
	case err = <-engDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("the engine still runs a minute after its controller was killed (--controller-timeout 2):\n%s", &out)
	}
	took := time.Since(killed)
	t.Logf("engine exited %v after the controller's SIGKILL", took.Round(time.Millisecond))
	engDone <- err // for the cleanup
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("engine exit: %v, want status 1:\n%s", err, &out)
	}
	for _, want := range []string{"controller lost: no heartbeat within the controller timeout", "timeout=2s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("engine log lacks %q:\n%s", want, &out)
		}
	}
	// It waited for the timeout rather than quitting on the first silence:
	// the last ping came at most one 100 ms period before the kill.
	if took < timeout-500*time.Millisecond {
		t.Errorf("engine exited %v after the kill, before its %v timeout", took, timeout)
	}
}
