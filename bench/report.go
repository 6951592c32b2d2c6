package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run took place.
type Machine struct {
	Host, OS, Kernel, CPU, Go, LibZMQ string
	CPUs                              int
	MemoryGiB                         float64
}

func (m Machine) summary() string {
	return fmt.Sprintf("%s, %d CPUs (%s), %.0f GiB, kernel %s, %s, libzmq %s", m.OS, m.CPUs, m.CPU, m.MemoryGiB, m.Kernel, m.Go, m.LibZMQ)
}

// kind names the machine for the smoke test's floors: runs on the same
// kind of machine are comparable.
func (m Machine) kind() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, m.CPUs, m.CPU)
}

func describeMachine(exe string) Machine {
	m := Machine{CPU: "unknown CPU", CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS, LibZMQ: "unknown"}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m.CPU = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				m.MemoryGiB = float64(kb) / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m.OS = "Debian " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("pkg-config", "--modversion", "libzmq").Output(); err == nil {
		m.LibZMQ = strings.TrimSpace(string(out))
	}
	return m
}

// runFile is results.json: every number of a run and what it ran on.
type runFile struct {
	When      string                       `json:"when"`
	DurationS float64                      `json:"duration_s"`
	Machine   Machine                      `json:"machine"`
	Options   map[string]any               `json:"options"`
	Ipp       results                      `json:"ipp"`
	Peers     map[string]results           `json:"peers"`
	Floor     results                      `json:"floor"`
	Versions  map[string]map[string]string `json:"versions"`
	Notes     map[string]any               `json:"notes"`
}

// previousRun is what the comparison reads from an older run's json;
// files written before the report (bench/results/<stamp>-<host>.json)
// keep the systems at the top level, and are read too.
type previousRun struct {
	Name  string
	Ipp   results
	Peers map[string]results
	// Options are the sizes behind the ratio rows; runs before the report
	// had no options and used 100 MB pushes and 10,000 tasks.
	Options struct {
		RatioMB   int `json:"ratio_mb"`
		ScatterMB int `json:"scatter_mb"`
		Tasks     int `json:"tasks"`
	}
}

// sameSizes reports whether key was measured with the same size in this
// run and in p: a 10 MB push of a quick run says nothing of a 100 MB one.
func (p *previousRun) sameSizes(o options, key string) bool {
	switch key {
	case "push_s", "pull_s":
		return p.Options.RatioMB == o.ratioMB
	case "scatter_s", "gather_s":
		return p.Options.ScatterMB == o.scatterMB
	case "lb_tasks_per_s":
		return p.Options.Tasks == o.tasks
	}
	return true
}

func loadPrevious(path string) (*previousRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &previousRun{Name: path, Peers: map[string]results{}}
	p.Options.RatioMB, p.Options.Tasks = 100, 10000
	if v, ok := raw["options"]; ok {
		json.Unmarshal(v, &p.Options)
	}
	get := func(key string) results {
		var r results
		if v, ok := raw[key]; ok {
			if json.Unmarshal(v, &r) != nil {
				return nil
			}
		}
		return r
	}
	p.Ipp = get("ipp")
	if v, ok := raw["peers"]; ok {
		json.Unmarshal(v, &p.Peers)
	} else {
		for _, s := range systems[1:] {
			if r := get(s); r != nil {
				p.Peers[s] = r
			}
		}
	}
	if p.Ipp == nil {
		return nil, fmt.Errorf("%s: no ipp results", path)
	}
	return p, nil
}

// newestRun returns the newest results json in dir whose run name sorts
// before name (run names start with their UTC time) and that took the
// ratio rows with the same sizes as o: a quick run in between is passed
// over, so two consecutive full runs are compared.
func newestRun(dir, name string, o options) string {
	entries, _ := os.ReadDir(dir)
	type cand struct{ name, path string }
	var cands []cand
	for _, e := range entries {
		n, path := e.Name(), ""
		switch {
		case e.IsDir():
			path = filepath.Join(dir, n, "results.json")
			if _, err := os.Stat(path); err != nil {
				continue
			}
		case strings.HasSuffix(n, ".json"):
			path, n = filepath.Join(dir, n), strings.TrimSuffix(n, ".json")
		default:
			continue
		}
		if n < name {
			cands = append(cands, cand{n, path})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return strings.Compare(b.name, a.name) })
	for _, c := range cands {
		if p, err := loadPrevious(c.path); err == nil && p.sameSizes(o, "push_s") && p.sameSizes(o, "lb_tasks_per_s") {
			return c.path
		}
	}
	return ""
}

func ratio(t Target, ours, theirs float64) float64 {
	if t.Higher {
		return ours / theirs
	}
	return theirs / ours
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// fmtRatio keeps two figures below 1x, where one decimal would say 0.0x.
func fmtRatio(x float64) string {
	if x < 1 {
		return fmt.Sprintf("%.2gx", x)
	}
	return fmt.Sprintf("%.1fx", x)
}

func metWord(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// writeReport writes bench/results/<stamp>-<host>/{results.json,report.md,*.svg}.
func writeReport(o options, r *Run, m Machine, start time.Time, took time.Duration) error {
	name := start.Format("2006-01-02T150405") + "-" + m.Host
	dir := filepath.Join(o.out, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rf := runFile{When: start.Format(time.RFC3339), DurationS: took.Seconds(), Machine: m, Ipp: r.Ours, Peers: r.Peers,
		Floor: r.Floor, Versions: r.Versions, Notes: r.Notes, Options: map[string]any{
			"startup_sizes": o.startup, "ours_startup_sizes": o.oursStartup, "dask_startup_sizes": o.daskStartup,
			"task_sizes": o.taskSizes, "tasks": o.tasks, "curve_tasks": o.curveTasks, "calls": o.calls,
			"data_mb": o.dataMB, "ratio_mb": o.ratioMB, "scatter_mb": o.scatterMB, "peers": o.peers,
			"only": o.only, "db": o.db, "hwm": o.hwm, "burst": o.burst, "slurm_sizes": o.slurmSizes}}
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		return err
	}
	prevPath := o.compare
	if prevPath == "" {
		prevPath = newestRun(o.out, name, o)
	}
	var prev *previousRun
	if prevPath != "" {
		if prev, err = loadPrevious(prevPath); err != nil {
			fmt.Fprintf(os.Stderr, "bench: no comparison: %v\n", err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark %s\n\n", rf.When)
	fmt.Fprintf(&b, "`go run ./bench %s` took %s; load average (1, 5, 15 min) %v at the start, %v at the end.\n\n",
		strings.Join(os.Args[1:], " "), took.Round(time.Second), r.Notes["loadavg_start"], r.Notes["loadavg_end"])
	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| host | %s |\n| CPU | %s |\n| cores | %d |\n| memory | %.1f GiB |\n| OS, kernel | %s, %s |\n| Go | %s |\n| libzmq | %s |\n",
		m.Host, m.CPU, m.CPUs, m.MemoryGiB, m.OS, m.Kernel, m.Go, m.LibZMQ)
	for _, s := range slices.Sorted(maps.Keys(r.Versions)) {
		var vs []string
		for _, k := range slices.Sorted(maps.Keys(r.Versions[s])) {
			vs = append(vs, k+" "+r.Versions[s][k])
		}
		fmt.Fprintf(&b, "| %s peer | %s |\n", s, strings.Join(vs, ", "))
	}
	renderRatios(&b, o, r, prev)
	b.WriteString("\n## Curves\n\nEvery system on one chart per curve; the tables give the points.\n")
	for _, c := range curves() {
		drawn, err := drawCurve(dir, c, r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		fmt.Fprintf(&b, "\n### %s\n\n", c.Title)
		if drawn {
			fmt.Fprintf(&b, "![%s](%s)\n\n", c.Title, c.File)
		}
		renderPoints(&b, c, r)
	}
	renderAll(&b, r)
	if sk, ok := r.Notes["skipped"].(map[string]map[string]string); ok && len(sk) > 0 {
		b.WriteString("\n## Not measured\n\n")
		for _, s := range slices.Sorted(maps.Keys(sk)) {
			for _, k := range slices.Sorted(maps.Keys(sk[s])) {
				fmt.Fprintf(&b, "- %s, %s: %s\n", s, k, sk[s][k])
			}
		}
	}
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(r.Notes)) {
		if strings.HasSuffix(k, "_error") || strings.HasSuffix(k, "_skipped") {
			errs = append(errs, fmt.Sprintf("- %s: %v\n", k, r.Notes[k]))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Errors and skipped groups\n\n" + strings.Join(errs, ""))
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	fmt.Println("saved", dir+"/{report.md,results.json,*.svg}")
	return nil
}

// renderRatios writes the table: each target against each peer
// in this run, then beside the previous run's ratios.
func renderRatios(b *strings.Builder, o options, r *Run, prev *previousRun) {
	b.WriteString("\n## Targets\n\nratio: how many times better we are (throughput: ours/theirs; times: theirs/ours), peers run in this invocation.\n\n")
	b.WriteString("| measure | ipp | ipyparallel | ratio | target | met | dask | ratio | target | met | floor (same run) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range targets(o) {
		v, ok := r.Ours[t.Key]
		if !ok {
			continue
		}
		cells := []string{t.Label, fmtNum(v)}
		for _, p := range systems[1:] {
			pv, pok := valueOf(r, p, t.Key)
			goal, hasGoal := t.Goals[p]
			c := []string{"", "", "", ""}
			if pok {
				x := ratio(t, v, pv)
				c[0], c[1] = fmtNum(pv), fmtRatio(x)
				if hasGoal {
					c[3] = metWord(x >= goal)
				}
			}
			if hasGoal {
				c[2] = fmt.Sprintf("≥ %gx", goal)
			}
			cells = append(cells, c...)
		}
		var fl []string
		if t.Absolute > 0 {
			ok := v <= t.Absolute
			if t.Higher {
				ok = v >= t.Absolute
			}
			fl = append(fl, fmt.Sprintf("bound %g: %s", t.Absolute, metWord(ok)))
		}
		for _, k := range t.Floor {
			if fv, ok := r.Floor[k]; ok {
				fl = append(fl, fmt.Sprintf("%s %s", strings.TrimSuffix(strings.SplitN(k, "_s_", 2)[0], "_"), fmtNum(fv)))
			}
		}
		cells = append(cells, strings.Join(fl, ", "))
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
	if prev == nil {
		b.WriteString("\nNo previous run to compare with (-compare file.json).\n")
		return
	}
	fmt.Fprintf(b, "\n### Against the previous run\n\n`%s`. A target holds when it is met in both runs.\n\n", prev.Name)
	b.WriteString("| measure | peer | ipp now / before | ratio now / before | target | met in both |\n|---|---|---|---|---|---|\n")
	rows := 0
	defer func() {
		if rows == 0 {
			b.WriteString("| (no measure of this run was taken with the same sizes there) | | | | | |\n")
		}
	}()
	for _, t := range targets(o) {
		v, ok := r.Ours[t.Key]
		pv, pok := prev.Ipp[t.Key]
		if !ok || !pok || !prev.sameSizes(o, t.Key) {
			continue
		}
		for _, p := range systems[1:] {
			now, nok := valueOf(r, p, t.Key)
			before, bok := prev.Peers[p][t.Key]
			if !nok || !bok || before <= 0 {
				continue
			}
			x1, x2 := ratio(t, v, now), ratio(t, pv, before)
			goal, hasGoal := t.Goals[p]
			g, met := "", ""
			if hasGoal {
				g, met = fmt.Sprintf("≥ %gx", goal), metWord(x1 >= goal && x2 >= goal)
			}
			fmt.Fprintf(b, "| %s | %s | %s / %s | %s / %s | %s | %s |\n", t.Label, p, fmtNum(v), fmtNum(pv), fmtRatio(x1), fmtRatio(x2), g, met)
			rows++
		}
	}
}

// renderPoints writes a curve's values as a table, a row per point.
func renderPoints(b *strings.Builder, c Curve, r *Run) {
	head := []string{c.XLabel + " \\ " + c.YLabel}
	head = append(head, systems...)
	for _, e := range c.Extra {
		head = append(head, e.Label)
	}
	fmt.Fprintf(b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, x := range c.Xs(r.Opts) {
		row := []string{strconv.Itoa(x)}
		for _, s := range systems {
			row = append(row, cellFor(r, s, c.Key(x)))
		}
		for _, e := range c.Extra {
			row = append(row, cellFor(r, "floor", e.Key(x)))
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(row, " | "))
	}
}

// cellFor is a value, or "—" with the reason when it was skipped.
func cellFor(r *Run, system, key string) string {
	if v, ok := valueOf(r, system, key); ok {
		return fmtNum(v)
	}
	// valueOf leaves zeros out for the log-scale charts; a counted zero
	// (processes left after stop) is still a number here.
	if system == "ipp" {
		if v, ok := r.Ours[key]; ok && v == 0 {
			return "0"
		}
	}
	if sk, ok := r.Notes["skipped"].(map[string]map[string]string); ok {
		if why, ok := sk[system][key]; ok {
			return "— (" + why + ")"
		}
	}
	return ""
}

// renderAll lists every number of the run, per key.
func renderAll(b *strings.Builder, r *Run) {
	keys := map[string]bool{}
	for _, m := range append([]results{r.Ours, r.Floor}, slices.Collect(maps.Values(r.Peers))...) {
		for k := range m {
			keys[k] = true
		}
	}
	b.WriteString("\n## Every number\n\n| key | ipp | ipyparallel | dask | floor |\n|---|---|---|---|---|\n")
	for _, k := range slices.SortedFunc(maps.Keys(keys), cmp.Compare[string]) {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", k, cellFor(r, "ipp", k), cellFor(r, "ipyparallel", k), cellFor(r, "dask", k), cellFor(r, "floor", k))
	}
}
