package cli

import (
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// scriptSource feeds the console a fixed list of lines; an entry that is
// "^C" stands for Ctrl-C at the prompt.
type scriptSource struct {
	lines   []string
	prompts []string
	history []string
}

func (s *scriptSource) ReadLine(prompt string) (string, error) {
	s.prompts = append(s.prompts, prompt)
	if len(s.lines) == 0 {
		return "", io.EOF
	}
	l := s.lines[0]
	s.lines = s.lines[1:]
	if l == "^C" {
		return "", errLineInterrupted
	}
	return l, nil
}

func (s *scriptSource) AddHistory(l string) { s.history = append(s.history, l) }
func (s *scriptSource) Close() error        { return nil }

// fakeConsoleClient records cells and answers them with canned output:
// each engine prints the code's first line back.
type fakeConsoleClient struct {
	fakeClient
	mu    sync.Mutex
	cells []fakeCellRecord
	fail  map[int]*RemoteError
}

type fakeCellRecord struct {
	code    string
	targets []int
}

func (c *fakeConsoleClient) EngineList(context.Context) ([]ipp.EngineInfo, error) {
	var out []ipp.EngineInfo
	for _, id := range c.IDs() {
		out = append(out, ipp.EngineInfo{ID: id, Host: "node" + string(rune('a'+id)), PID: 100 + id, MPIRank: id, MPISize: len(c.ids)})
	}
	return out, nil
}

func (c *fakeConsoleClient) Submit(ctx context.Context, code string, targets []int) (ExecRun, error) {
	c.mu.Lock()
	c.cells = append(c.cells, fakeCellRecord{code, targets})
	c.mu.Unlock()
	engines := targets
	if engines == nil {
		engines = c.IDs()
	}
	return &fakeCell{code: code, engines: engines, fail: c.fail}, nil
}

type fakeCell struct {
	code    string
	engines []int
	fail    map[int]*RemoteError
}

func (c *fakeCell) Outputs(ctx context.Context) iter.Seq[ipp.Output] {
	return func(yield func(ipp.Output) bool) {
		first, _, _ := strings.Cut(c.code, "\n")
		// Pieces of one line from two engines, interleaved: the printer
		// must not mix them.
		for _, id := range c.engines {
			if !yield(ipp.Output{Engine: id, Stream: "stdout", Text: "got "}) {
				return
			}
		}
		for _, id := range c.engines {
			if !yield(ipp.Output{Engine: id, Stream: "stdout", Text: first + "\n"}) {
				return
			}
		}
	}
}

func (c *fakeCell) Results(context.Context, func(int, *RemoteError)) ([]ExecResult, error) {
	var out []ExecResult
	for _, id := range c.engines {
		out = append(out, ExecResult{Engine: id, Err: c.fail[id]})
	}
	return out, nil
}

func (c *fakeCell) Interrupt(context.Context) error { return nil }
func (c *fakeCell) Abort(context.Context) error     { return nil }
func (c *fakeCell) Running() []int                  { return c.engines }

func newFakeConsole(lines ...string) (*console, *fakeConsoleClient, *scriptSource, *testutil.SyncBuffer, *testutil.SyncBuffer) {
	out, errOut := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	client := &fakeConsoleClient{}
	client.ids = []int{0, 1, 2, 3}
	src := &scriptSource{lines: lines}
	c := &console{ctx: context.Background(), io: IOStreams{Out: out, ErrOut: errOut}, client: client, in: src,
		interrupts: make(chan struct{}), partialDelay: time.Hour}
	return c, client, src, out, errOut
}

func TestConsoleCellsAndMagics(t *testing.T) {
	c, client, src, out, errOut := newFakeConsole(
		`fmt.Println("one")`,
		"%targets\t 1, 3 ",
		"for i := 0; i < 2; i++ {",
		`	fmt.Println("}", i) // }`,
		"}",
		"x := 1 + \\",
		"  2",
		"half",
		"^C",
		"%targets",
		"%targets 9",
		"%targets 1-",
		"%bogus",
		"%engines",
		"%targets all",
		"last",
		"%quit",
		"never run",
	)
	if err := c.loop(); err != nil {
		t.Fatalf("loop: %v", err)
	}
	want := []fakeCellRecord{
		{`fmt.Println("one")`, nil},
		{"for i := 0; i < 2; i++ {\n\tfmt.Println(\"}\", i) // }\n}", []int{1, 3}},
		{"x := 1 + \n  2", []int{1, 3}},
		{"half", []int{1, 3}},
		{"last", nil},
	}
	// "half" was typed and then Ctrl-C: it is a cell of its own since it
	// is complete; the Ctrl-C line itself runs nothing.
	if len(client.cells) != len(want) {
		t.Fatalf("cells run %+v, want %+v", client.cells, want)
	}
	for i, w := range want {
		if got := client.cells[i]; got.code != w.code || !slices.Equal(got.targets, w.targets) {
			t.Errorf("cell %d: %q on %v, want %q on %v", i, got.code, got.targets, w.code, w.targets)
		}
	}
	o := out.String()
	for _, w := range []string{
		"[stdout:0] got fmt.Println(\"one\")\n[stdout:1] got fmt.Println(\"one\")\n",
		"[stdout:1] got for i := 0; i < 2; i++ {\n[stdout:3] got for i",
		"targets: 1,3\n",
		"targets: 1,3 (registered engines: 0-3)\n",
		"2       nodec  102  2/4       \n",
		"3       noded  103  3/4       *\n",
		"targets: all\n",
	} {
		if !strings.Contains(o, w) {
			t.Errorf("output lacks %q:\n%s", w, o)
		}
	}
	e := errOut.String()
	for _, w := range []string{
		"%targets: no engine 9 (registered engines: 0-3); targets stay 1,3\n",
		`%targets: bad engine range "1-"`,
		"unknown console command %bogus (%help lists them",
	} {
		if !strings.Contains(e, w) {
			t.Errorf("errors lack %q:\n%s", w, e)
		}
	}
	if !slices.Contains(src.prompts, "[1,3]> ") || !slices.Contains(src.prompts, "[all]> ") || !slices.Contains(src.prompts, "  ...: ") {
		t.Errorf("prompts %q", src.prompts)
	}
	if src.history[0] != `fmt.Println("one")` || !slices.Contains(src.history, "%targets\t 1, 3 ") {
		t.Errorf("history %q", src.history)
	}
}

func TestConsoleEOF(t *testing.T) {
	c, client, _, _, _ := newFakeConsole("1", "")
	if err := c.loop(); err != nil {
		t.Fatalf("EOF after a cell: %v", err)
	}
	if len(client.cells) != 1 {
		t.Errorf("cells %+v", client.cells)
	}
	c, client, _, _, _ = newFakeConsole("func f() {", "  x := []int{1,")
	err := c.loop()
	if err == nil || !strings.Contains(err.Error(), `input ended inside an unfinished cell ("{{" is open); it was not run`) {
		t.Errorf("EOF inside a cell: %v", err)
	}
	if len(client.cells) != 0 {
		t.Errorf("an unfinished cell ran: %+v", client.cells)
	}
	// Ctrl-C drops the unfinished cell.
	c, client, _, _, _ = newFakeConsole("func f() {", "^C", "2")
	if err := c.loop(); err != nil || len(client.cells) != 1 || client.cells[0].code != "2" {
		t.Errorf("Ctrl-C inside a cell: %v, cells %+v", err, client.cells)
	}
}

func TestConsoleErrorsShown(t *testing.T) {
	c, client, _, _, errOut := newFakeConsole("panic(1)", "2")
	client.fail = map[int]*RemoteError{2: {Name: "panic", Value: "1", Traceback: []string{"panic: 1", "goroutine 1"}}}
	if err := c.loop(); err != nil {
		t.Fatal(err)
	}
	if e := errOut.String(); strings.Count(e, "[2:execute] panic: 1\ngoroutine 1\n") != 2 {
		t.Errorf("engine errors:\n%s", e)
	}
	if len(client.cells) != 2 {
		t.Errorf("the console stopped after a failing cell: %+v", client.cells)
	}
}

func TestCellOpen(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"x := 1"}, ""},
		{[]string{"f("}, `"("`},
		{[]string{"m := map[string]int{"}, `"{"`},
		{[]string{`s := "{"`}, ""},
		{[]string{`r := '('`}, ""},
		{[]string{`s := "\"{"`}, ""},
		{[]string{"x := 1 // {"}, ""},
		{[]string{"x := `a{", "b"}, "a raw string (`)"},
		{[]string{"x := `a{", "b`"}, ""},
		{[]string{"/* {", "still */ y := 2"}, ""},
		{[]string{"/* {"}, "a /* comment"},
		{[]string{"if x {", "} else {", "}"}, ""},
		{[]string{")"}, ""},
	} {
		if got := cellOpen(tc.lines); got != tc.want {
			t.Errorf("cellOpen(%q) = %q, want %q", tc.lines, got, tc.want)
		}
	}
}

func TestFormatTargets(t *testing.T) {
	for _, tc := range []struct {
		ids  []int
		want string
	}{{nil, "all"}, {[]int{}, ""}, {[]int{3}, "3"}, {[]int{0, 1, 2, 3, 7, 9, 10}, "0-3,7,9-10"}} {
		if got := formatTargets(tc.ids); got != tc.want {
			t.Errorf("formatTargets(%v) = %q, want %q", tc.ids, got, tc.want)
		}
		if len(tc.ids) > 0 {
			back, err := parseTargets(tc.want)
			if err != nil || !slices.Equal(back, tc.ids) {
				t.Errorf("parseTargets(%q) = %v, %v", tc.want, back, err)
			}
		}
	}
}

func TestConsoleHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), historyFileName)
	// An existing file readable by others is tightened to 0600.
	var old []string
	for i := 0; i < historyLimit+5; i++ {
		old = append(old, "line "+string(rune('a'+i%26)))
	}
	if err := os.WriteFile(path, []byte(strings.Join(old, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, f, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(lines) != historyLimit || lines[0] != old[5] {
		t.Errorf("history kept %d lines starting %q", len(lines), lines[0])
	}
	if _, err := f.WriteString("new\n"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if got := strings.Split(strings.TrimSpace(string(data)), "\n"); len(got) != historyLimit+1 || got[len(got)-1] != "new" {
		t.Errorf("history file has %d lines, last %q", len(got), got[len(got)-1])
	}
	// A new file is created 0600 whatever the umask allows.
	fresh := filepath.Join(t.TempDir(), historyFileName)
	_, f2, err := openHistory(fresh)
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("new history file: %v %v", st.Mode(), err)
	}
	// A missing profile folder is created; a history path that is a
	// folder fails (the console then warns and goes on without history).
	deep := filepath.Join(t.TempDir(), "missing", "dir", "h")
	if _, f3, err := openHistory(deep); err != nil {
		t.Errorf("history in a missing folder: %v", err)
	} else {
		f3.Close()
	}
	if _, _, err := openHistory(t.TempDir()); err == nil {
		t.Error("a folder opened as the history file")
	}
}

func TestConsoleCommandFlags(t *testing.T) {
	e := newTestEnv(t)
	var got *ConsoleOptions
	cmd := NewCmdConsole(e.f, func(o *ConsoleOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--targets", "0,2-3", "--profile", "mpi", "--cluster-id", "c1", "--no-history"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Targets, []int{0, 2, 3}) || got.Profile != "mpi" || got.ClusterID != "c1" || !got.NoHistory {
		t.Errorf("options %+v", got)
	}
	cmd = NewCmdConsole(e.f, func(*ConsoleOptions) error { return nil })
	cmd.SetArgs([]string{"--targets", "x"})
	cmd.SetErr(io.Discard)
	cmd.SetOut(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `--targets: bad engine id "x"`) {
		t.Errorf("bad --targets: %v", err)
	}
	// No cluster: exit code 12, like exec.
	err := consoleRun(context.Background(), &ConsoleOptions{F: e.f})
	if ExitCode(err) != ExitNoCluster {
		t.Errorf("console without a cluster: %v (exit %d)", err, ExitCode(err))
	}
}

// gatedClient runs cells that print "started" and then wait: for an
// interrupt when obey is set, else until their context ends. Cells whose
// code is "quick" finish at once.
type gatedClient struct {
	fakeConsoleClient
	obey bool
}

func (c *gatedClient) Submit(ctx context.Context, code string, targets []int) (ExecRun, error) {
	c.mu.Lock()
	c.cells = append(c.cells, fakeCellRecord{code, targets})
	c.mu.Unlock()
	g := &gatedCell{engines: c.IDs(), obey: c.obey, stop: make(chan struct{}), quick: code == "quick"}
	return g, nil
}

type gatedCell struct {
	engines []int
	obey    bool
	quick   bool
	once    sync.Once
	stop    chan struct{}
}

func (g *gatedCell) Outputs(ctx context.Context) iter.Seq[ipp.Output] {
	return func(yield func(ipp.Output) bool) {
		for _, id := range g.engines {
			if !yield(ipp.Output{Engine: id, Stream: "stdout", Text: "started\n"}) {
				return
			}
		}
		if g.quick {
			return
		}
		select {
		case <-g.stop:
		case <-ctx.Done():
		}
	}
}

func (g *gatedCell) Running() []int { return g.engines }

func (g *gatedCell) Interrupt(context.Context) error {
	if g.obey {
		g.once.Do(func() { close(g.stop) })
	}
	return nil
}

func (g *gatedCell) Abort(context.Context) error { return nil }

func (g *gatedCell) Results(ctx context.Context, _ func(int, *RemoteError)) ([]ExecResult, error) {
	if g.quick {
		return nil, nil
	}
	select {
	case <-g.stop:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var out []ExecResult
	for _, id := range g.engines {
		out = append(out, ExecResult{Engine: id, Err: &RemoteError{Name: "Interrupted", Value: "execution interrupted"}})
	}
	return out, nil
}

// startConsole runs consoleRun on a testEnv whose client is client and
// whose standard input is the returned pipe.
func startConsole(t *testing.T, client Client, targets ...int) (*testEnv, *io.PipeWriter, chan error) {
	t.Helper()
	e := newTestEnv(t)
	if err := os.MkdirAll(wire.SecurityDir(e.profileDir()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wire.ClientFile(e.profileDir(), ""), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.f.Connect = func(context.Context, string) (Client, error) { return client, nil }
	r, w := io.Pipe()
	e.f.IO.In = r
	done := make(chan error, 1)
	go func() { done <- consoleRun(context.Background(), &ConsoleOptions{F: e.f, Targets: targets}) }()
	t.Cleanup(func() { w.Close() })
	return e, w, done
}

func waitDone(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the console did not return")
	}
	return nil
}

func TestConsoleInterrupt(t *testing.T) {
	for _, obey := range []bool{true, false} {
		client := &gatedClient{obey: obey}
		client.ids = []int{0, 1}
		e, w, done := startConsole(t, client)
		io.WriteString(w, "for {}\n")
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(e.out.String(), "[stdout:1] started\n") },
			"cell not started:\n%s", e.out)
		e.sigs <- os.Interrupt
		testutil.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(e.err.String(), "^C: interrupting engine(s) 0-1 and waiting for their replies (Ctrl-C again to abandon them)\n")
		}, "no interrupt message:\n%s", e.err)
		if obey {
			testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(e.err.String(), "[1:execute] Interrupted: execution interrupted") },
				"interrupted cell's errors missing:\n%s", e.err)
		} else {
			e.sigs <- os.Interrupt
			testutil.Eventually(t, 30*time.Second, func() bool {
				return strings.Contains(e.err.String(), "abandoned engine(s) 0-1, still running the cell ('ipcluster signal SIGINT' interrupts them later)\n")
			}, "second Ctrl-C did not stop waiting:\n%s", e.err)
		}
		io.WriteString(w, "quick\n")
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Count(e.out.String(), "[stdout:1] started\n") == 2 },
			"the next cell did not run:\n%s", e.out)
		w.Close()
		if err := waitDone(t, done); err != nil {
			t.Errorf("obey=%v: console at EOF: %v", obey, err)
		}
	}
}

func TestConsoleTerminated(t *testing.T) {
	client := &gatedClient{}
	client.ids = []int{0}
	// SIGTERM at the prompt, with no input coming.
	e, _, done := startConsole(t, client)
	e.sigs <- syscall.SIGTERM
	if err := waitDone(t, done); !errors.Is(err, errTerminated) {
		t.Errorf("SIGTERM at the prompt: %v", err)
	}
	// SIGTERM while a cell runs.
	e, w, done := startConsole(t, client)
	io.WriteString(w, "for {}\n")
	testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(e.out.String(), "[stdout:0] started\n") },
		"cell not started:\n%s", e.out)
	e.sigs <- syscall.SIGTERM
	if err := waitDone(t, done); !errors.Is(err, errTerminated) || ExitCode(err) != ExitError {
		t.Errorf("SIGTERM during a cell: %v", err)
	}
}

func TestStreamPrinter(t *testing.T) {
	out, errOut := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	p := newStreamPrinter(IOStreams{Out: out, ErrOut: errOut})
	for _, o := range []ipp.Output{
		{Engine: 0, Stream: "stdout", Text: "a"},
		{Engine: 1, Stream: "stdout", Text: "b1\nb"},
		{Engine: 0, Stream: "stdout", Text: "1\n"},
		{Engine: 1, Stream: "stderr", Text: "oops\r\n"},
	} {
		p.write(o)
	}
	if got, want := out.String(), "[stdout:1] b1\n[stdout:0] a1\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := errOut.String(), "[stderr:1] oops\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	// A flushed unfinished line goes on as a line of its own, and the
	// newline that ends it makes no empty line.
	p.flush()
	p.write(ipp.Output{Engine: 1, Stream: "stdout", Text: "\nnext\n"})
	p.write(ipp.Output{Engine: 1, Stream: "stdout", Text: "\n"})
	if got, want := out.String(), "[stdout:1] b1\n[stdout:0] a1\n[stdout:1] b\n[stdout:1] next\n[stdout:1]\n"; got != want {
		t.Errorf("after flush: %q, want %q", got, want)
	}
}

func TestConsoleBadTargetsFlag(t *testing.T) {
	client := &gatedClient{}
	client.ids = []int{0, 1}
	_, _, done := startConsole(t, client, 1, 7, 9)
	if err := waitDone(t, done); err == nil || err.Error() != "--targets: no engine 7,9 (registered engines: 0-1)" {
		t.Errorf("--targets 1,7,9 on engines 0-1: %v", err)
	}
	_, w, done := startConsole(t, client, 1)
	io.WriteString(w, "quick\n")
	w.Close()
	if err := waitDone(t, done); err != nil {
		t.Fatal(err)
	}
	if got := client.cells[len(client.cells)-1]; !slices.Equal(got.targets, []int{1}) {
		t.Errorf("--targets 1 ran the cell on %v", got.targets)
	}
}
