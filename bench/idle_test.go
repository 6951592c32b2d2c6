package main

import (
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestIdleClusterSleeps keeps idle processes idle: engines of a real
// 2-engine cluster (ipcluster start --daemonize) must neither poll nor
// keep start-up memory. The bounds are generous against the targets
// (10 wake-ups/s, 20 MB) so that a loaded machine does not fail it, yet
// tight enough to catch the regressions that happened: a 250 ms recheck
// per socket (~100 wake-ups/s) and 7 MB replay guards plus the whole
// executable mapped (~49 MB RSS). Context switches are counts, not
// times, so load changes them little.
func TestIdleClusterSleeps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and watches it for 5 s")
	}
	exe := testutil.IPCluster(t)
	cost, err := measureIdle(exe, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(cost.Engines) != 2 {
		t.Fatalf("measured %d engines, want 2", len(cost.Engines))
	}
	for _, e := range cost.Engines {
		t.Logf("engine %d: %.1f wake-ups/s, RSS %d kB, PSS %d kB", e.PID, e.WakeupsPerSec, e.RSSKB, e.PSSKB)
		if e.WakeupsPerSec >= 50 {
			t.Errorf("idle engine %d woke %.1f times a second (bound 50, target 10): something polls", e.PID, e.WakeupsPerSec)
		}
		if e.RSSKB >= 40*1024 {
			t.Errorf("idle engine %d holds %d kB RSS (bound 40 MB, target 20 MB)", e.PID, e.RSSKB)
		}
	}
	t.Logf("controller: %.1f wake-ups/s, RSS %d kB; client: %.1f wake-ups/s",
		cost.Controller.WakeupsPerSec, cost.Controller.RSSKB, cost.Client.WakeupsPerSec)
}
