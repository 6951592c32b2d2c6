package launchers

import (
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// DescendantsOf finds each process's own children and grandchildren, from
// one look at /proc, in the order asked, and nothing of the others'.
func TestDescendantsOfSeveralProcesses(t *testing.T) {
	var parents []*exec.Cmd
	for range 2 {
		// A shell with a child that has a child of its own.
		c := exec.Command("sh", "-c", "sh -c 'sleep 60 & wait' & wait")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		})
		parents = append(parents, c)
	}
	var r OSRunner
	ps := make([]Process, len(parents))
	for i, c := range parents {
		p, err := r.Attach(c.Process.Pid, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	var got [][]Process
	testutil.Eventually(t, 10*time.Second, func() bool {
		got = r.DescendantsOf(ps)
		return len(got) == 2 && len(got[0]) == 2 && len(got[1]) == 2
	}, "two descendants under each shell")
	for i, ds := range got {
		for _, d := range ds {
			// Each descendant's chain of parents leads to its own shell.
			pid, seen := d.PID(), false
			for range 4 {
				parent, err := procParent(pid)
				if err != nil {
					break
				}
				if parent == parents[i].Process.Pid {
					seen = true
					break
				}
				pid = parent
			}
			if !seen {
				t.Errorf("descendant %d listed under shell %d is not below it", d.PID(), parents[i].Process.Pid)
			}
			if slices.ContainsFunc(got[1-i], func(o Process) bool { return o.PID() == d.PID() }) {
				t.Errorf("descendant %d listed under both shells", d.PID())
			}
		}
	}
	if one := r.Descendants(ps[0]); len(one) != 2 {
		t.Errorf("Descendants of one shell: %d processes, want 2", len(one))
	}
}
