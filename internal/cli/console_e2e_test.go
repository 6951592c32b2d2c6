//go:build !windows

package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// consoleProc is a running `ipcluster console` with its output captured.
type consoleProc struct {
	t           *testing.T
	cmd         *exec.Cmd
	in          io.Writer
	out, errOut *testutil.SyncBuffer
	done        chan error
}

// type sends one line of input.
func (p *consoleProc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line); err != nil {
		p.t.Fatalf("writing %q to the console: %v", line, err)
	}
}

// waitOut waits until stdout (or, with errs, stderr) contains want.
func (p *consoleProc) waitFor(buf *testutil.SyncBuffer, want string) {
	p.t.Helper()
	testutil.Eventually(p.t, 60*time.Second, func() bool { return strings.Contains(buf.String(), want) },
		"console output lacks %q\nstdout:\n%s\nstderr:\n%s", want, p.out, p.errOut)
}

// waitPrompt waits for the prompt after the last occurrence of marker:
// the console reads again, so typed keys go to the editor and not, as
// Ctrl-C would, to the running cell.
func (p *consoleProc) waitPrompt(marker string) {
	p.t.Helper()
	testutil.Eventually(p.t, 60*time.Second, func() bool {
		o := p.out.String()
		i := strings.LastIndex(o, marker)
		return i >= 0 && strings.Contains(o[i:], "]> ")
	}, "no prompt after %q:\n%s", marker, p.out)
}

// exit waits for the console to end and returns its exit status.
func (p *consoleProc) exit() int {
	p.t.Helper()
	select {
	case err := <-p.done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		p.t.Fatalf("console: %v", err)
	case <-time.After(60 * time.Second):
		p.t.Fatalf("the console did not exit\nstdout:\n%s\nstderr:\n%s", p.out, p.errOut)
	}
	return -1
}

// TestConsoleEndToEnd drives `ipcluster console` on a real cluster of two
// engines: through pipes (a script on standard input, SIGINT sent to the
// process as a terminal would) and through a pseudo-terminal (line
// editing, Ctrl-C at the prompt and while a cell runs, Ctrl-D, history).
func TestConsoleEndToEnd(t *testing.T) {
	e := newE2E(t)
	e.must(0, "start", "-n", "2", "--daemonize", "--wait-timeout", "60")
	e.pids = recordedPIDs(t, wire.ClusterFile(e.profile, ""))
	t.Cleanup(func() { e.run("stop") })

	t.Run("pipe", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd, _, _ := e.command(ctx, "console")
		p := &consoleProc{t: t, cmd: cmd, out: &testutil.SyncBuffer{}, errOut: &testutil.SyncBuffer{}, done: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = p.out, p.errOut
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.in = stdin
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- cmd.Wait() }()

		p.send("fmt.Println(\"hello\")\n")
		p.waitFor(p.out, "[stdout:0] hello\n")
		p.waitFor(p.out, "[stdout:1] hello\n")

		// Output is shown as it arrives: "first" (even without its
		// newline) while the cell still waits for the gate file, "second"
		// once it exists.
		gate := filepath.Join(t.TempDir(), "gate")
		p.send("import \"os\"; import \"time\"\n")
		p.send("func gateOpen() bool {\n" +
			"\t_, err := os.Stat(" + strconv.Quote(gate) + ")\n" +
			"\treturn err == nil\n" +
			"}\n" +
			"fmt.Print(\"first\"); for !gateOpen() {\n" +
			"\ttime.Sleep(20 * time.Millisecond)\n" +
			"}\n" +
			"fmt.Println(\"second\")\n")
		p.waitFor(p.out, "[stdout:0] first\n")
		p.waitFor(p.out, "[stdout:1] first\n")
		if strings.Contains(p.out.String(), "second") {
			t.Fatalf("second printed before the gate opened:\n%s", p.out)
		}
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		p.waitFor(p.out, "[stdout:0] second\n")
		p.waitFor(p.out, "[stdout:1] second\n")

		// %targets: only engine 1; a multi-line block is one cell.
		p.send("%targets 1\n")
		p.waitFor(p.out, "targets: 1\n")
		p.send("for i := 0; i < 2; i++ {\n\tfmt.Println(\"loop\", i)\n}\n")
		p.waitFor(p.out, "[stdout:1] loop 0\n[stdout:1] loop 1\n")
		p.send("x := 6 * \\\n 7\n")
		p.send("x\n")
		p.waitFor(p.out, "Out[1:")
		if o := p.out.String(); strings.Contains(o, "[stdout:0] loop") || !strings.Contains(o, "]: 42\n") {
			t.Errorf("cells on engine 1 only:\n%s", o)
		}

		p.send("%nosuch\n")
		p.waitFor(p.errOut, "unknown console command %nosuch (%help lists them")
		p.send("%targets 5\n")
		p.waitFor(p.errOut, "%targets: no engine 5 (registered engines: 0-1); targets stay 1\n")
		p.send("%engines\n")
		p.waitFor(p.out, "ENGINE  HOST")

		// Ctrl-C (SIGINT) while a busy loop runs interrupts it on the
		// engines; the next cell runs.
		p.send("%targets all\n")
		p.send("fmt.Println(\"spinning\"); for {}\n")
		p.waitFor(p.out, "[stdout:0] spinning\n")
		p.waitFor(p.out, "[stdout:1] spinning\n")
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		p.waitFor(p.errOut, "^C: interrupting engine(s) 0-1 and waiting")
		p.waitFor(p.errOut, "[0:execute]")
		p.waitFor(p.errOut, "[1:execute]")
		p.send("fmt.Println(\"after\")\n")
		p.waitFor(p.out, "[stdout:0] after\n")
		p.waitFor(p.out, "[stdout:1] after\n")

		stdin.Close()
		if code := p.exit(); code != 0 {
			t.Errorf("console exit %d at EOF\nstderr:\n%s", code, p.errOut)
		}
	})

	t.Run("pty", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd, _, _ := e.command(ctx, "console")
		cmd.Stdout, cmd.Stderr = nil, nil
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		p := &consoleProc{t: t, cmd: cmd, in: tty, out: &testutil.SyncBuffer{}, done: make(chan error, 1)}
		p.errOut = p.out // one terminal for both
		go io.Copy(p.out, tty)
		go func() { p.done <- cmd.Wait() }()

		p.waitFor(p.out, "[all]> ")
		p.send("fmt.Println(6*7)\r")
		p.waitFor(p.out, "[stdout:0] 42")
		p.waitFor(p.out, "[stdout:1] 42")
		p.waitPrompt("[stdout:1] 42")
		// Ctrl-C at the prompt drops the typed text.
		p.send("oops")
		p.waitFor(p.out, "oops")
		p.send("\x03")
		p.waitFor(p.out, "^C")
		p.send("fmt.Println(\"clean\")\r")
		p.waitFor(p.out, "[stdout:1] clean")
		p.waitFor(p.out, "[stdout:0] clean")
		p.waitPrompt("clean\r\n")
		if strings.Contains(p.out.String(), "undefined: oops") {
			t.Errorf("the line cleared by Ctrl-C ran:\n%s", p.out)
		}
		// A pasted block is one cell, and its tabs stay (one is inside a
		// string).
		p.send("for i := 0; i < 2; i++ {\r\tfmt.Println(\"tab\t\", i)\r}\r")
		for _, w := range []string{"[stdout:0] tab\t 0", "[stdout:0] tab\t 1", "[stdout:1] tab\t 0", "[stdout:1] tab\t 1"} {
			p.waitFor(p.out, w)
		}
		p.waitPrompt("[stdout:1] tab\t 1")
		// Ctrl-C while a cell runs: the terminal sends SIGINT.
		p.send("fmt.Println(\"busy\"); for {}\r")
		p.waitFor(p.out, "[stdout:1] busy")
		p.waitFor(p.out, "[stdout:0] busy")
		p.send("\x03")
		p.waitFor(p.out, "interrupting engine(s)")
		p.send("fmt.Println(\"again\")\r")
		p.waitFor(p.out, "[stdout:0] again")
		p.waitFor(p.out, "[stdout:1] again")
		p.waitPrompt("again\r\n")
		p.send("\x04")
		if code := p.exit(); code != 0 {
			t.Errorf("console exit %d after Ctrl-D\n%s", code, p.out)
		}
		hist := filepath.Join(e.profile, historyFileName)
		st, err := os.Stat(hist)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("history file mode %v, want 0600", st.Mode().Perm())
		}
		data, _ := os.ReadFile(hist)
		if h := string(data); !strings.Contains(h, "fmt.Println(6*7)\n") || !strings.Contains(h, "fmt.Println(\"again\")\n") || strings.Contains(h, "oops") {
			t.Errorf("history file:\n%s", h)
		}
	})

	// Last: a controller that dies under the console ends it with exit
	// status 12, as exec does, instead of leaving it waiting.
	t.Run("controller killed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd, _, _ := e.command(ctx, "console")
		p := &consoleProc{t: t, cmd: cmd, out: &testutil.SyncBuffer{}, errOut: &testutil.SyncBuffer{}, done: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = p.out, p.errOut
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		p.in = stdin
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- cmd.Wait() }()
		p.send("fmt.Println(\"alive\")\n")
		p.waitFor(p.out, "[stdout:1] alive\n")
		if err := syscall.Kill(e.pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.send("fmt.Println(\"dead\")\n")
		if code := p.exit(); code != ExitNoCluster {
			t.Errorf("console exit %d after the controller died, want %d\nstderr:\n%s", code, ExitNoCluster, p.errOut)
		}
		t.Logf("stderr: %s", p.errOut)
	})
}
