package cli

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// manyEngines is the size of TestManyLocalEngines: enough processes to
// crowd two cores (the registration storm, the controller's connection
// count, exec's fan-out and stop of every process), few enough to stay
// well under a minute in CI. IPP_TEST_MANY_ENGINES overrides it (the
// 1,000-engine check itself is `go run ./bench -only thousand`).
const manyEngines = 128

// TestManyLocalEngines is the issue-10 check by hand at CI size: `start
// -n N --daemonize` registers all N engines, `exec 'fmt.Println(1)'`
// prints 1 from every one of them, and `stop` leaves no process behind.
// Deadlines are generous: only completeness is asserted, not speed.
func TestManyLocalEngines(t *testing.T) {
	n := manyEngines
	if v := os.Getenv("IPP_TEST_MANY_ENGINES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("IPP_TEST_MANY_ENGINES=%q: want a positive number", v)
		}
	}
	e := newE2E(t)
	run := func(timeout time.Duration, args ...string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd, o, er := e.command(ctx, args...)
		cmd.WaitDelay = 5 * time.Second // the daemonized controller keeps the pipes a moment
		t0 := time.Now()
		if code := e.exitCode(args, cmd.Run()); code != 0 {
			e.dumpLogs()
			t.Fatalf("ipcluster %s: exit %d after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, time.Since(t0), o, er)
		}
		t.Logf("ipcluster %s: %v", strings.Join(args, " "), time.Since(t0))
		return o.String(), er.String()
	}
	clusterFile := wire.ClusterFile(e.profile, "")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			// Never leave N processes behind a failed assertion.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd, _, _ := e.command(ctx, "stop")
			cmd.Run()
		}
	})

	run(5*time.Minute, "start", "-n", strconv.Itoa(n), "--daemonize", "--wait-timeout", "240")
	e.pids = recordedPIDs(t, clusterFile)
	if len(e.pids) != n+1 {
		t.Fatalf("recorded %d pids, want the controller and %d engines", len(e.pids), n)
	}

	out, _ := run(2*time.Minute, "exec", "fmt.Println(1)")
	printed := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\[stdout:(\d+)\] 1$`).FindAllStringSubmatch(out, -1) {
		id, _ := strconv.Atoi(m[1])
		printed[id] = true
	}
	for id := range n {
		if !printed[id] {
			t.Errorf("engine %d printed nothing (%d of %d did)", id, len(printed), n)
			break
		}
	}
	if len(printed) != n {
		t.Errorf("%d engines printed 1, want %d:\n%s", len(printed), n, out)
	}

	// The issue's own check: exec 'fmt.Println(1)' | grep -c '^1$'. Into a
	// pipe exec prints the engines' lines bare.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, o, er := e.commandAsTyped(ctx, "exec", "fmt.Println(1)")
	if code := e.exitCode([]string{"exec"}, cmd.Run()); code != 0 {
		t.Fatalf("exec into a pipe: exit %d\n%s", code, er)
	}
	if ones := len(regexp.MustCompile(`(?m)^1$`).FindAllString(o.String(), -1)); ones != n || strings.Count(o.String(), "\n") != n {
		t.Errorf("exec into a pipe: %d lines \"1\" of %d lines, want %d of %d:\n%s", ones, strings.Count(o.String(), "\n"), n, n, o)
	}

	run(3*time.Minute, "stop")
	stopped = true
	var left []int
	for _, pid := range e.pids {
		if launchers.PIDAlive(pid) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		t.Errorf("%d processes still running after stop: %v", len(left), left)
	}
}
