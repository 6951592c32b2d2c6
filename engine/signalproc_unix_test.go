//go:build unix

package engine

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// engineProcessEnv makes TestEngineProcess run an engine, as Main does;
// engineArgsEnv adds command-line arguments to it (separated by spaces).
const (
	engineProcessEnv = "IPP_TEST_ENGINE_PROCESS"
	engineArgsEnv    = "IPP_TEST_ENGINE_ARGS"
)

// TestEngineProcess is the engine process of TestSignalUnregisters and
// the other tests that need an engine in a process of its own.
func TestEngineProcess(t *testing.T) {
	if os.Getenv(engineProcessEnv) != "1" {
		t.Skip("runs only as the engine process of TestSignalUnregisters")
	}
	code := mainWithArgs("engine", append([]string{"--log-level", "debug"}, strings.Fields(os.Getenv(engineArgsEnv))...))
	transport.Shutdown()
	os.Exit(code)
}

// TestSignalUnregisters: an engine process stopped with SIGTERM or SIGINT
// (a batch system's or a terminal's way) sends unregistration_request
// before it exits, so clients learn at once rather than after the
// heartbeat timeout, and exits with status 0.
func TestSignalUnregisters(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFake(t, fakeOptions{assignID: 3})
			info, err := json.Marshal(f.info)
			if err != nil {
				t.Fatal(err)
			}
			var out testutil.SyncBuffer
			cmd := exec.Command(os.Args[0], "-test.run=^TestEngineProcess$")
			cmd.Env = append(os.Environ(), engineProcessEnv+"=1", protocol.EnvConnectionInfo+"="+string(info))
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				select {
				case <-exited:
				default:
					cmd.Process.Kill()
					<-exited
				}
			}()
			select {
			case <-f.completed:
			case err := <-exited:
				exited <- err
				t.Fatalf("the engine exited before registering (%v):\n%s", err, out.String())
			case <-time.After(waitTimeout):
				t.Fatalf("the engine did not register:\n%s", out.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			unreg := f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool {
				return m.Header.MsgType == "unregistration_request"
			})
			if c := content(t, unreg); c["id"] != 3.0 {
				t.Errorf("unregistration_request %s", unreg.Content)
			}
			select {
			case err := <-exited:
				exited <- err
				if err != nil {
					t.Errorf("exit after %v: %v\n%s", sig, err, out.String())
				}
			case <-time.After(waitTimeout):
				t.Fatalf("the engine did not exit after %v:\n%s", sig, out.String())
			}
		})
	}
}
