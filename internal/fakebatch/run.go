//go:build unix

package fakebatch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is the fake's view of its environment and standard streams, so the
// commands read the submitter's environment explicitly.
type env struct {
	st     store
	system string
	vars   []string // the submitter's environment
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func (e *env) get(k string) string {
	for i := len(e.vars) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(e.vars[i], k+"="); ok {
			return v
		}
	}
	return ""
}

func (e *env) duration(k string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(e.get(k)); err == nil {
		return d
	}
	return def
}

// queueKnown applies FAKEBATCH_QUEUES.
func (e *env) queueKnown(q string) bool {
	list := e.get("FAKEBATCH_QUEUES")
	if list == "" {
		return true
	}
	for _, k := range strings.Split(list, ",") {
		if strings.TrimSpace(k) == q {
			return true
		}
	}
	return false
}

// reject applies FAKEBATCH_REJECT: def is the system's own text.
func (e *env) reject(def string) (string, bool) {
	v := e.get("FAKEBATCH_REJECT")
	switch v {
	case "":
		return "", false
	case "1", "true":
		return def, true
	}
	return v, true
}

func (e *env) user() string {
	if u := e.get("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "nobody"
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}

// Main runs the fake command name with args and returns its exit status.
// The state directory and the system come from FAKEBATCH_STATE and
// FAKEBATCH_SYSTEM, which the wrappers written by Install set.
func Main(name string, args []string) int {
	e := &env{st: store{os.Getenv("FAKEBATCH_STATE")}, system: os.Getenv("FAKEBATCH_SYSTEM"),
		vars: os.Environ(), stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if e.st.dir == "" {
		fmt.Fprintln(e.stderr, "fakebatch: FAKEBATCH_STATE is not set (run the wrappers that fakebatch.Install writes)")
		return 2
	}
	if name == "__run" {
		return supervise(e.st, args)
	}
	cmds := map[string]map[string]func(*env, []string) int{
		"pbspro":   {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qsig": qsig},
		"torque":   {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qsig": qsig},
		"lsf":      {"bsub": bsub, "bjobs": bjobs, "bkill": bkill},
		"htcondor": {"condor_submit": condorSubmit, "condor_q": condorQ, "condor_rm": condorRm},
	}
	fn := cmds[e.system][name]
	if fn == nil {
		fmt.Fprintf(e.stderr, "fakebatch: no command %q for system %q\n", name, e.system)
		return 2
	}
	return fn(e, args)
}

// minimalEnv is what a job sees when the submitter's environment is not
// propagated: a login's basics, with the system's default PATH.
func (e *env) minimalEnv() []string {
	shell := e.get("SHELL")
	if shell == "" {
		shell = "/bin/sh"
	}
	return []string{"HOME=" + e.get("HOME"), "USER=" + e.user(), "LOGNAME=" + e.user(),
		"SHELL=" + shell, "PATH=/usr/local/bin:/usr/bin:/bin"}
}

// setEnv sets k=v in vars, replacing an earlier value.
func setEnv(vars []string, k, v string) []string {
	return append(unsetEnv(vars, k), k+"="+v)
}

// unsetEnv returns vars without k, in a new slice.
func unsetEnv(vars []string, k string) []string {
	out := vars[:0:0]
	for _, kv := range vars {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// submit records j under a fresh sequence number chosen by mk (which
// builds the job once its number, and so its id, is known) and starts one
// supervisor per task unless the job is held.
func (e *env) submit(mk func(seq int) (*job, error)) (*job, error) {
	seq, err := e.st.nextSeq()
	if err != nil {
		return nil, err
	}
	j, err := mk(seq)
	if err != nil {
		return nil, err
	}
	j.Seq, j.System, j.Submitted, j.User = seq, e.system, time.Now(), e.user()
	j.Hold = j.Hold || e.get("FAKEBATCH_HOLD") != ""
	j.Fail = e.get("FAKEBATCH_FAIL") != ""
	j.StartDelay = e.duration("FAKEBATCH_START_DELAY", 0)
	j.Grace = e.duration("FAKEBATCH_GRACE", 2*time.Second)
	j.Keep = e.duration("FAKEBATCH_KEEP", 10*time.Minute)
	for _, t := range j.Tasks {
		t.State = taskQueued
	}
	if err := e.st.locked(func() error { return e.st.save(j) }); err != nil {
		return nil, err
	}
	// The submitted event comes first in the user log, before any
	// supervisor can write its proc's next event.
	for _, t := range j.Tasks {
		logEvent(j, t, 0, "Job submitted from host: <127.0.0.1:9618>")
	}
	if j.Hold {
		return j, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pids := make([]int, len(j.Tasks))
	for i := range j.Tasks {
		cmd := exec.Command(self, "__run", strconv.Itoa(seq), strconv.Itoa(i))
		cmd.Env = []string{"FAKEBATCH_STATE=" + e.st.dir, "FAKEBATCH_SYSTEM=" + e.system}
		// Its own session: the supervisor outlives the submit command and
		// the test's process group, as a real job outlives qsub.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		pids[i] = cmd.Process.Pid
		cmd.Process.Release() //nolint:errcheck // nothing to release on unix
	}
	err = e.st.locked(func() error {
		cur, err := e.st.load(seq)
		if err != nil {
			return err
		}
		for i, t := range cur.Tasks {
			t.Supervisor = pids[i]
		}
		return e.st.save(cur)
	})
	return j, err
}

// supervise is one task's life (fakebatch __run <seq> <task>): wait out
// the queue delay, start the process in its own process group with its
// output files, wait for it, and record how it ended. SIGTERM (from a
// cancel) becomes TERM to the task's group, then KILL after the grace.
func supervise(st store, args []string) int {
	if len(args) != 2 {
		return 2
	}
	seq, _ := strconv.Atoi(args[0])
	idx, _ := strconv.Atoi(args[1])
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	j, err := st.load(seq)
	if err != nil || idx < 0 || idx >= len(j.Tasks) {
		return 1
	}
	if j.StartDelay > 0 {
		select {
		case <-time.After(j.StartDelay):
		case <-sigs:
		}
	}
	var cmd *exec.Cmd
	err = st.locked(func() error {
		if j, err = st.load(seq); err != nil {
			return err
		}
		t := j.Tasks[idx]
		if t.Cancelled || t.State == taskDone {
			if t.State != taskDone {
				logEvent(j, t, 9, "Job was aborted.\n\tvia condor_rm")
			}
			t.State = taskDone
			t.Ended = time.Now()
			return st.save(j)
		}
		t.Started = time.Now()
		stdout, stderr, err := openOutputs(t)
		if err != nil {
			return finishFailed(st, j, t, err)
		}
		defer stdout.Close()
		defer stderr.Close()
		if j.Fail {
			fmt.Fprintln(stderr, "fakebatch: job failed at once (FAKEBATCH_FAIL)")
			t.State, t.Exit, t.Ended = taskDone, 1, time.Now()
			logEvent(j, t, 5, "Job terminated.\n\t(1) Normal termination (return value 1)")
			return st.save(j)
		}
		cmd = exec.Command(t.Argv[0], t.Argv[1:]...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = t.Env, t.Dir, stdout, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			cmd = nil
			if j.System == "htcondor" {
				// HTCondor holds a job it cannot start rather than ending it.
				t.State = taskHeld
				t.HoldReason = fmt.Sprintf("Error from slot1@%s: Failed to execute '%s': %v", hostname(), t.Argv[0], errors.Unwrap(err))
				logEvent(j, t, 12, "Job was held.\n\t"+t.HoldReason)
				return st.save(j)
			}
			fmt.Fprintf(stderr, "fakebatch: cannot start %s: %v\n", t.Argv[0], err)
			t.State, t.Exit, t.Ended = taskDone, 127, time.Now()
			return st.save(j)
		}
		t.State, t.PGID = taskRunning, cmd.Process.Pid
		logEvent(j, t, 1, "Job executing on host: <127.0.0.1:9618>")
		return st.save(j)
	})
	if err != nil || cmd == nil {
		return 0
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var kill <-chan time.Time
	var waitErr error
wait:
	for {
		select {
		case <-sigs:
			syscall.Kill(-pgid, syscall.SIGTERM) //nolint:errcheck // the group may be gone
			kill = time.After(j.Grace)
		case <-kill:
			syscall.Kill(-pgid, syscall.SIGKILL) //nolint:errcheck // the group may be gone
		case waitErr = <-done:
			break wait
		}
	}
	// The job ends with its top process; what it left behind goes too,
	// as a real execution host cleans up after a job.
	syscall.Kill(-pgid, syscall.SIGKILL) //nolint:errcheck // usually nothing is left
	st.locked(func() error {             //nolint:errcheck // nothing more to do on failure
		j, err := st.load(seq)
		if err != nil {
			return err
		}
		t := j.Tasks[idx]
		t.State, t.Ended, t.Exit = taskDone, time.Now(), cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Signal, t.Exit = int(ws.Signal()), 128+int(ws.Signal())
			}
		}
		switch {
		case t.Cancelled:
			logEvent(j, t, 9, "Job was aborted.\n\tvia condor_rm")
		case t.Signal != 0:
			logEvent(j, t, 5, fmt.Sprintf("Job terminated.\n\t(0) Abnormal termination (signal %d)", t.Signal))
		default:
			logEvent(j, t, 5, fmt.Sprintf("Job terminated.\n\t(1) Normal termination (return value %d)", t.Exit))
		}
		return st.save(j)
	})
	return 0
}

func finishFailed(st store, j *job, t *task, err error) error {
	t.State, t.Exit, t.Ended, t.HoldReason = taskDone, 1, time.Now(), err.Error()
	return st.save(j)
}

// openOutputs opens the task's output files for appending: every array
// task of ipyparallel's templates writes to the same file.
func openOutputs(t *task) (stdout, stderr *os.File, err error) {
	open := func(p string) (*os.File, error) {
		if p == "" {
			p = os.DevNull
		}
		return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	if stdout, err = open(t.Out); err != nil {
		return nil, nil, err
	}
	if t.Err == t.Out {
		stderr, err = open(t.Out)
	} else {
		stderr, err = open(t.Err)
	}
	if err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

// cancel removes tasks from the queue: queued ones end at once, running
// ones get their supervisor's TERM-grace-KILL. It reports false when the
// job had already finished.
func (e *env) cancel(j *job, only func(*task) bool) (bool, error) {
	any := false
	err := e.st.locked(func() error {
		cur, err := e.st.load(j.Seq)
		if err != nil {
			return err
		}
		cur.settle()
		for _, t := range cur.Tasks {
			if t.State == taskDone || (only != nil && !only(t)) {
				continue
			}
			any = true
			t.Cancelled = true
			if t.State == taskRunning || (t.State == taskQueued && t.Supervisor != 0 && alive(t.Supervisor)) {
				syscall.Kill(t.Supervisor, syscall.SIGTERM) //nolint:errcheck // it may have just ended
				continue
			}
			t.State, t.Ended = taskDone, time.Now()
			logEvent(cur, t, 9, "Job was aborted.\n\tvia condor_rm")
		}
		return e.st.save(cur)
	})
	return any, err
}

// signalTasks delivers sig to the process groups of j's running tasks.
func (e *env) signalTasks(j *job, sig syscall.Signal, only func(*task) bool) {
	for _, t := range j.Tasks {
		if t.State == taskRunning && t.PGID > 0 && (only == nil || only(t)) {
			syscall.Kill(-t.PGID, sig) //nolint:errcheck // it may have just ended
		}
	}
}

// parseSignal reads "TERM", "SIGTERM" or "15".
func parseSignal(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), true
	}
	names := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
		"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM,
		"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}
	sig, ok := names[strings.TrimPrefix(strings.ToUpper(s), "SIG")]
	return sig, ok
}

// scriptCommand is how a batch system runs a job script: through the
// interpreter its #! line names, else through sh. The script is copied
// into the state directory first, as qsub and bsub spool it.
func (e *env) scriptCommand(seq int, text string) ([]string, error) {
	dir := filepath.Join(e.st.dir, "scripts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, strconv.Itoa(seq))
	if err := os.WriteFile(p, []byte(text), 0o700); err != nil {
		return nil, err
	}
	if strings.HasPrefix(text, "#!") {
		return []string{p}, nil
	}
	return []string{"/bin/sh", p}, nil
}

// directives returns the argument lists of the lines that start with
// prefix at column 0, up to the first command (any line that is neither
// blank nor a comment): where the real systems stop reading them.
func directives(text, prefix string) ([][]string, error) {
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(line, prefix) {
			continue
		}
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			break
		}
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			continue // "#PBSX" is a comment
		}
		if i := strings.Index(rest, " #"); i >= 0 {
			rest = rest[:i] // trailing comment
		}
		words, err := shellWords(rest)
		if err != nil {
			return nil, fmt.Errorf("directive %q: %w", line, err)
		}
		out = append(out, words)
	}
	return out, nil
}

// shellWords splits s as sh would split plain words with quotes (no
// expansion).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// indexRange reads an array specification: "1-4", "1-10:2" (PBS Pro
// step), "1,3,5" (Torque, LSF), with an optional "%N" slot limit.
func indexRange(spec string) ([]int, error) {
	spec, _, _ = strings.Cut(spec, "%")
	var out []int
	for _, part := range strings.Split(spec, ",") {
		r, stepS, hasStep := strings.Cut(part, ":")
		step := 1
		if hasStep {
			var err error
			if step, err = strconv.Atoi(stepS); err != nil || step < 1 {
				return nil, fmt.Errorf("bad step %q", stepS)
			}
		}
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad index %q", lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad range %q", r)
			}
		}
		for i := a; i <= b; i += step {
			out = append(out, i)
		}
	}
	if len(out) == 0 || len(out) > 10000 {
		return nil, fmt.Errorf("bad array %q", spec)
	}
	return out, nil
}
