package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// ExecOptions are the options of `ipcluster exec`.
type ExecOptions struct {
	F *Factory
	ClusterFlags
	// Code is the Go source to run ("-" reads it from standard input).
	Code string
	// Targets are engine ids; nil means all engines.
	Targets []int
	// Timeout bounds the whole execution.
	Timeout time.Duration
	// Bare prints the engines' output lines as they are, without the
	// [stream:N] prefix, even on a terminal.
	Bare bool
	// Prefix prints the [stream:N] prefix even where the output is not a
	// terminal (a log file kept for later). Without Bare or Prefix, a
	// stream is prefixed only when it goes to a terminal, as srun and
	// mpirun leave lines bare unless labels are asked for, so that
	// `ipcluster exec ... | grep -c` counts what the engines printed.
	Prefix bool
}

// prefixed reports whether exec labels the lines it writes to w.
func (o *ExecOptions) prefixed(w io.Writer) bool {
	switch {
	case o.Bare:
		return false
	case o.Prefix:
		return true
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewCmdExec builds `ipcluster exec`. runF replaces execRun in tests.
func NewCmdExec(f *Factory, runF func(*ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{F: f}
	var targets string
	cmd := &cobra.Command{
		Use:   "exec [flags] CODE",
		Short: "Run Go code on the engines and show their output",
		Long: `Run Go code on the engines of a running cluster (like %px in IPython) and
print what each engine writes as it writes it, a line at a time: standard
output as "[stdout:N] line", standard error as "[stderr:N] line" (lines of
different engines interleave in arrival order but never mix), then the value
of a trailing expression as Out[N:k], and each engine's error as soon as it
is known. CODE "-" reads the code from standard input.

The [stdout:N] and [stderr:N] prefixes are shown on a terminal. Into a pipe
or a file the lines go as the engines printed them (like srun without
--label), so that grep, sort and wc see the engines' own output; --prefix
keeps the prefixes there, --bare drops them on a terminal too.

Ctrl-C interrupts the engines still running the code (SIGINT, as 'ipcluster
signal' sends) and waits for their replies; a second Ctrl-C abandons them
(they keep running) and exits. --timeout interrupts the engines still running
when it expires, aborts the request where it has not started, and names the
engines that had not answered.

Exit codes: 1 if the code failed on any engine, 12 if the cluster is not
running, 124 when --timeout expired, 130 after Ctrl-C. A cluster whose
controller died (kill -9) is found out at once from its cluster file (the
controller's pid is checked) instead of waiting for the connection to time
out; a controller that dies during the run is reported within a few seconds,
also with 12.`,
		Example: `  ipcluster exec 'fmt.Println(6*7)'
  ipcluster exec --targets 0,2-3 'import "os"; fmt.Println(os.Getpid())'
  ipcluster exec - < setup.go
  ipcluster exec 'fmt.Println(1)' | grep -c '^1$'   # one line per engine
  ipcluster exec --prefix 'fmt.Println(os.Hostname())' > hosts.log`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Code = args[0]
			var err error
			if opts.Targets, err = parseTargets(targets); err != nil {
				return fmt.Errorf("--targets: %w", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return execRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.StringVarP(&targets, "targets", "t", "all", "engine ids: all, or a list such as 0,2,4-7")
	fs.Var(newSecondsValue(&opts.Timeout, 0), "timeout", "give up after this long (default: no limit)")
	fs.BoolVar(&opts.Bare, "bare", false, "never prefix output lines with [stdout:N] (still whole lines, never mixed)")
	fs.BoolVar(&opts.Prefix, "prefix", false, "prefix output lines with [stdout:N] also when not writing to a terminal")
	cmd.MarkFlagsMutuallyExclusive("bare", "prefix")
	return cmd
}

// parseTargets reads "all" (nil) or ids and ranges: "0,2,4-7".
func parseTargets(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "all") {
		return nil, nil
	}
	var ids []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad engine id %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad engine range %q", part)
			}
		}
		for i := a; i <= b; i++ {
			ids = append(ids, i)
		}
	}
	return ids, nil
}

// interruptWait is how long exec waits for the engines to answer the
// interrupt that --timeout sends before it gives up on them.
const interruptWait = 5 * time.Second

func execRun(ctx context.Context, o *ExecOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// The timeout covers connecting too; the run's own timer fires at the
	// same deadline.
	cctx := ctx
	var deadline time.Time
	if o.Timeout > 0 {
		deadline = time.Now().Add(o.Timeout)
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	code := o.Code
	if code == "-" {
		data, err := io.ReadAll(o.F.IO.In)
		if err != nil {
			return err
		}
		code = string(data)
	}
	client, err := connectCluster(cctx, o.F, o.ClusterFlags)
	if err != nil {
		return err
	}
	defer client.Close()
	run, err := client.Submit(cctx, code, o.Targets)
	if err != nil {
		return err
	}
	return steer(ctx, o, run, deadline)
}

// connectCluster connects to a running cluster that has engines.
func connectCluster(ctx context.Context, f *Factory, flags ClusterFlags) (Client, error) {
	path, err := f.clusterClientFile(ctx, flags)
	if err != nil {
		return nil, err
	}
	client, err := f.Connect(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("connecting to cluster %s: %w", clusterName(flags.ClusterID), err)
	}
	if len(client.IDs()) == 0 {
		client.Close()
		return nil, errors.New("no engines registered (add some with 'ipcluster engines -n N')")
	}
	return client, nil
}

// steer streams a run's output until every engine answered, and turns
// Ctrl-C and the deadline into interrupts: the first SIGINT interrupts the
// engines still running and keeps waiting for their replies, a second one
// (or SIGTERM) abandons them.
func steer(ctx context.Context, o *ExecOptions, run ExecRun, deadline time.Time) error {
	rctx, abandon := context.WithCancel(ctx)
	defer abandon()
	p := newLinePrinter(o.F.IO)
	p.bareOut, p.bareErr = !o.prefixed(o.F.IO.Out), !o.prefixed(o.F.IO.ErrOut)
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		for out := range run.Outputs(rctx) {
			p.add(out)
		}
	}()
	type outcome struct {
		results []ExecResult
		err     error
	}
	// Errors are printed the moment they arrive: a dead engine is reported
	// at once, not when the slowest engine finishes.
	var mu sync.Mutex
	shown := map[int]bool{}
	done := make(chan outcome, 1)
	go func() {
		r, err := run.Results(rctx, func(engine int, e *RemoteError) {
			mu.Lock()
			shown[engine] = true
			mu.Unlock()
			p.printError(engine, e)
		})
		done <- outcome{r, err}
	}()
	sigs, stopSignals := o.F.signals(rctx)
	defer stopSignals()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	// finish prints what is left once every engine answered.
	finish := func(r outcome) (int, error) {
		<-streamed
		p.flush()
		if r.err != nil {
			return 0, r.err
		}
		mu.Lock()
		defer mu.Unlock()
		return printResults(p, r.results, shown), nil
	}
	interrupted := false
	for {
		select {
		case r := <-done:
			failed, err := finish(r)
			switch {
			case err != nil:
				return err
			case interrupted:
				return fmt.Errorf("%w: every engine answered the interrupt", ErrInterrupted)
			case failed > 0:
				return fmt.Errorf("the code failed on %d of %d engines", failed, len(r.results))
			}
			return nil

		case sig := <-sigs:
			if sig != os.Interrupt && sig != syscall.SIGTERM {
				continue
			}
			running := run.Running()
			if sig == os.Interrupt && !interrupted {
				interrupted = true
				p.note("ipcluster: interrupting engine(s) %s and waiting for their replies (Ctrl-C again to abandon them)", joinIDs(running))
				go func() {
					if err := run.Interrupt(rctx); err != nil && rctx.Err() == nil {
						p.note("ipcluster: %v", err)
					}
				}()
				continue
			}
			abandon()
			<-streamed
			p.flush()
			return fmt.Errorf("%w: abandoned engine(s) %s, still running the code", ErrInterrupted, joinIDs(running))

		case <-expired:
			return expire(rctx, o, run, p, done, finish)
		}
	}
}

// expire handles --timeout: the engines still running are interrupted
// (and the request aborted where it has not started), given interruptWait
// to answer, and named in the error.
func expire[T any](ctx context.Context, o *ExecOptions, run ExecRun, p *linePrinter, done <-chan T, finish func(T) (int, error)) error {
	late := run.Running()
	p.note("ipcluster: --timeout %v reached; interrupting engine(s) %s", o.Timeout, joinIDs(late))
	ictx, cancel := context.WithTimeout(ctx, interruptWait)
	defer cancel()
	// The abort goes out first, and without waiting for its answers: an
	// engine still busy with an earlier request must find this one marked
	// when it gets to it, before the interrupt (which stops whatever runs
	// when it arrives) lets it get there.
	sent, stop := context.WithCancel(ictx)
	stop()
	_ = run.Abort(sent)
	go func() {
		if err := run.Interrupt(ictx); err != nil && ictx.Err() == nil {
			p.note("ipcluster: %v", err)
		}
	}()
	select {
	case r := <-done:
		if _, err := finish(r); err != nil && !errors.Is(err, context.Canceled) {
			p.note("ipcluster: %v", err)
		}
		return fmt.Errorf("%w after %v: engine(s) %s had not answered and were interrupted", ErrTimeout, o.Timeout, joinIDs(late))
	case <-ictx.Done():
		stuck := run.Running()
		return fmt.Errorf("%w after %v: engine(s) %s had not answered; engine(s) %s did not answer the interrupt within %v either and were abandoned",
			ErrTimeout, o.Timeout, joinIDs(late), joinIDs(stuck), interruptWait)
	}
}

// joinIDs lists engine ids as "0,2,3" ("none" for no engine).
func joinIDs(ids []int) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// linePrinter writes streamed output a whole line at a time, each line
// prefixed with its stream and engine ("[stdout:3] text"), so that lines
// from different engines never mix even when their chunks interleave.
type linePrinter struct {
	mu      sync.Mutex
	io      IOStreams
	partial map[streamKey]string
	// bareOut and bareErr drop the prefix on standard output and standard
	// error: each is decided by where that stream goes.
	bareOut, bareErr bool
}

type streamKey struct {
	engine int
	stream string
}

func newLinePrinter(s IOStreams) *linePrinter {
	return &linePrinter{io: s, partial: map[streamKey]string{}}
}

func (p *linePrinter) writer(stream string) io.Writer {
	if stream == "stderr" {
		return p.io.ErrOut
	}
	return p.io.Out
}

// add prints the complete lines of a chunk and keeps the rest for later.
func (p *linePrinter) add(o ipp.Output) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := streamKey{o.Engine, o.Stream}
	text := p.partial[k] + o.Text
	i := strings.LastIndexByte(text, '\n')
	if i < 0 {
		p.partial[k] = text
		return
	}
	p.partial[k] = text[i+1:]
	p.lines(k, text[:i+1])
}

// lines writes text (whole lines) in one Write.
func (p *linePrinter) lines(k streamKey, text string) {
	var b strings.Builder
	prefix := fmt.Sprintf("[%s:%d]", k.stream, k.engine)
	bare := p.bareOut
	if k.stream == "stderr" {
		bare = p.bareErr
	}
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case bare:
			b.WriteString(line)
		case line != "":
			b.WriteString(prefix)
			b.WriteByte(' ')
			b.WriteString(line)
		default:
			b.WriteString(prefix)
		}
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(p.writer(k.stream), b.String())
}

// flush ends every unfinished line, in engine order.
func (p *linePrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]streamKey, 0, len(p.partial))
	for k, v := range p.partial {
		if v != "" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b streamKey) int {
		return cmp.Or(cmp.Compare(a.engine, b.engine), cmp.Compare(a.stream, b.stream))
	})
	for _, k := range keys {
		p.lines(k, p.partial[k]+"\n")
		delete(p.partial, k)
	}
}

// note prints a message of ipcluster's own on standard error.
func (p *linePrinter) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.io.ErrOut, format+"\n", args...)
}

// printError shows one engine's error without mixing it with output lines.
func (p *linePrinter) printError(engine int, e *RemoteError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	printError(p.io.ErrOut, engine, e)
}

// checkControllerAlive fails with ErrNoCluster when the cluster file
// records a controller that is gone, so that exec does not wait for the
// connect timeout on connection files a killed controller left behind. A
// cluster without a cluster file (a controller started by hand) is left to
// the connection attempt.
func checkControllerAlive(ctx context.Context, f *Factory, flags ClusterFlags, dir string) error {
	id := flags.ClusterID
	if _, err := os.Stat(wire.ClusterFile(dir, id)); err != nil {
		return nil
	}
	// The error below tells what LoadCluster would log at info level.
	log := f.Logger()
	if f.logLevel == slog.LevelInfo {
		log = slog.New(slog.NewTextHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := launchers.LoadCluster(ctx, launchers.ClusterOptions{ProfileDir: dir, ClusterID: id, Runner: f.Runner, Logger: log})
	switch {
	case errors.Is(err, launchers.ErrNoCluster):
		return nil
	case err != nil:
		return err
	case c.ControllerRunning():
		return nil
	}
	next := "its stale files were removed"
	if c.Running() {
		next = fmt.Sprintf("'ipcluster stop%s' stops the engines it left", stopFlags(flags))
	}
	return fmt.Errorf("%w: cluster %s is not running (%s); %s", ErrNoCluster, clusterName(id), deathNote(c), next)
}

// printResults shows, after the streamed output, each engine's trailing
// expression value as Out[N:k] in engine order, then the errors of the
// engines not in shown (printed already). It returns the number of engines
// that failed.
func printResults(p *linePrinter, results []ExecResult, shown map[int]bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range results {
		if r.Result != "" {
			fmt.Fprintf(p.io.Out, "Out[%d:%d]: %s\n", r.Engine, r.ExecutionCount, strings.TrimRight(r.Result, "\n"))
		}
	}
	// Output is streamed as it arrives; a lost piece can only be named
	// afterwards, and must be, or `| grep -c` quietly counts short.
	var partial []int
	for _, r := range results {
		if r.OutputIncomplete {
			partial = append(partial, r.Engine)
		}
	}
	if len(partial) > 0 {
		fmt.Fprintf(p.io.ErrOut, "ipcluster: the output of engine(s) %s may be incomplete: their end-of-output status never arrived (a controller or network too slow for the output grace, or output dropped on the way)\n", joinIDs(partial))
	}
	failed := 0
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		failed++
		if !shown[r.Engine] {
			printError(p.io.ErrOut, r.Engine, r.Err)
		}
	}
	return failed
}

// printError shows one engine's error: a header line, then the traceback
// without a repeat of the header's "name: value".
func printError(w io.Writer, engine int, e *RemoteError) {
	head := e.Name + ": " + e.Value
	fmt.Fprintf(w, "[%d:execute] %s\n", engine, head)
	for i, line := range e.Traceback {
		line = strings.TrimRight(line, "\n")
		if i == 0 && line == head {
			continue
		}
		fmt.Fprintln(w, line)
	}
}
