package engine

import (
	"errors"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// gcSettings reads the collector settings without changing them.
func gcSettings() (percent int, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

// keepGCSettings restores the test process's collector settings at the end.
func keepGCSettings(t *testing.T) {
	percent, limit := gcSettings()
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestGCPauseRestoresSettings(t *testing.T) {
	keepGCSettings(t)
	for _, tc := range []struct {
		name          string
		percent       int
		limit, paused int64
	}{
		{"defaults", 100, 1<<63 - 1, startupMemoryLimit},
		{"GOGC=50 and a lower limit", 50, 32 << 20, 32 << 20},
		{"GOGC=off", -1, 1 << 30, startupMemoryLimit},
	} {
		debug.SetGCPercent(tc.percent)
		debug.SetMemoryLimit(tc.limit)
		g := pauseGC()
		if p, l := gcSettings(); p != -1 || l != tc.paused {
			t.Errorf("%s: paused: GOGC %d, limit %d; want -1, %d", tc.name, p, l, tc.paused)
		}
		g.resume()
		g.resume() // only the first counts
		if p, l := gcSettings(); p != tc.percent || l != tc.limit {
			t.Errorf("%s: resumed: GOGC %d, limit %d; want %d, %d", tc.name, p, l, tc.percent, tc.limit)
		}
	}
	var none *gcPause
	none.resume() // an engine without TrimMemory has none
}

// The pause ends once registration completes when the engine owns its
// process, and an engine embedded in a program never touches the
// collector.
func TestGCPausedOnlyDuringStartup(t *testing.T) {
	keepGCSettings(t)
	debug.SetGCPercent(100)
	start(t, fakeOptions{}, func(c *Config) { c.TrimMemory = true })
	testutil.Eventually(t, 5*time.Second, func() bool {
		p, l := gcSettings()
		return p == 100 && l == 1<<63-1
	}, "collector settings back to GOGC=100 without a limit after registration")

	stop := make(chan struct{})
	saw := make(chan int, 1)
	go func() {
		lowest := 100
		for {
			select {
			case <-stop:
				saw <- lowest
				return
			default:
			}
			p, _ := gcSettings()
			lowest = min(lowest, p)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	start(t, fakeOptions{}, nil)
	close(stop)
	if p := <-saw; p != 100 {
		t.Errorf("an engine without TrimMemory changed GOGC (to %d) while it started", p)
	}
}

// The interpreter is built while the registration is on its way; when
// building it fails, Run fails with that error, withdraws the
// registration and never announces the engine.
func TestInterpreterFailureAfterRegistration(t *testing.T) {
	f := newFake(t, fakeOptions{})
	wait, _ := runEngine(t, f, func(c *Config) {
		c.Setup = func(*interp.Namespace) error { return errors.New("no symbols today") }
	})
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "Config.Setup: no symbols today") {
		t.Fatalf("Run = %v, want the Setup error", err)
	}
	f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool { return m.Header.MsgType == "unregistration_request" })
	if n := f.probeCount(); n != 0 {
		t.Errorf("%d ready probes from an engine without an interpreter", n)
	}
}

// Config.Setup is the user's code: it runs with the collector settings
// the process had, not under the start-up pause.
func TestSetupRunsWithoutGCPause(t *testing.T) {
	keepGCSettings(t)
	debug.SetGCPercent(100)
	seen := make(chan int, 1)
	start(t, fakeOptions{}, func(c *Config) {
		c.TrimMemory = true
		c.Setup = func(*interp.Namespace) error {
			p, _ := gcSettings()
			seen <- p
			return nil
		}
	})
	if p := <-seen; p != 100 {
		t.Errorf("Setup ran with GOGC %d, want 100", p)
	}
}
