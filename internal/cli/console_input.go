package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/chzyer/readline"
)

// errLineInterrupted is what a lineSource returns when the user pressed
// Ctrl-C at the prompt: the line (and any unfinished cell) is dropped.
var errLineInterrupted = errors.New("line interrupted")

// lineSource is where the console reads its input from: a terminal with
// line editing, or a plain stream (a pipe, a file, a test). Keeping it an
// interface lets the console loop run without a terminal.
type lineSource interface {
	// ReadLine shows prompt (when the source is interactive) and returns
	// the next line without its newline; io.EOF at the end of input,
	// errLineInterrupted on Ctrl-C.
	ReadLine(prompt string) (string, error)
	// AddHistory records an entered line for recall and in the history
	// file, if there is one.
	AddHistory(line string)
	// Close restores the terminal and closes the history file.
	Close() error
}

// plainSource reads lines from a stream without editing or prompts: input
// piped into the console is a script, and prompts would only clutter its
// output. Lines are read by a goroutine, so that a console told to stop
// (SIGTERM) does not wait for the next line.
type plainSource struct {
	ctx   context.Context
	r     *bufio.Reader
	once  sync.Once
	lines chan plainLine
}

type plainLine struct {
	text string
	err  error
}

func newPlainSource(ctx context.Context, r io.Reader) *plainSource {
	return &plainSource{ctx: ctx, r: bufio.NewReader(r), lines: make(chan plainLine)}
}

func (p *plainSource) ReadLine(string) (string, error) {
	p.once.Do(func() { go p.read() })
	select {
	case l := <-p.lines:
		return l.text, l.err
	case <-p.ctx.Done():
		return "", p.ctx.Err()
	}
}

func (p *plainSource) read() {
	for {
		line, err := p.r.ReadString('\n')
		if err == io.EOF && line != "" {
			// A last line without a newline still counts; EOF comes next.
			err = nil
		}
		select {
		case p.lines <- plainLine{strings.TrimRight(line, "\r\n"), err}:
		case <-p.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *plainSource) AddHistory(string) {}
func (p *plainSource) Close() error      { return nil }

// historyLimit is how many lines the history file keeps; older ones are
// dropped when the console starts.
const historyLimit = 2000

// termSource is a terminal with line editing (chzyer/readline) and a
// persistent history file that only its owner can read: typed code can
// contain secrets.
type termSource struct {
	rl        *readline.Instance
	closeOnce sync.Once
	warn      func(error)
	mu        sync.Mutex // guards hist: Close may come from the signal goroutine
	hist      *os.File
}

// newTermSource opens the terminal editor. A history file that cannot be
// opened is reported through warn and the console runs without one.
func newTermSource(in io.ReadCloser, out, errOut io.Writer, historyPath string, warn func(error)) (*termSource, error) {
	rl, err := readline.NewEx(&readline.Config{
		// Cancelable: Close must not wait for a key, nor close our stdin.
		Stdin:  readline.NewCancelableStdin(in),
		Stdout: out,
		Stderr: errOut,
		// The console writes the history file itself (readline would
		// create it world-readable) and keeps only what it adds.
		DisableAutoSaveHistory: true,
		HistoryLimit:           historyLimit,
		HistorySearchFold:      true,
		AutoComplete:           tabInserter{},
		InterruptPrompt:        "^C",
		EOFPrompt:              "",
	})
	if err != nil {
		return nil, fmt.Errorf("starting the line editor: %w", err)
	}
	t := &termSource{rl: rl, warn: warn}
	if historyPath != "" {
		lines, f, err := openHistory(historyPath)
		if err != nil {
			warn(fmt.Errorf("history is not saved: %w", err))
		}
		for _, l := range lines {
			_ = rl.Operation.SaveHistory(l)
		}
		t.hist = f
	}
	return t, nil
}

// tabInserter makes Tab insert a tab: readline without a completer drops
// it, which would change pasted code (a tab inside a string literal).
type tabInserter struct{}

func (tabInserter) Do([]rune, int) ([][]rune, int) { return [][]rune{{'\t'}}, 0 }

func (t *termSource) ReadLine(prompt string) (string, error) {
	t.rl.SetPrompt(prompt)
	line, err := t.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errLineInterrupted
	}
	return line, err
}

func (t *termSource) AddHistory(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	_ = t.rl.SaveHistory(line)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hist == nil {
		return
	}
	if _, err := t.hist.WriteString(line + "\n"); err != nil {
		t.warn(fmt.Errorf("history is not saved any more: %w", err))
		t.hist.Close()
		t.hist = nil
	}
}

// Close restores the terminal; SIGTERM may call it while ReadLine waits
// (which then returns io.EOF), and the console calls it again on the way
// out.
func (t *termSource) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		if t.hist != nil {
			t.hist.Close()
			t.hist = nil
		}
		t.mu.Unlock()
		err = t.rl.Close()
	})
	return err
}

// openHistory reads the history file at path and opens it for appending,
// creating it with mode 0600 (and its folder, 0700: a console on a remote
// cluster may have no local profile yet) and tightening the mode of an
// existing one. A file longer than historyLimit is rewritten with its
// newest lines.
func openHistory(path string) ([]string, *os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > historyLimit {
		lines = lines[len(lines)-historyLimit:]
		if err := rewriteHistory(path, lines); err != nil {
			return lines, nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return lines, nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return lines, nil, err
	}
	return lines, f, nil
}

// rewriteHistory replaces the history file in one step, so that a crash
// leaves either the old file or the new one.
func rewriteHistory(path string, lines []string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// cellOpen tells what the lines typed so far leave open: brackets, a raw
// string or a block comment, named for the message when the input ends
// inside a cell; "" when nothing is. Brackets, quotes and comments are
// scanned the way Go's lexer sees them, so a "{" inside a string or a
// comment opens nothing. Extra closing brackets are left to the engine's
// compiler to report.
func cellOpen(lines []string) string {
	var stack []byte
	inRaw, inBlock := false, false
	for _, line := range lines {
		inStr := byte(0) // '"' or '\'' while inside an interpreted literal
		for i := 0; i < len(line); i++ {
			ch := line[i]
			switch {
			case inBlock:
				if ch == '*' && i+1 < len(line) && line[i+1] == '/' {
					inBlock = false
					i++
				}
			case inRaw:
				if ch == '`' {
					inRaw = false
				}
			case inStr != 0:
				if ch == '\\' {
					i++
				} else if ch == inStr {
					inStr = 0
				}
			case ch == '/' && i+1 < len(line) && line[i+1] == '/':
				i = len(line)
			case ch == '/' && i+1 < len(line) && line[i+1] == '*':
				inBlock = true
				i++
			case ch == '`':
				inRaw = true
			case ch == '"' || ch == '\'':
				inStr = ch
			case ch == '(' || ch == '[' || ch == '{':
				stack = append(stack, ch)
			case ch == ')' || ch == ']' || ch == '}':
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
			}
		}
	}
	switch {
	case inRaw:
		return "a raw string (`)"
	case inBlock:
		return "a /* comment"
	case len(stack) > 0:
		return fmt.Sprintf("%q", string(stack))
	}
	return ""
}
