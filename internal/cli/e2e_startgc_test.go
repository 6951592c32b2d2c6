package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestEngineStartsWithoutCollection: an engine's first garbage collection
// is the one its trim forces after registering (internal/startgc), not one
// in the middle of start-up; with GOGC set by the user the runtime's own
// pacing is left alone and collects during start-up as usual.
func TestEngineStartsWithoutCollection(t *testing.T) {
	// Only a whole line: the runtime writes a gctrace line in pieces, and
	// a half-written one would not end in "(forced)" yet.
	firstGC := regexp.MustCompile(`(?m)^gc 1 @.*\n`)
	for _, c := range []struct {
		name   string
		env    []string
		forced bool
	}{
		{"default", nil, true},
		{"GOGC set", []string{"GOGC=5"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newE2E(t)
			e.env = slices.DeleteFunc(e.env, func(kv string) bool {
				return strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GODEBUG=")
			})
			e.env = append(e.env, "GODEBUG=gctrace=1")
			e.env = append(e.env, c.env...)
			e.must(0, "start", "-n", "1", "--daemonize")
			defer e.must(0, "stop")
			var line string
			testutil.Eventually(t, 30*time.Second, func() bool {
				logs, _ := filepath.Glob(filepath.Join(wire.LogDir(e.profile), "ipengine*.log"))
				for _, l := range logs {
					data, _ := os.ReadFile(l)
					if m := firstGC.Find(data); m != nil {
						line = strings.TrimSuffix(string(m), "\n")
						return true
					}
				}
				return false
			}, "the engine's log shows no garbage collection (GODEBUG=gctrace=1)")
			if forced := strings.HasSuffix(line, "(forced)"); forced != c.forced {
				t.Errorf("first collection %q: forced %v, want %v", line, forced, c.forced)
			}
		})
	}
}
