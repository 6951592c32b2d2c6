//go:build linux && cgo && !nolibzmq

package transport

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// keepChildEnv marks the test binary re-executed by TestFreedMemoryKept:
// the constructor reads KeepFreedEnv before the program starts, so each
// setting needs a process of its own.
const keepChildEnv = "IPP_TEST_KEEPMEM_CHILD"

// TestKeepFreedChild is the child's side: it allocates a large buffer the
// way libzmq does for a large message (malloc, from a thread other than
// the one that set malloc up), three times, and prints the page faults of
// the last two. Skipped unless re-executed.
func TestKeepFreedChild(t *testing.T) {
	if os.Getenv(keepChildEnv) != "1" {
		t.Skip("run by TestFreedMemoryKept")
	}
	kept, bad, err := keepFreedResult()
	done := make(chan string)
	go func() {
		runtime.LockOSThread()
		mallocFaults(100 << 20)
		done <- fmt.Sprintf("%d %d", mallocFaults(100<<20), mallocFaults(100<<20))
	}()
	fmt.Printf("KEEP kept=%v bad=%v err=%v faults=%s\n", kept, bad, err, <-done)
}

// TestFreedMemoryKept checks that a process keeps the memory of a freed
// large buffer for the next one by default (no page faults the second
// time), and that IPP_KEEP_FREED_MB=0 restores glibc's behaviour of
// handing it back (a fault per page every time): the second is why the
// first exists (keepmem.go); and that a value that is not a number falls
// back to the default and is reported.
func TestFreedMemoryKept(t *testing.T) {
	const pages = (100 << 20) / 4096
	run := func(keep string) (kept string, faults []int64) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeepFreedChild$", "-test.v")
		env := []string{keepChildEnv + "=1"}
		for _, kv := range os.Environ() {
			// Huge pages would hide the faults of fresh memory.
			if !strings.HasPrefix(kv, KeepFreedEnv+"=") && !strings.HasPrefix(kv, "GLIBC_TUNABLES=") {
				env = append(env, kv)
			}
		}
		if keep != "" {
			env = append(env, KeepFreedEnv+"="+keep)
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child (%s=%q): %v\n%s", KeepFreedEnv, keep, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			rest, ok := strings.CutPrefix(line, "KEEP ")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) != 5 {
				t.Fatalf("child printed %q", line)
			}
			for _, s := range f[3:] {
				n, err := strconv.ParseInt(strings.TrimPrefix(s, "faults="), 10, 64)
				if err != nil {
					t.Fatalf("child printed %q", line)
				}
				faults = append(faults, n)
			}
			return strings.Join(f[:3], " "), faults
		}
		t.Fatalf("child (%s=%q) printed no result:\n%s", KeepFreedEnv, keep, out)
		return "", nil
	}

	kept, keptFaults := run("")
	if kept != "kept=true bad=false err=<nil>" {
		t.Fatalf("default: %s, want the freed memory kept", kept)
	}
	for _, f := range keptFaults {
		if f > pages/20 {
			t.Errorf("default: %d page faults filling 100 MiB again (%d pages): the freed memory was not reused", f, pages)
		}
	}
	kept, faults := run("0")
	if kept != "kept=false bad=false err=<nil>" {
		t.Fatalf("%s=0: %s, want nothing kept", KeepFreedEnv, kept)
	}
	for _, f := range faults {
		if f < pages/2 {
			t.Errorf("%s=0: only %d page faults filling 100 MiB again (%d pages): glibc kept the memory anyway, so the setting no longer changes anything", KeepFreedEnv, f, pages)
		}
	}
	// A value that is not a number keeps the default and says so.
	if kept, _ := run("lots"); kept != "kept=true bad=true err=<nil>" {
		t.Errorf("%s=lots: %s, want the default applied and the value reported", KeepFreedEnv, kept)
	}
	t.Logf("page faults filling 100 MiB again: kept %v, %s=0 %v", keptFaults, KeepFreedEnv, faults)
}
