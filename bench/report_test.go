package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReportComparesRuns writes a report beside an older flat results
// file (the format before the report) and a quick run's directory: the
// comparison must take the older full run, whose sizes match, and the
// charts must be drawn.
func TestReportComparesRuns(t *testing.T) {
	dir := t.TempDir()
	old := `{"ipp": {"lb_tasks_per_s": 6000, "push_s": 3.0, "startup_32_s": 2.0},
	 "ipyparallel": {"lb_tasks_per_s": 100, "push_s": 1.0, "startup_32_s": 70}, "machine": "x"}`
	if err := os.WriteFile(filepath.Join(dir, "2026-12-01T000000-vm.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	quick := filepath.Join(dir, "2026-12-02T000000-vm")
	os.Mkdir(quick, 0o755)
	if err := os.WriteFile(filepath.Join(quick, "results.json"),
		[]byte(`{"ipp": {"lb_tasks_per_s": 1}, "peers": {"ipyparallel": {"lb_tasks_per_s": 1}}, "options": {"ratio_mb": 10, "tasks": 2000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	o := options{out: dir, tasks: 10000, ratioMB: 100, scatterMB: 100, taskSizes: []int{1, 2}, dataMB: []int{10, 100}, startup: []int{2, 32}}
	r := &Run{Opts: o, Ours: results{"lb_tasks_per_s": 6000, "lb_tasks_per_s_1": 4000, "lb_tasks_per_s_2": 6000,
		"push_s": 0.2, "push_s_10": 0.03, "push_s_100": 0.2, "startup_2_s": 0.2, "startup_32_s": 1.5},
		Peers: map[string]results{"ipyparallel": {"lb_tasks_per_s": 100, "lb_tasks_per_s_1": 90, "lb_tasks_per_s_2": 100,
			"push_s": 1.2, "push_s_10": 0.1, "push_s_100": 1.2, "startup_2_s": 8, "startup_32_s": 40}},
		Floor: results{"tcp_warm_s_10": 0.005, "tcp_warm_s_100": 0.05, "tcp_fresh_s_10": 0.06, "tcp_fresh_s_100": 0.6},
		Notes: map[string]any{}, Versions: map[string]map[string]string{}}
	r.Skip("dask", "startup_32_s", "not asked for")
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	if err := writeReport(o, r, Machine{Host: "vm", CPUs: 2, CPU: "test CPU"}, start, time.Minute); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "2026-12-03T000000-vm")
	b, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| load-balanced no-op tasks/s, 2 engines | 6000 | 100 | 60.0x | ≥ 50x | yes |",
		"| push 100 MB float64 to 2 engines, s | 0.2 | 1.20 | 6.0x | ≥ 3x | yes |",
		"tcp_warm 0.05, tcp_fresh 0.6",
		"2026-12-01T000000-vm.json",
		// now 6.0x, before 1/3 = 0.3x: not met in both.
		"| push 100 MB float64 to 2 engines, s | ipyparallel | 0.2 / 3.00 | 6.0x / 0.33x | ≥ 3x | **no** |",
		"| start → 32 engines ready, s | ipyparallel | 1.50 / 2.00 | 26.7x / 35.0x | ≥ 30x | **no** |",
		"![Push float64 to 2 engines](push.svg)",
		"dask, startup_32_s: not asked for",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"results.json", "tasks.svg", "push.svg", "startup.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}
