package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// Row is one behaviour of the table. Register rows with addRow from an
// init function of a rows_<area>_test.go file.
type Row struct {
	// Area groups rows in the table ("views", "errors", "hub", ...).
	Area string
	// Behaviour is what is checked, in a few words; unique per fixture.
	Behaviour string
	// Direction overrides the fixture's direction (who talks to whom).
	Direction string
	// Fixture names the shared cluster the row runs on (fix* constants).
	Fixture string
	// Phase orders rows of a fixture: all rows of a phase run (Python
	// checks first, in one client process) before the next phase.
	Phase int
	// Py names the Python check (check_<Py> in testdata/checks_*.py) whose
	// result Check receives; empty for rows that drive Go code.
	Py string
	// Check asserts the behaviour. For Py rows got holds the check's
	// result; for Go rows it is the zero PyResult.
	Check func(r *R, got PyResult)
}

var rows []Row

// addRow registers a row; init functions call it.
func addRow(row Row) { rows = append(rows, row) }

// PyResult is one Python check's outcome as the driver printed it.
type PyResult struct {
	Check string          `json:"check"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// Into decodes the check's value into v, failing the row when the check
// raised or its value has another shape.
func (p PyResult) Into(r *R, v any) {
	r.Helper()
	if !p.OK {
		r.Fatalf("Python raised %s", p.Error)
	}
	if err := json.Unmarshal(p.Value, v); err != nil {
		r.Fatalf("Python check %s returned %s: %v", p.Check, p.Value, err)
	}
}

// Is fails the row unless the check's value equals want (compared after a
// JSON round trip of want, so Go literals compare with decoded JSON).
func (p PyResult) Is(r *R, want any) {
	r.Helper()
	var got any
	p.Into(r, &got)
	raw, err := json.Marshal(want)
	if err != nil {
		r.Fatal(err)
	}
	var w any
	if err := json.Unmarshal(raw, &w); err != nil {
		r.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		r.Errorf("got %s, want %s", p.Value, raw)
	}
}

// R is a row's test: failures and skips are also kept for the table.
type R struct {
	*testing.T
	fix  *Fixture
	mu   sync.Mutex
	msgs []string
}

func (r *R) note(msg string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
}

// Errorf records and reports a failure.
func (r *R) Errorf(format string, args ...any) {
	r.Helper()
	r.note(fmt.Sprintf(format, args...))
	r.T.Errorf(format, args...)
}

// Fatalf records and reports a failure and ends the row.
func (r *R) Fatalf(format string, args ...any) {
	r.Helper()
	r.note(fmt.Sprintf(format, args...))
	r.T.Fatalf(format, args...)
}

// Fatal is Fatalf with Sprint formatting.
func (r *R) Fatal(args ...any) {
	r.Helper()
	r.Fatalf("%s", fmt.Sprint(args...))
}

// Equal fails the row unless got and want are deeply equal.
func (r *R) Equal(what string, got, want any) {
	r.Helper()
	if !reflect.DeepEqual(got, want) {
		r.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// Fixture is the cluster the row runs on.
func (r *R) Fixture() *Fixture { return r.fix }

// Context is a context for one Go-side step, ended with the row.
func (r *R) Context(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	r.Cleanup(cancel)
	return ctx
}

// outcome is one line of the table.
type outcome struct {
	Area, Behaviour, Direction, Result, Reason string
}

var (
	outcomesMu sync.Mutex
	outcomes   []outcome
)

func record(o outcome) {
	outcomesMu.Lock()
	outcomes = append(outcomes, o)
	outcomesMu.Unlock()
}

// Fixture is a cluster shared by the rows that name it. Start brings it
// up (every process it starts must have f.Env, which marks them for the
// final sweep); its Cleanup stops it.
type Fixture struct {
	Name string
	// PyDirection and GoDirection are the table's direction for Python
	// and Go rows.
	PyDirection, GoDirection string
	// NeedPython lists the Python modules the fixture needs.
	NeedPython []string
	Start      func(f *Fixture, t *testing.T) error

	// Filled in by Start (and by rows that change the cluster).
	Dir        string   // scratch directory, removed at the end
	Env        []string // environment of every process started
	ClientFile string   // the client connection file Python and Go clients use
	Engines    int      // engines the Python driver waits for
	// Values lets a fixture hand its rows more (binary paths, pids).
	Values map[string]string
	// Go is the fixture's Go client, connected on first use.
	Go *goClient
}

var fixtures []*Fixture

// addFixture registers a fixture; fixtures run in registration order.
func addFixture(f *Fixture) { fixtures = append(fixtures, f) }

func TestMain(m *testing.M) {
	code := m.Run()
	if len(outcomes) > 0 {
		table := markdownTable()
		fmt.Print("\nPython interoperability conformance table\n\n" + table)
		if path := os.Getenv("IPP_CONFORMANCE_TABLE"); path != "" {
			if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "writing the conformance table:", err)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// markdownTable renders the outcomes grouped by area, in the order areas
// first appeared.
func markdownTable() string {
	outcomesMu.Lock()
	list := slices.Clone(outcomes)
	outcomesMu.Unlock()
	first := map[string]int{}
	for i, o := range list {
		if _, ok := first[o.Area]; !ok {
			first[o.Area] = i
		}
	}
	slices.SortStableFunc(list, func(a, b outcome) int { return first[a.Area] - first[b.Area] })
	var b strings.Builder
	b.WriteString("| area | behaviour | direction | result |\n|---|---|---|---|\n")
	counts := map[string]int{}
	for _, o := range list {
		res := o.Result
		if o.Reason != "" {
			res += ": " + o.Reason
		}
		counts[o.Result]++
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(o.Area), cell(o.Behaviour), cell(o.Direction), cell(res))
	}
	fmt.Fprintf(&b, "\n%d rows: %d PASS, %d FAIL, %d SKIP\n", len(list), counts["PASS"], counts["FAIL"], counts["SKIP"])
	return b.String()
}

// cell makes text safe for one Markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// beforeRun holds what must happen once every init function registered
// its rows (e.g. deriving rows from others).
var beforeRun []func()

// TestConformance runs every fixture's rows and records each outcome.
func TestConformance(t *testing.T) {
	for _, fn := range beforeRun {
		fn()
	}
	beforeRun = nil
	for _, f := range fixtures {
		var mine []Row
		for _, row := range rows {
			if row.Fixture == f.Name {
				mine = append(mine, row)
			}
		}
		if len(mine) == 0 {
			continue
		}
		t.Run(f.Name, func(t *testing.T) { runFixture(t, f, mine) })
	}
	for _, row := range rows {
		if !slices.ContainsFunc(fixtures, func(f *Fixture) bool { return f.Name == row.Fixture }) {
			t.Errorf("row %q names fixture %q, which is not registered", row.Behaviour, row.Fixture)
		}
	}
}

func runFixture(t *testing.T, f *Fixture, mine []Row) {
	var startErr error
	missing := ""
	if len(f.NeedPython) > 0 {
		args := append([]string{"-c", "import sys\nfor m in sys.argv[1:]: __import__(m)"}, f.NeedPython...)
		if out, err := exec.Command(testutil.Python, args...).CombinedOutput(); err != nil {
			missing = fmt.Sprintf("%s cannot import %v (apt-get install python3-ipyparallel python3-zmq python3-numpy): %v %s", testutil.Python, f.NeedPython, err, bytes.TrimSpace(out))
		}
	}
	if missing == "" {
		f.Dir = t.TempDir()
		// A marker every process of this fixture inherits: the sweep at
		// the end finds them (and the nannies Python engines fork into
		// sessions of their own) by it, and nothing else.
		marker := "IPP_CONFORMANCE_RUN=" + f.Dir
		f.Env = append(os.Environ(), marker, "IPYTHONDIR="+filepath.Join(f.Dir, "ipython"), "IPP_NONINTERACTIVE=1")
		f.Values = map[string]string{}
		t.Cleanup(func() { sweep(marker) })
		t.Cleanup(func() {
			if f.Go != nil {
				f.Go.close()
				f.Go = nil
			}
		})
		startErr = f.Start(f, t)
		if startErr != nil {
			t.Logf("fixture %s did not start: %v", f.Name, startErr)
		}
	}
	var phases []int
	for _, row := range mine {
		if !slices.Contains(phases, row.Phase) {
			phases = append(phases, row.Phase)
		}
	}
	slices.Sort(phases)
	for _, ph := range phases {
		var names []string
		for _, row := range mine {
			if row.Phase == ph && row.Py != "" {
				names = append(names, row.Py)
			}
		}
		var results map[string]PyResult
		var driverErr error
		if missing == "" && startErr == nil && len(names) > 0 {
			results, driverErr = runDriver(t, f, names)
		}
		for _, row := range mine {
			if row.Phase != ph {
				continue
			}
			dir := row.Direction
			if dir == "" {
				dir = f.GoDirection
				if row.Py != "" {
					dir = f.PyDirection
				}
			}
			t.Run(row.Behaviour, func(t *testing.T) {
				r := &R{T: t, fix: f}
				defer func() {
					o := outcome{Area: row.Area, Behaviour: row.Behaviour, Direction: dir, Result: "PASS"}
					switch {
					case t.Failed():
						o.Result = "FAIL"
						o.Reason = missing
						if len(r.msgs) > 0 {
							o.Reason = r.msgs[0]
						}
					case t.Skipped():
						o.Result, o.Reason = "SKIP", missing
					}
					record(o)
				}()
				switch {
				case missing != "":
					testutil.Missing(t, "%s", missing)
				case startErr != nil:
					r.Fatalf("the %s cluster did not start: %v", f.Name, startErr)
				}
				got := PyResult{Check: row.Py, OK: true}
				if row.Py != "" {
					var ok bool
					if got, ok = results[row.Py]; !ok {
						r.Fatalf("the Python client gave no result for %s: %v", row.Py, driverErr)
					}
				}
				row.Check(r, got)
			})
		}
	}
}

// runDriver runs testdata/driver.py once with the named checks and
// returns what each printed.
func runDriver(t *testing.T, f *Fixture, names []string) (map[string]PyResult, error) {
	// Checks take seconds; the driver's own alarm ends a hung one after a
	// minute. This bounds a driver stuck where the alarm cannot reach.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(len(names))*15*time.Second)
	defer cancel()
	state := filepath.Join(f.Dir, "driver-state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	args := append([]string{"testdata/driver.py", f.ClientFile, strconv.Itoa(f.Engines), state}, names...)
	cmd := exec.CommandContext(ctx, testutil.Python, args...)
	cmd.Env = f.Env
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	results := map[string]PyResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var res PyResult
		if json.Unmarshal(sc.Bytes(), &res) == nil && res.Check != "" {
			results[res.Check] = res
		}
	}
	if err != nil || len(results) < len(names) {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		t.Logf("python driver (%v): %v\nstderr:\n%s", names, err, tail)
		return results, fmt.Errorf("python driver: %v; %s", err, lastLine(tail))
	}
	return results, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
