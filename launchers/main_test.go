package launchers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The test binary doubles as the child processes the launchers start
// (as Nomad's drivers do): with childEnv set, TestMain runs a child mode
// instead of the tests.
const (
	childEnv   = "LAUNCHERS_TEST_CHILD"
	pidFileEnv = "LAUNCHERS_TEST_PIDFILE"
	setIDEnv   = "LAUNCHERS_TEST_SET"
	fileEnv    = "LAUNCHERS_TEST_FILE"
	pidDirEnv  = "LAUNCHERS_TEST_PIDDIR"
	// childLife bounds every child, so a failed test leaks nothing for long.
	childLife = 60 * time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "child:") {
		os.Exit(runChild(strings.TrimPrefix(os.Args[1], "child:")))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	wait := func() int {
		select {
		case <-term:
			return 0
		case <-time.After(childLife):
			return 3
		}
	}
	switch mode {
	case "sleep":
		fmt.Println("child sleeping")
		return wait()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("child ignoring SIGTERM")
		time.Sleep(childLife)
		return 3
	case "rank", "rank-ignore-term":
		// An MPI rank: record our pid under pidDirEnv, note SIGUSR1 there
		// too, and wait for SIGTERM (or ignore it).
		dir := os.Getenv(pidDirEnv)
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		if mode == "rank-ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		}
		pid := strconv.Itoa(os.Getpid())
		if err := os.WriteFile(filepath.Join(dir, "pid-"+pid), []byte(os.Getenv(protocol.EnvMPISize)+"\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		deadline := time.After(childLife)
		for {
			select {
			case <-usr1:
				_ = os.WriteFile(filepath.Join(dir, "usr1-"+pid), nil, 0o600)
			case <-term:
				return 0
			case <-deadline:
				return 3
			}
		}
	case "fail":
		fmt.Fprintln(os.Stderr, "child failing on purpose")
		return 3
	case "env":
		for _, k := range []string{protocol.EnvClusterID, protocol.EnvProfileDir, protocol.EnvConnectionInfo, "EXTRA"} {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		return wait()
	case "spawn":
		// A grandchild in our process group that ignores SIGTERM: stop
		// must not leave it behind.
		exe, _ := os.Executable()
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"=ignore-term")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		_ = os.WriteFile(os.Getenv(pidFileEnv), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		return wait()
	case "controller":
		profile, cid := os.Getenv(protocol.EnvProfileDir), os.Getenv(protocol.EnvClusterID)
		if err := writeFakeConnection(profile, cid); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		code := wait()
		os.Remove(wire.ClientFile(profile, cid))
		os.Remove(wire.EngineFile(profile, cid))
		return code
	case "add-set":
		err := UpdateClusterFile(context.Background(), os.Getenv(fileEnv), func(cur *ClusterFile) (*ClusterFile, error) {
			if cur == nil {
				cur = &ClusterFile{}
			}
			if cur.Engines.Sets == nil {
				cur.Engines.Sets = map[string]json.RawMessage{}
			}
			time.Sleep(2 * time.Millisecond) // widen the race window
			cur.Engines.Sets[os.Getenv(setIDEnv)] = json.RawMessage(`{"n":1}`)
			return cur, nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown child mode", mode)
	return 2
}

func writeFakeConnection(profile, cid string) error {
	common := wire.Common{Interface: "tcp://127.0.0.1", Registration: 1001, Control: 1002, Mux: 1003,
		Task: 1004, IOPub: 1005, Key: "k", Location: "here"}
	common.Defaults()
	if err := wire.WritePrivateJSON(wire.ClientFile(profile, cid), wire.ClientInfo{Common: common, Notification: 1006, Broadcast: 1007, TaskScheme: "leastload"}); err != nil {
		return err
	}
	return wire.WritePrivateJSON(wire.EngineFile(profile, cid), wire.EngineInfo{Common: common, HBPing: 1008, HBPong: 1009, Broadcast: []int{1010}})
}

// childCmd is the command that re-executes the test binary in mode.
func childCmd(t *testing.T, mode string) []string {
	return append(self(t), "child:"+mode)
}

// self is the command that re-executes the test binary.
func self(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe}
}

// testConfig is a Config whose processes run child mode.
func testConfig(t *testing.T, mode string) Config {
	t.Helper()
	return Config{
		ProfileDir: filepath.Join(t.TempDir(), "profile_test"),
		ClusterID:  "cid",
		Command:    self(t),
		// A -race child would otherwise sleep 1 s before exiting.
		Env:       map[string]string{childEnv: mode, "GORACE": "atexit_sleep_ms=0"},
		StopGrace: 300 * time.Millisecond,
	}
}

// killPIDs is a test cleanup that leaves nothing running whatever happens.
func killPIDs(t *testing.T, pids func() []int) {
	t.Cleanup(func() {
		for _, pid := range pids() {
			if PIDAlive(pid) {
				t.Errorf("pid %d still alive at cleanup", pid)
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}
