package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/controller"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "4GiB": 4 << 30, "4gib": 4 << 30, "200MB": 200e6, "200 MB": 200e6, "512k": 512 << 10,
		"1.5G": 3 << 29, "2KB": 2000, "10b": 10, "0": 0, "1TiB": 1 << 40, "3M": 3 << 20,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1", "-1MB", "4 gigs", "1e30", "9223372036854775807KiB", "NaN", "x1"} {
		if got, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", bad, got)
		}
	}
	for n, want := range map[int64]string{4 << 30: "4GiB", 256 << 20: "256MiB", 1000: "1000", 3 << 10: "3KiB", 0: "0"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestControllerLimitFlags(t *testing.T) {
	var got *ControllerOptions
	capture := func(o *ControllerOptions) error { got = o; return nil }
	if err := run(NewCmdController(&Factory{}, capture), "--profile-dir", "/p"); err != nil {
		t.Fatal(err)
	}
	cfg, err := got.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessageSize != controller.DefaultMaxMessageSize || cfg.MaxConnections != controller.DefaultMaxConnections ||
		cfg.ResultCacheBytes != controller.DefaultResultCacheBytes || cfg.MaxQueuedTasks != controller.DefaultMaxQueuedTasks ||
		cfg.MaxQueuedBytes != controller.DefaultMaxQueuedBytes {
		t.Errorf("defaults: %+v", got.LimitFlags)
	}
	err = run(NewCmdController(&Factory{}, capture), "--profile-dir", "/p", "--max-message-size", "200MB",
		"--max-connections", "100", "--result-cache", "1GiB", "--max-queued-tasks", "5000", "--max-queued-bytes", "2G")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = got.config(); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessageSize != 200e6 || cfg.MaxConnections != 100 || cfg.ResultCacheBytes != 1<<30 ||
		cfg.MaxQueuedTasks != 5000 || cfg.MaxQueuedBytes != 2<<30 {
		t.Errorf("flags: %+v", cfg)
	}
	if err := run(NewCmdController(&Factory{}, capture), "--max-message-size", "lots"); err == nil ||
		!strings.Contains(err.Error(), "4GiB") {
		t.Errorf("--max-message-size lots: %v", err)
	}
	for _, bad := range [][]string{{"--max-connections", "-1"}, {"--max-queued-tasks", "-3"}, {"--max-queued-bytes", "-1"}} {
		err := run(NewCmdController(&Factory{}, capture), append([]string{"--profile-dir", "/p"}, bad...)...)
		if err == nil {
			_, err = got.config()
		}
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%q: %v, want an error naming the flag", bad, err)
		}
	}
}

func TestZeroLimitsAreDefaults(t *testing.T) {
	var cfg controller.Config
	if err := (LimitFlags{}).apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConnections != 0 || cfg.MaxMessageSize != 0 || cfg.MaxQueuedBytes != 0 {
		t.Fatalf("zero limits set %+v", cfg)
	}
	// New fills in the defaults, as for any zero Config field.
	if _, err := controller.New(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestStartPassesLimits(t *testing.T) {
	var st *StartOptions
	capture := func(o *StartOptions) error { st = o; return nil }
	if err := run(NewCmdStart(&Factory{}, capture)); err != nil {
		t.Fatal(err)
	}
	if args := st.LimitFlags.args(); len(args) != 0 {
		t.Errorf("defaults pass %q, want nothing", args)
	}
	if err := run(NewCmdStart(&Factory{}, capture), "--max-message-size", "1MiB", "--max-queued-tasks", "10"); err != nil {
		t.Fatal(err)
	}
	want := []string{"--max-message-size", "1048576", "--max-queued-tasks", "10"}
	if args := st.LimitFlags.args(); !slices.Equal(args, want) {
		t.Errorf("start passes %q, want %q", args, want)
	}
	// What start passes, the controller reads back to the same values.
	var got *ControllerOptions
	if err := run(NewCmdController(&Factory{}, func(o *ControllerOptions) error { got = o; return nil }), want...); err != nil {
		t.Fatal(err)
	}
	if got.LimitFlags != st.LimitFlags {
		t.Errorf("round trip: %+v, want %+v", got.LimitFlags, st.LimitFlags)
	}
}
