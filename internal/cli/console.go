package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ipp-hpc/ipp"
)

// ConsoleOptions are the options of `ipcluster console`.
type ConsoleOptions struct {
	F *Factory
	ClusterFlags
	// Targets are the engines cells run on at first; nil means all.
	Targets []int
	// NoHistory keeps the session out of the history file.
	NoHistory bool
}

// historyFileName is the console's history file in the profile directory.
const historyFileName = "ipcluster_console_history"

// NewCmdConsole builds `ipcluster console`. runF replaces consoleRun in
// tests.
func NewCmdConsole(f *Factory, runF func(*ConsoleOptions) error) *cobra.Command {
	opts := &ConsoleOptions{F: f}
	var targets string
	cmd := &cobra.Command{
		Use:   "console [flags]",
		Short: "Type Go code that runs on the engines, with output streamed per engine",
		Long: `An interactive console on a running cluster: each cell runs on the selected
engines like %px in IPython (the request 'ipcluster exec' sends), and what
the engines print is shown as it arrives, line by line, under [stdout:N]
and [stderr:N]; results (Out[N:k]) and errors follow when every engine has
finished.

A cell is one line, or several when brackets, a raw string or a /* comment
are left open, or a line ends with a backslash (pasted blocks work). Lines
starting with % are console commands:

  %targets [IDS]  show or set the engines cells run on: all, or 0,2,4-7
  %engines        list the engines: id, host, pid, MPI rank
  %help           this list
  %quit           leave (so does Ctrl-D)

Ctrl-C while a cell runs interrupts it on its engines (SIGINT, the signal
request of the Jupyter protocol); a second Ctrl-C stops waiting for them.
Ctrl-C at the prompt clears the line. History is kept in the profile
directory (` + historyFileName + `, readable only by you).

Input that is not a terminal is read as a script: no prompts, no history,
and the console exits with 1 if the input ends inside an unfinished cell.
Exits with 12 if the cluster is not running, or when its controller is
found lost.`,
		Example: `  ipcluster console
  ipcluster console --targets 0-3 --profile mpi
  echo 'fmt.Println(os.Getpid())' | ipcluster console`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Targets, err = parseTargets(targets); err != nil {
				return fmt.Errorf("--targets: %w", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return consoleRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.StringVarP(&targets, "targets", "t", "all", "engine ids cells run on at first: all, or a list such as 0,2,4-7")
	fs.BoolVar(&opts.NoHistory, "no-history", false, "neither read nor write the history file")
	return cmd
}

// engineLister is what %engines needs beyond Client: host, pid and MPI
// placement of each engine.
type engineLister interface {
	EngineList(ctx context.Context) ([]ipp.EngineInfo, error)
}

func consoleRun(ctx context.Context, o *ConsoleOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := o.Dir()
	if err != nil {
		return err
	}
	// The connection of exec: the same checks, errors and exit codes.
	client, err := connectCluster(ctx, o.F, o.ClusterFlags)
	if err != nil {
		return err
	}
	defer client.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &console{ctx: ctx, io: o.F.IO, client: client, partialDelay: partialDelay}
	if c.targets, err = c.checkTargets(o.Targets); err != nil {
		return fmt.Errorf("--targets: %w", err)
	}

	var in lineSource
	if f, ok := o.F.IO.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		hist := ""
		if !o.NoHistory {
			hist = filepath.Join(dir, historyFileName)
		}
		warn := func(err error) { fmt.Fprintln(o.F.IO.ErrOut, "ipcluster console:", err) }
		ts, err := newTermSource(f, o.F.IO.Out, o.F.IO.ErrOut, hist, warn)
		if err != nil {
			return err
		}
		in = ts
	} else {
		in = newPlainSource(ctx, o.F.IO.In)
	}
	defer in.Close()

	// Signals are watched for the whole session: SIGINT interrupts the
	// running cell (at the prompt the terminal is raw and Ctrl-C is a
	// key), SIGTERM leaves with the terminal restored, also from the
	// prompt.
	sigs, stopSignals := o.F.signals(ctx)
	defer stopSignals()
	interrupts := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGTERM:
					cancel(errTerminated)
					in.Close()
					return
				case os.Interrupt:
					select {
					case interrupts <- struct{}{}:
					default:
					}
				}
			}
		}
	}()

	c.in, c.interrupts = in, interrupts
	if _, ok := in.(*termSource); ok {
		fmt.Fprintf(o.F.IO.Out, "ipcluster console: %d engines, cluster %s; %%help lists commands, Ctrl-D leaves.\n",
			len(client.IDs()), clusterName(o.ClusterID))
	}
	return c.loop()
}

// errTerminated ends a console that got SIGTERM.
var errTerminated = errors.New("terminated (SIGTERM); a running cell may go on on its engines")

// console is the read-run loop, apart from the terminal: tests drive it
// with any lineSource and a fake or real client.
type console struct {
	ctx     context.Context
	io      IOStreams
	client  Client
	in      lineSource
	targets []int // nil: all engines
	// interrupts delivers Ctrl-C while a cell runs (SIGINT: the terminal
	// is not in raw mode then).
	interrupts <-chan struct{}
	// partialDelay is how long an unfinished line waits for its end
	// before it is shown anyway.
	partialDelay time.Duration
}

// errQuit ends the loop without an error.
var errQuit = errors.New("quit")

// loop reads cells and runs them until EOF, %quit or SIGTERM.
func (c *console) loop() error {
	var cell []string
	for {
		prompt := c.prompt()
		if len(cell) > 0 {
			prompt = strings.Repeat(" ", max(0, len(prompt)-5)) + "...: "
		}
		line, err := c.in.ReadLine(prompt)
		if c.ctx.Err() != nil {
			return context.Cause(c.ctx)
		}
		switch {
		case errors.Is(err, errLineInterrupted):
			cell = nil
			continue
		case errors.Is(err, io.EOF):
			if len(cell) > 0 {
				return fmt.Errorf("input ended inside an unfinished cell (%s is open); it was not run", cellOpen(cell))
			}
			return nil
		case err != nil:
			return err
		}
		if len(cell) == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		c.in.AddHistory(line)
		if len(cell) == 0 && strings.HasPrefix(strings.TrimSpace(line), "%") {
			if err := c.magic(strings.TrimSpace(line)); errors.Is(err, errQuit) {
				return nil
			} else if err != nil {
				fmt.Fprintln(c.io.ErrOut, err)
			}
			continue
		}
		cell = append(cell, line)
		if cellOpen(cell) != "" {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			// Go has no line continuation: the backslash only asked for
			// another line.
			cell[len(cell)-1] = strings.TrimSuffix(line, `\`)
			continue
		}
		code := strings.Join(cell, "\n")
		cell = nil
		if err := c.runCell(code); err != nil {
			return err
		}
	}
}

// prompt names the targets, so that the user always sees where a cell
// goes.
func (c *console) prompt() string {
	return "[" + formatTargets(c.targets) + "]> "
}

// formatTargets writes ids the way parseTargets reads them, ranges
// folded: "0-3,7"; nil is "all".
func formatTargets(ids []int) string {
	if ids == nil {
		return "all"
	}
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		} else {
			parts = append(parts, strconv.Itoa(ids[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

const consoleHelp = `Console commands (a line starting with %):
  %targets         show the engines cells run on
  %targets IDS     run cells on IDS: all, or a list such as 0,2,4-7
  %engines         list the engines: id, host, pid, MPI rank/size
  %help            this list
  %quit            leave the console (so does Ctrl-D)
Anything else is Go code, run on the targets like 'ipcluster exec'. A cell
continues while brackets, a raw string or a /* comment are open, or when a
line ends with \. Ctrl-C interrupts a running cell; at the prompt it clears
the line.
`

// magic runs a % command.
func (c *console) magic(line string) error {
	name := strings.Fields(line)[0]
	arg := strings.TrimSpace(strings.TrimPrefix(line, name))
	switch name {
	case "%quit", "%exit":
		return errQuit
	case "%help", "%?":
		io.WriteString(c.io.Out, consoleHelp)
		return nil
	case "%targets":
		if arg == "" {
			fmt.Fprintf(c.io.Out, "targets: %s (registered engines: %s)\n", formatTargets(c.targets), formatTargets(c.ids()))
			return nil
		}
		ids, err := parseTargets(arg)
		if err != nil {
			return fmt.Errorf("%%targets: %v (want all, or ids such as 0,2,4-7)", err)
		}
		if ids, err = c.checkTargets(ids); err != nil {
			return fmt.Errorf("%%targets: %w; targets stay %s", err, formatTargets(c.targets))
		}
		c.targets = ids
		fmt.Fprintf(c.io.Out, "targets: %s\n", formatTargets(c.targets))
		return nil
	case "%engines":
		return c.listEngines()
	}
	return fmt.Errorf("unknown console command %s (%%help lists them; Go code cannot start with %%)", name)
}

// checkTargets sorts ids (nil: all) and refuses those not registered.
func (c *console) checkTargets(ids []int) ([]int, error) {
	if ids == nil {
		return nil, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	registered := c.ids()
	var missing []int
	for _, id := range ids {
		if !slices.Contains(registered, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no engine %s (registered engines: %s)", formatTargets(missing), formatTargets(registered))
	}
	return ids, nil
}

// ids are the registered engine ids, sorted.
func (c *console) ids() []int {
	ids := slices.Clone(c.client.IDs())
	slices.Sort(ids)
	if ids == nil {
		ids = []int{}
	}
	return ids
}

func (c *console) listEngines() error {
	lister, ok := c.client.(engineLister)
	if !ok {
		return fmt.Errorf("%%engines: this client cannot list engine details; registered engines: %s", formatTargets(c.ids()))
	}
	infos, err := lister.EngineList(c.ctx)
	if err != nil {
		return fmt.Errorf("%%engines: %w", err)
	}
	if len(infos) == 0 {
		fmt.Fprintln(c.io.Out, "no engines registered")
		return nil
	}
	tw := tabwriter.NewWriter(c.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tHOST\tPID\tMPI RANK\tTARGET")
	for _, e := range infos {
		host, pid, mpi := "?", "?", "-"
		if e.Host != "" {
			host = e.Host
		}
		if e.PID > 0 {
			pid = strconv.Itoa(e.PID)
		}
		if e.MPISize > 0 {
			mpi = fmt.Sprintf("%d/%d", e.MPIRank, e.MPISize)
		}
		target := ""
		if c.targets == nil || slices.Contains(c.targets, e.ID) {
			target = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.ID, host, pid, mpi, target)
	}
	return tw.Flush()
}

// runCell runs code on the targets, streaming output. Errors of the cell
// are shown and the console goes on; only a lost cluster or SIGTERM ends
// it (returned).
func (c *console) runCell(code string) error {
	// A Ctrl-C that came while the prompt waited belongs to no cell.
	select {
	case <-c.interrupts:
	default:
	}
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	cell, err := c.client.Submit(ctx, code, c.targets)
	if err != nil {
		if errors.Is(err, ErrNoCluster) {
			return err
		}
		fmt.Fprintln(c.io.ErrOut, "error:", err)
		return nil
	}

	// Ctrl-C interrupts the engines; a second one stops waiting for them.
	done := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-c.interrupts:
			}
			if n > 1 {
				cancel()
				return
			}
			fmt.Fprintf(c.io.ErrOut, "^C: interrupting engine(s) %s and waiting for their replies (Ctrl-C again to abandon them)\n",
				formatTargets(cell.Running()))
			go func() {
				if err := cell.Interrupt(ctx); err != nil && ctx.Err() == nil {
					fmt.Fprintln(c.io.ErrOut, "interrupt:", err)
				}
			}()
		}
	}()

	// Unfinished lines (progress dots, a prompt-like Print) are shown
	// once the engines have been quiet for a moment.
	outs := make(chan ipp.Output)
	go func() {
		defer close(outs)
		for o := range cell.Outputs(ctx) {
			select {
			case outs <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	p := newStreamPrinter(c.io)
	idle := time.NewTimer(c.partialDelay)
	idle.Stop()
	defer idle.Stop()
stream:
	for {
		select {
		case o, ok := <-outs:
			if !ok {
				break stream
			}
			if p.write(o) {
				idle.Reset(c.partialDelay)
			}
		case <-idle.C:
			p.flush()
		}
	}
	p.flush()
	results, err := cell.Results(ctx, nil)
	close(done)
	<-watcherDone
	switch {
	case c.ctx.Err() != nil:
		return context.Cause(c.ctx)
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(c.io.ErrOut, "abandoned engine(s) %s, still running the cell ('ipcluster signal SIGINT' interrupts them later)\n",
			formatTargets(cell.Running()))
		return nil
	case errors.Is(err, ErrNoCluster):
		return err
	case err != nil:
		fmt.Fprintln(c.io.ErrOut, "error:", err)
		return nil
	}
	printResults(newLinePrinter(c.io), results, nil)
	return nil
}

// partialDelay is the console's default wait for the end of a line.
const partialDelay = 250 * time.Millisecond

// streamPrinter shows engine output line by line as it arrives, each line
// under its engine's name: [stdout:N] text. Parts of a line are held until
// the line ends (or flush), so that lines of different engines do not mix.
type streamPrinter struct {
	io      IOStreams
	partial map[outKey]string
	order   []outKey
	// flushed marks streams whose unfinished line was shown: the newline
	// that ends it later is not an empty line of its own.
	flushed map[outKey]bool
}

type outKey struct {
	engine int
	stream string
}

func newStreamPrinter(s IOStreams) *streamPrinter {
	return &streamPrinter{io: s, partial: map[outKey]string{}, flushed: map[outKey]bool{}}
}

// write shows the complete lines of o and holds the rest; it reports
// whether some text is held.
func (p *streamPrinter) write(o ipp.Output) bool {
	k := outKey{o.Engine, o.Stream}
	if _, ok := p.partial[k]; !ok {
		p.order = append(p.order, k)
	}
	text := o.Text
	if p.flushed[k] && text != "" {
		text = strings.TrimPrefix(text, "\n")
		p.flushed[k] = false
	}
	text = p.partial[k] + text
	for {
		line, rest, ok := strings.Cut(text, "\n")
		if !ok {
			break
		}
		p.line(k, line)
		text = rest
	}
	p.partial[k] = text
	return text != ""
}

// flush prints the unfinished lines.
func (p *streamPrinter) flush() {
	for _, k := range p.order {
		if t := p.partial[k]; t != "" {
			p.line(k, t)
			p.partial[k] = ""
			p.flushed[k] = true
		}
	}
}

func (p *streamPrinter) line(k outKey, text string) {
	w := p.io.Out
	if k.stream == "stderr" {
		w = p.io.ErrOut
	}
	text = strings.TrimSuffix(text, "\r")
	if text == "" {
		// As exec prints an empty line: no trailing blank.
		fmt.Fprintf(w, "[%s:%d]\n", k.stream, k.engine)
		return
	}
	fmt.Fprintf(w, "[%s:%d] %s\n", k.stream, k.engine, text)
}
