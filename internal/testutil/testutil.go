// Package testutil holds helpers shared by the project's tests: polling
// with a deadline, and finding the real peers that tests need (Python
// ipyparallel, the single-node Slurm and Grid Engine of
// scripts/batch-systems.sh), skipping loudly on a laptop and failing in CI.
package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Eventually polls cond every few milliseconds until it is true or timeout
// passes, then fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// InCI reports whether the tests run under CI (CI=true), where a missing
// peer is a failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Python is Debian's interpreter, the one that sees python3-ipyparallel.
const Python = "/usr/bin/python3"

// NeedPython returns the interpreter path if it can import every module in
// mods; otherwise the test is skipped with a loud reason, or failed in CI.
func NeedPython(t testing.TB, mods ...string) string {
	t.Helper()
	args := []string{"-c", "import sys\nfor m in sys.argv[1:]: __import__(m)"}
	args = append(args, mods...)
	if out, err := exec.Command(Python, args...).CombinedOutput(); err != nil {
		Missing(t, "%s cannot import %v (apt-get install python3-ipyparallel python3-zmq): %v\n%s", Python, mods, err, out)
	}
	return Python
}

// Missing skips (or in CI fails) a test whose real peer is not installed.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a required peer is missing: "+format, args...)
	}
	t.Skipf("SKIPPING (peer missing; this fails in CI): "+format, args...)
}

// RaiseFileLimit raises the open-file soft limit to at least n, failing the
// test if the hard limit is lower.
func RaiseFileLimit(t testing.TB, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= uint64(n) {
		return
	}
	if lim.Max < uint64(n) {
		t.Fatalf("open-file hard limit %d is below the %d this test needs", lim.Max, n)
	}
	lim.Cur = uint64(n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for capturing
// logs or output that other goroutines produce while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
