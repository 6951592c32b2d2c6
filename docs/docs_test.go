// Package docs_test runs every code block of docs/*.md and README.md, so
// that the documentation cannot drift from the code.
//
// # Fence conventions
//
// Every code block is fenced (```), and its info string says what it is:
// the first word is the language, the rest are directives. An unfenced
// (indented) code block, a fence without a language, a language this test
// does not know and a "no-run:" without a reason all fail the test.
//
//	```sh             shell commands, run by bash -e in document order; must exit 0
//	```sh exit=1      the same, expected to exit with that status
//	```go             a complete program (package main): built and run, must exit 0
//	```go fragment    statements for the body of main, with ctx (context.Context)
//	                  defined, and c (*ipp.Client, connected to the default
//	                  profile) unless the fragment declares c itself; fmt, log,
//	                  time, errors, strings, os, context and ipp need no import;
//	                  wrapped, built and run (variables it declares count as used)
//	```go engine      Go run on every engine of the running cluster (ipcluster exec)
//	```python         run by /usr/bin/python3 (needs python3-ipyparallel)
//	```output         what a command printed: shown, not run
//	```text           not code (a config file, a message): shown, not run
//	```LANG no-run: REASON   never run; REASON says why (e.g. "needs a multi-node Slurm")
//	```LANG needs=mpi        run only when MPI is installed (also: python, slurm;
//	                         comma-separated); otherwise skipped loudly, failed when CI=true
//
// A line <!-- doctest: DIRECTIVES --> applies the directives to every
// block after it (put it at the top: <!-- doctest: needs=mpi -->), and
// <!-- doctest-setup: COMMAND --> runs COMMAND (bash) at that point of the
// file without showing it to readers (e.g. a cluster for a fragment that
// follows a block which stopped the previous one). Use it sparingly: what
// readers run should be what the test runs.
//
// Each file is one session: the blocks run in order in one working
// directory that looks like a checkout (the repository's top-level entries
// linked, bin/ipcluster freshly built), with HOME and IPYTHONDIR in a
// temporary directory (so ~/.ipython in a block is the session's). A
// file's own `bin/ipcluster start` starts its cluster, so later blocks run
// against it; the first failing block ends the file's run, and whatever is
// still running at the end is stopped. New docs files are picked up by the
// glob; `go test -run 'TestDocs/laptop' ./docs` runs one file.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/launchers"
)

// block is one fenced code block.
type block struct {
	file  string
	line  int // of the opening fence
	lang  string
	words []string // directives after the language
	noRun string   // reason after "no-run:", "" when it runs
	needs []string
	exit  int
	text  string
}

func (b block) String() string { return fmt.Sprintf("%s:%d (```%s)", b.file, b.line, b.lang) }

func (b block) has(word string) bool {
	for _, w := range b.words {
		if w == word {
			return true
		}
	}
	return false
}

var (
	fenceRE    = regexp.MustCompile("^( {0,3})(```+|~~~+)\\s*(.*)$")
	fileDirRE  = regexp.MustCompile(`^<!--\s*doctest:\s*(.*?)\s*-->\s*$`)
	setupRE    = regexp.MustCompile(`^<!--\s*doctest-setup:\s*(.*?)\s*-->\s*$`)
	listItemRE = regexp.MustCompile(`^\s*([-*+]|\d+[.)])\s`)
)

// knownLangs are the languages a block may have; the runner says what
// happens to each.
var knownLangs = map[string]bool{"sh": true, "go": true, "python": true, "output": true, "text": true}

// parse splits a markdown file into its blocks, file-level directives and
// setup commands, and reports every problem it finds in the conventions.
func parse(name, src string) (blocks []block, problems []string) {
	var fileWords []string
	lines := strings.Split(src, "\n")
	prevBlank, inList := true, false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := fileDirRE.FindStringSubmatch(l); m != nil {
			fileWords = append(fileWords, strings.Fields(m[1])...)
		}
		if m := setupRE.FindStringSubmatch(l); m != nil {
			blocks = append(blocks, block{file: name, line: i + 1, lang: "sh", words: []string{"setup"}, text: m[1] + "\n"})
		}
		m := fenceRE.FindStringSubmatch(l)
		if m == nil {
			trimmed := strings.TrimSpace(l)
			switch {
			case trimmed == "":
				prevBlank = true
				continue
			case listItemRE.MatchString(l):
				inList = true
			case prevBlank && !inList && (strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t")):
				problems = append(problems, fmt.Sprintf("%s:%d: indented code block: use a fenced block with a language (docs/docs_test.go lists them)", name, i+1))
			case prevBlank && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t"):
				inList = false
			}
			prevBlank = false
			continue
		}
		indent, fence, info := m[1], m[2], m[3]
		b := block{file: name, line: i + 1}
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			if strings.HasPrefix(strings.TrimLeft(lines[i], " "), fence) && strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(lines[i]), fence[:1])) == "" {
				closed = true
				break
			}
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if !closed {
			problems = append(problems, fmt.Sprintf("%s: fence never closed", b))
		}
		b.text = strings.Join(body, "\n") + "\n"
		// Everything after "no-run:" is the reason, spaces included.
		if before, reason, ok := strings.Cut(info, "no-run:"); ok {
			info, b.noRun = before, strings.TrimSpace(reason)
			if b.noRun == "" {
				problems = append(problems, fmt.Sprintf("%s:%d: no-run: needs a reason", name, b.line))
			}
		}
		f := strings.Fields(info)
		if len(f) == 0 {
			problems = append(problems, fmt.Sprintf("%s:%d: fence without a language (```sh, ```go, ```output ... see docs/docs_test.go)", name, b.line))
			continue
		}
		b.lang = f[0]
		if !knownLangs[b.lang] {
			problems = append(problems, fmt.Sprintf("%s: unknown language %q (known: sh, go, python, output, text)", b, b.lang))
		}
		for _, w := range append(f[1:], fileWords...) {
			switch {
			case strings.HasPrefix(w, "needs="):
				b.needs = append(b.needs, strings.Split(strings.TrimPrefix(w, "needs="), ",")...)
			case strings.HasPrefix(w, "exit="):
				n, err := strconv.Atoi(strings.TrimPrefix(w, "exit="))
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: bad %q", b, w))
				}
				b.exit = n
			case w == "fragment" || w == "engine":
				b.words = append(b.words, w)
			default:
				problems = append(problems, fmt.Sprintf("%s: unknown directive %q", b, w))
			}
		}
		if (b.has("fragment") || b.has("engine")) && b.lang != "go" {
			problems = append(problems, fmt.Sprintf("%s: fragment and engine are for go blocks", b))
		}
		if b.lang == "go" && b.noRun == "" && !b.has("fragment") && !b.has("engine") &&
			!regexp.MustCompile(`(?m)^package main\s*$`).MatchString(b.text) {
			problems = append(problems, fmt.Sprintf("%s: a go block is a whole program (package main), or marked fragment, engine or no-run", b))
		}
		blocks = append(blocks, b)
		prevBlank = true
	}
	return blocks, problems
}

// docFiles are the files whose blocks are tested.
func docFiles(t *testing.T) []string {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	sort.Strings(files)
	return files
}

// TestDocsConventions checks every block's fence without running
// anything, so a bad fence is reported even in -short mode.
func TestDocsConventions(t *testing.T) {
	for _, f := range docFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, problems := parse(f, string(src))
		for _, p := range problems {
			t.Error(p)
		}
	}
}

// TestParseRejects proves the conventions check can fail.
func TestParseRejects(t *testing.T) {
	for _, src := range []string{
		"text\n\n```\nls\n```\n",
		"text\n\n    bin/ipcluster list\n",
		"```sh no-run:\nls\n```\n",
		"```bash\nls\n```\n",
		"```go\nfmt.Println(1)\n```\n",
		"```sh fragment\nls\n```\n",
	} {
		if _, p := parse("x.md", src); len(p) == 0 {
			t.Errorf("accepted:\n%s", src)
		}
	}
	good := "- a list item\n\n    continued in the list\n\n```sh needs=mpi\nls\n```\n```output\nfile\n```\n```go no-run: a sketch\nx := 1\n```\n"
	if b, p := parse("x.md", good); len(p) != 0 || len(b) != 3 || b[0].needs[0] != "mpi" || b[2].noRun != "a sketch" {
		t.Errorf("good file: blocks %+v, problems %q", b, p)
	}
}

// TestDocs runs every block of every file (see the package comment).
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documentation's commands against real clusters")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range docFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blocks, problems := parse(f, string(src))
		if len(problems) > 0 {
			continue // TestDocsConventions reports them
		}
		runnable := false
		for _, b := range blocks {
			runnable = runnable || (b.noRun == "" && b.lang != "output" && b.lang != "text" && !b.has("setup"))
		}
		if !runnable {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".md"), func(t *testing.T) {
			s := newSession(t, root)
			for _, b := range blocks {
				if !s.run(t, b) {
					return
				}
			}
		})
	}
}

// session is one file's run: a working directory, a profile tree and the
// environment its blocks share.
type session struct {
	dir string
	ipy string
	env []string
}

func newSession(t *testing.T, root string) *session {
	t.Helper()
	s := &session{dir: t.TempDir(), ipy: t.TempDir()}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "bin", "dist", ".git":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(s.dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// bin/ipcluster as `make build` makes it: with the installed MPI.
	built := testutil.IPCluster(t, nonEmpty(testutil.MPITag())...)
	if err := os.MkdirAll(filepath.Join(s.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(built, filepath.Join(s.dir, "bin", "ipcluster")); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, protocol.EnvPrefix) && !strings.HasPrefix(kv, "IPYTHONDIR=") && !strings.HasPrefix(kv, "HOME=") {
			s.env = append(s.env, kv)
		}
	}
	// HOME too: docs write ~/.ipython paths literally.
	s.env = append(s.env, "IPYTHONDIR="+filepath.Join(s.ipy, ".ipython"), "HOME="+s.ipy, protocol.EnvNonInteractive+"=1",
		"PATH="+filepath.Join(s.dir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	if cache, err := os.UserCacheDir(); err == nil && os.Getenv("GOCACHE") == "" {
		// A new HOME must not mean a cold build cache.
		s.env = append(s.env, "GOCACHE="+filepath.Join(cache, "go-build"))
	}
	if mod := goEnv("GOMODCACHE"); mod != "" {
		s.env = append(s.env, "GOMODCACHE="+mod, "GOPATH="+goEnv("GOPATH"))
	}
	t.Cleanup(func() { s.stopAll(t) })
	return s
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// need reports whether b's requirements are met; a missing one is
// skipped loudly, or an error in CI.
func (s *session) need(t *testing.T, b block) bool {
	for _, n := range b.needs {
		var missing string
		switch n {
		case "mpi":
			if testutil.MPITag() == "" {
				missing = "no MPI installed (libopenmpi-dev or libmpich-dev)"
			}
		case "python":
			if err := exec.Command(testutil.Python, "-c", "import ipyparallel").Run(); err != nil {
				missing = "python3-ipyparallel not installed"
			}
		case "slurm":
			if _, err := exec.LookPath("sbatch"); err != nil {
				missing = "no Slurm"
			}
		default:
			t.Errorf("%s: unknown need %q (mpi, python, slurm)", b, n)
			return false
		}
		if missing != "" {
			if testutil.InCI() {
				t.Errorf("%s: CI=true and %s", b, missing)
			} else {
				t.Logf("SKIPPING %s (this fails in CI): %s", b, missing)
			}
			return false
		}
	}
	return true
}

// run runs one block and reports whether the file may go on (a failed
// block usually leaves the next ones without their cluster).
func (s *session) run(t *testing.T, b block) bool {
	t.Helper()
	if b.noRun != "" || b.lang == "output" || b.lang == "text" {
		return true
	}
	if !s.need(t, b) {
		return !blockStarts(b) // the blocks after it would run without their cluster
	}
	switch {
	case b.lang == "sh":
		return s.shell(t, b)
	case b.lang == "python":
		return s.exec(t, b, exec.Command(testutil.Python, "-c", b.text))
	case b.lang == "go" && b.has("engine"):
		return s.exec(t, b, exec.Command(filepath.Join(s.dir, "bin", "ipcluster"), "exec", b.text))
	case b.lang == "go":
		src := b.text
		if b.has("fragment") {
			var err error
			if src, err = wrapFragment(b.text); err != nil {
				t.Errorf("%s: %v", b, err)
				return false
			}
		}
		dir := filepath.Join(s.dir, "doctest", fmt.Sprintf("%s_%d", strings.TrimSuffix(filepath.Base(b.file), ".md"), b.line))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return s.exec(t, b, exec.Command("go", "run", "./"+filepath.Join("doctest", filepath.Base(dir))))
	}
	t.Errorf("%s: no way to run it", b)
	return false
}

// blockStarts tells whether a skipped block would have started the
// cluster the rest of the file uses.
func blockStarts(b block) bool { return strings.Contains(b.text, "ipcluster start") }

func (s *session) shell(t reporter, b block) bool {
	return s.exec(t, b, exec.Command("bash", "-e", "-o", "pipefail", "-c", b.text))
}

// exec runs cmd in the session and checks its exit status.
// reporter is the part of testing.T that exec reports through, so that a
// test can check that a failing block is reported.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

func (s *session) exec(t reporter, b block, cmd *exec.Cmd) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Dir, c.Env = s.dir, s.env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = 5 * time.Second // a daemonized controller keeps the pipe open
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		t.Errorf("%s: %v\n%s", b, err, out.String())
		return false
	}
	if ctx.Err() != nil {
		t.Errorf("%s: still running after 3 minutes\n%s", b, out.String())
		return false
	}
	if code != b.exit {
		t.Errorf("%s: exit status %d, want %d\n--- block ---\n%s--- output ---\n%s", b, code, b.exit, b.text, out.String())
		s.dumpLogs(t)
		return false
	}
	shown := out.String()
	if len(shown) > 2000 {
		shown = "..." + shown[len(shown)-2000:]
	}
	t.Logf("%s: ok in %v\n%s", b, time.Since(start).Round(time.Millisecond), shown)
	return true
}

func (s *session) dumpLogs(t reporter) {
	logs, _ := filepath.Glob(filepath.Join(s.ipy, ".ipython", "profile_*", "log", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		t.Logf("--- %s ---\n%s", l, data)
	}
}

// stopAll stops every cluster the file left running, then kills whatever
// a cluster file that survived still lists, so no test leaves processes
// behind.
func (s *session) stopAll(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(s.ipy, ".ipython", "profile_*", "security", "cluster-*.json"))
	for _, f := range files {
		cid := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "cluster-"), ".json")
		profileDir := filepath.Dir(filepath.Dir(f))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c := exec.CommandContext(ctx, filepath.Join(s.dir, "bin", "ipcluster"), "stop", "--profile-dir", profileDir, "--cluster-id", cid)
		c.Env = s.env
		out, err := c.CombinedOutput()
		cancel()
		t.Logf("the file left cluster %q running; stop: %v\n%s", cid, err, out)
		for _, pid := range recordedPIDs(f) {
			if launchers.PIDAlive(pid) {
				t.Errorf("pid %d of cluster %q still alive after stop: killing it", pid, cid)
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// recordedPIDs are the processes a cluster file lists (none when the
// file is gone, as after a successful stop).
func recordedPIDs(path string) []int {
	f, err := launchers.ReadClusterFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	var ctl struct{ PID int }
	json.Unmarshal(f.Controller.State, &ctl)
	pids = append(pids, ctl.PID)
	for _, st := range f.Engines.Sets {
		var set struct {
			PID     int
			Engines map[string]struct{ PID int }
		}
		json.Unmarshal(st, &set)
		pids = append(pids, set.PID)
		for _, e := range set.Engines {
			pids = append(pids, e.PID)
		}
	}
	return slices.DeleteFunc(pids, func(p int) bool { return p <= 0 })
}

// fragmentImports are the packages a fragment may use without importing
// them: the wrapper imports those it mentions.
var fragmentImports = map[string]string{
	"fmt": "fmt", "log": "log", "time": "time", "errors": "errors", "strings": "strings", "os": "os",
	"ipp": "github.com/ipp-hpc/ipp", "context": "context",
}

// wrapFragment makes a program of statements that use ctx and c: it
// connects to the default profile, runs them, and marks each variable they
// declare as used (a fragment shows a value, it need not print it).
func wrapFragment(body string) (string, error) {
	fset := token.NewFileSet()
	probe := "package p\nfunc _() {\n" + body + "\n}\n"
	f, err := parser.ParseFile(fset, "fragment.go", probe, 0)
	if err != nil {
		return "", fmt.Errorf("not a list of statements: %w", err)
	}
	var declared []string
	for _, st := range f.Decls[0].(*ast.FuncDecl).Body.List {
		as, ok := st.(*ast.AssignStmt)
		if !ok || as.Tok != token.DEFINE {
			continue
		}
		for _, l := range as.Lhs {
			if id, ok := l.(*ast.Ident); ok && id.Name != "_" {
				declared = append(declared, id.Name)
			}
		}
	}
	connect := !slices.Contains(declared, "c")
	// A package counts as used when the code selects from it (time.Second),
	// not when its name appears in a string (a snippet sent to engines).
	selected := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if se, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := se.X.(*ast.Ident); ok {
				selected[id.Name] = true
			}
		}
		return true
	})
	var imports []string
	for name, path := range fragmentImports {
		used := selected[name]
		if used || name == "context" || (connect && (name == "ipp" || name == "log")) {
			imports = append(imports, strconv.Quote(path))
		}
	}
	sort.Strings(imports)
	var w strings.Builder
	fmt.Fprintf(&w, "package main\n\nimport (\n\t%s\n)\n\n", strings.Join(imports, "\n\t"))
	w.WriteString("func main() {\n\tctx, cancel := context.WithTimeout(context.Background(), 2*60*1e9)\n\tdefer cancel()\n")
	if connect {
		w.WriteString("\tc, err := ipp.ConnectProfile(ctx, \"default\", \"\")\n\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer c.Close()\n")
		w.WriteString("\tif err := c.WaitForEngines(ctx, 1); err != nil {\n\t\tlog.Fatal(err)\n\t}\n\t_ = err\n")
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		w.WriteString("\t" + sc.Text() + "\n")
	}
	for _, d := range declared {
		w.WriteString("\t_ = " + d + "\n")
	}
	w.WriteString("}\n")
	return w.String(), nil
}

// recorder collects what exec reports.
type recorder struct{ errs []string }

func (r *recorder) Helper()                      {}
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) Errorf(f string, args ...any) { r.errs = append(r.errs, fmt.Sprintf(f, args...)) }

// TestRunnerReportsFailures: a block that exits with another status than
// its fence says fails the file, with the block and its output shown.
func TestRunnerReportsFailures(t *testing.T) {
	s := &session{dir: t.TempDir(), ipy: t.TempDir(), env: os.Environ()}
	for _, c := range []struct {
		b    block
		fail bool
	}{
		{block{file: "x.md", lang: "sh", text: "echo out; exit 3\n"}, true},
		{block{file: "x.md", lang: "sh", exit: 3, text: "exit 3\n"}, false},
		{block{file: "x.md", lang: "sh", exit: 1, text: "true\n"}, true},
		{block{file: "x.md", lang: "sh", text: "false\necho never\n"}, true}, // bash -e
	} {
		r := &recorder{}
		ok := s.shell(r, c.b)
		if ok == c.fail || (len(r.errs) > 0) != c.fail {
			t.Errorf("%q exit=%d: ok %v, errors %q", c.b.text, c.b.exit, ok, r.errs)
		}
		if c.fail && len(r.errs) > 0 && c.b.text == "echo out; exit 3\n" && !strings.Contains(r.errs[0], "out") {
			t.Errorf("the failure does not show the output: %q", r.errs[0])
		}
	}
}
