package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// floorFile holds, per machine kind (Machine.kind), the smoke numbers of
// a healthy build. TestBenchSmoke fails when this build is 3x worse.
const floorFile = "floor.json"

// envFloorUpdate makes TestBenchSmoke write its numbers as the floor of
// this machine kind instead of checking them.
const envFloorUpdate = "IPP_BENCH_FLOOR_UPDATE"

// smokeFloor is one machine kind's entry of floor.json.
type smokeFloor struct {
	TasksPerS float64 `json:"lb_tasks_per_s"`
	PushS     float64 `json:"push_10mb_s"`
	Measured  string  `json:"measured"`
}

// regression is how much worse than the floor the smoke may be.
const regression = 3.0

// TestBenchSmoke is the bench in seconds, without peers: 2,000 load-
// balanced no-op tasks and a 10 MB push to 2 engines, against the floor
// committed for this machine kind, so that throughput and push time
// cannot quietly decay. To record a new floor (a new machine kind, or a
// change that is slower on purpose): IPP_BENCH_FLOOR_UPDATE=1 go test
// -count=1 -run TestBenchSmoke ./bench on a machine of that kind, then
// commit bench/floor.json with the reason.
func TestBenchSmoke(t *testing.T) {
	exe := testutil.IPCluster(t)
	kind := describeMachine(exe).kind()
	floors := map[string]smokeFloor{}
	if b, err := os.ReadFile(floorFile); err == nil {
		if err := json.Unmarshal(b, &floors); err != nil {
			t.Fatalf("%s: %v", floorFile, err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	update := os.Getenv(envFloorUpdate) != ""
	floor, ok := floors[kind]
	if !ok && !update {
		t.Skipf("no floor for machine kind %q in bench/%s; %s=1 go test -count=1 -run TestBenchSmoke ./bench records one", kind, floorFile, envFloorUpdate)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lc := newLocalCluster(options{burst: -1}, exe, t.TempDir())
	c, cl, _, err := lc.start(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	defer cl.Close()
	// Best of three: a neighbour's burst of work should not fail the build,
	// a real regression is slow every time.
	rate := 0.0
	for range 3 {
		r, err := taskRate(ctx, cl, 2000)
		if err != nil {
			t.Fatal(err)
		}
		rate = max(rate, r)
	}
	push, err := pushTime(ctx, cl, floats(10), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("machine %q: %.0f tasks/s, push 10 MB to 2 engines %.3f s (floor %.0f tasks/s, %.3f s)", kind, rate, push.Seconds(), floor.TasksPerS, floor.PushS)
	if update {
		load, _ := os.ReadFile("/proc/loadavg")
		floors[kind] = smokeFloor{TasksPerS: rate, PushS: push.Seconds(),
			Measured: fmt.Sprintf("%s, load average %s", time.Now().UTC().Format("2006-01-02"), strings.Join(strings.Fields(string(load))[:3], " "))}
		b, err := json.MarshalIndent(floors, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(floorFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the floor of %q to bench/%s", kind, floorFile)
		return
	}
	if rate < floor.TasksPerS/regression {
		t.Errorf("load-balanced no-op tasks/s fell to %.0f, under a third of the floor %.0f (bench/%s, %s)", rate, floor.TasksPerS, floorFile, floor.Measured)
	}
	if push.Seconds() > floor.PushS*regression {
		t.Errorf("push of 10 MB to 2 engines took %.3f s, over 3x the floor %.3f s (bench/%s, %s)", push.Seconds(), floor.PushS, floorFile, floor.Measured)
	}
}
