//go:build unix

package fakebatch

import (
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Commands lists the command names Install provides for each system.
var Commands = map[string][]string{
	"pbspro":   {"qsub", "qstat", "qdel", "qsig"},
	"torque":   {"qsub", "qstat", "qdel", "qsig"},
	"lsf":      {"bsub", "bjobs", "bkill"},
	"htcondor": {"condor_submit", "condor_q", "condor_rm"},
}

var built struct {
	once sync.Once
	path string
	err  error
}

// binary builds the fake once per test process into a directory named
// after the process, removing the directories of earlier processes that
// have exited (a package cannot hook its process's exit to clean up).
func binary() (string, error) {
	built.once.Do(func() {
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), "fakebatch-bin-*"))
		for _, d := range old {
			if pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "fakebatch-bin-")); err == nil && !alive(pid) {
				os.RemoveAll(d)
			}
		}
		dir := filepath.Join(os.TempDir(), "fakebatch-bin-"+strconv.Itoa(os.Getpid()))
		if built.err = os.MkdirAll(dir, 0o700); built.err != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(build.Default.GOROOT, "bin", "go")
			if _, err := os.Stat(goTool); err != nil {
				built.err = fmt.Errorf("building the fake batch commands needs the go tool: %w", err)
				return
			}
		}
		built.path = filepath.Join(dir, "fakebatch")
		// By import path from the test's directory, which is inside the
		// module whichever package's test calls Install.
		cmd := exec.Command(goTool, "build", "-o", built.path, "github.com/ipp-hpc/ipp/internal/fakebatch/cmd/fakebatch")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build fakebatch: %v\n%s", err, out)
		}
	})
	return built.path, built.err
}

// Install builds the fake (once per test process) and writes one wrapper
// per command of system ("pbspro" or "pbs", "torque", "lsf", "htcondor")
// into a new directory, which it returns: put it first on PATH. Each
// Install has its own job state. When the test ends every job still
// queued or running is killed.
func Install(t testing.TB, system string) (binDir string) {
	t.Helper()
	if system == "pbs" {
		system = "pbspro"
	}
	names, ok := Commands[system]
	if !ok {
		t.Fatalf("fakebatch: unknown system %q (have pbspro, torque, lsf, htcondor)", system)
	}
	exe, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	binDir, state := filepath.Join(root, "bin"), filepath.Join(root, "state")
	for _, d := range []string{binDir, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	for _, name := range names {
		script := fmt.Sprintf("#!/bin/sh\nFAKEBATCH_STATE=%s FAKEBATCH_SYSTEM=%s exec %s %s \"$@\"\n", q(state), q(system), q(exe), name)
		if err := os.WriteFile(filepath.Join(binDir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := killAll(store{state}); err != nil {
			t.Errorf("fakebatch cleanup: %v", err)
		}
	})
	return binDir
}

// killAll kills every live task and supervisor (holding the lock, so no
// supervisor is between starting a task and recording it), then waits
// for them to be gone.
func killAll(st store) error {
	var pids []int
	err := st.locked(func() error {
		jobs, err := st.all()
		if err != nil {
			return err
		}
		for _, j := range jobs {
			for _, t := range j.Tasks {
				if t.State == taskDone {
					continue
				}
				if t.PGID > 0 {
					syscall.Kill(-t.PGID, syscall.SIGKILL) //nolint:errcheck // may be gone
				}
				if t.Supervisor > 0 {
					syscall.Kill(t.Supervisor, syscall.SIGKILL) //nolint:errcheck // may be gone
					pids = append(pids, t.Supervisor)
				}
			}
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			return fmt.Errorf("supervisor %d survived SIGKILL", pid)
		}
	}
	return err
}

// Job is a job as the fake's state records it, for tests to inspect.
type Job struct {
	// ID is the id the submit command printed (PBS "1234[].server",
	// LSF "123", HTCondor "118907").
	ID, Name, Queue string
	Tasks           []Task
}

// Task is one array task (HTCondor: proc) of a Job.
type Task struct {
	// Index is the array index (PBS, LSF; 0 outside arrays) or the proc.
	Index int
	// State is "queued", "running", "done" or "held" (HTCondor could
	// not start the executable).
	State string
	// Exit is the exit status (128+signal when killed by one).
	Exit      int
	Cancelled bool
	// Output is the file the task's stdout goes to.
	Output string
}

// Active reports whether the job has a task that is not done.
func (j Job) Active() bool {
	for _, t := range j.Tasks {
		if t.State != taskDone {
			return true
		}
	}
	return false
}

// Jobs returns every job submitted through the commands in binDir (as
// Install returned it), oldest first, with their current states.
func Jobs(binDir string) ([]Job, error) {
	jobs, err := store{filepath.Join(filepath.Dir(binDir), "state")}.all()
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(jobs))
	for _, j := range jobs {
		pj := Job{ID: j.ID, Name: j.Name, Queue: j.Queue}
		for _, t := range j.Tasks {
			pj.Tasks = append(pj.Tasks, Task{Index: t.Index, State: t.State, Exit: t.Exit, Cancelled: t.Cancelled, Output: t.Out})
		}
		out = append(out, pj)
	}
	return out, nil
}

// Active returns the ids of the jobs in binDir's state that still have a
// task queued, running or held: after a clean stop there are none.
func Active(binDir string) ([]string, error) {
	jobs, err := Jobs(binDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, j := range jobs {
		if j.Active() {
			ids = append(ids, j.ID)
		}
	}
	return ids, nil
}
