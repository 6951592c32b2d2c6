package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// DefaultMPIExec is the mpiexec command used when none is configured.
var DefaultMPIExec = []string{"mpiexec"}

// DefaultSrun is the command of the srun launcher: one job step of the
// allocation it runs in (salloc, or a batch script).
var DefaultSrun = []string{"srun"}

// MPIExecOptions are the settings of the mpiexec and srun launchers.
type MPIExecOptions struct {
	// MPIExec is the program and its leading arguments (empty: "mpiexec",
	// or "srun" for the srun launcher).
	MPIExec []string `json:"mpiexec,omitempty"`
	// MPIArgs are extra arguments, placed before "-n N".
	MPIArgs []string `json:"mpi-args,omitempty"`
}

// BindFlags implements Options.
func (o *MPIExecOptions) BindFlags(fs *pflag.FlagSet) {
	WordsVar(fs, &o.MPIExec, "mpiexec", "MPI launch program and arguments for --launcher mpiexec or srun (default \"mpiexec\" / \"srun\")")
	WordsVar(fs, &o.MPIArgs, "mpi-args", "extra arguments for mpiexec or srun, before -n (shell-like words)")
}

// MPIExecEngineSet runs an engine set as one MPI job on this host:
//
//	<mpiexec> [mpi args] -n N <engine command...>
//
// mpiexec leads its own process group and logs to
// <profile>/log/ipengine-<cluster id>-<set id>.log. Its ranks receive the
// local launcher's variables plus IPP_MPI_SIZE=N and IPP_ENGINE_ID_BASE.
//
// When this program runs as root it sets OMPI_ALLOW_RUN_AS_ROOT=1 and
// OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, and when N exceeds the CPUs it sets
// OMPI_MCA_rmaps_base_oversubscribe=1, unless the environment already
// has them: Open MPI refuses both cases otherwise, and other MPI
// implementations ignore these variables.
//
// Stop sends SIGTERM to mpiexec's process group (mpiexec forwards it to
// the ranks), SIGKILL after the grace period, and then SIGKILL to every
// descendant of mpiexec still alive: Open MPI and MPICH both put each
// rank in a process group of its own. Signal forwards a signal to the
// mpiexec process alone; Open MPI's mpiexec forwards SIGUSR1 and SIGUSR2
// to the ranks, but turns SIGINT into SIGTERM for them, so interrupting
// an Open MPI engine set through the launcher ends it.
type MPIExecEngineSet struct {
	*localGroup
	requested int
	mpiexec   []string
	mpiArgs   []string
	engine    []string
	idBase    int
	// geteuid and numCPU decide the Open MPI variables (tests replace them).
	geteuid func() int
	numCPU  func() int

	treeMu sync.Mutex
	tree   []Process // descendants of mpiexec seen while stopping
}

// NewMPIExecEngineSet returns an mpiexec engine-set launcher.
func NewMPIExecEngineSet(cfg Config) (*MPIExecEngineSet, error) {
	return newMPIEngineSet(cfg, DefaultMPIExec)
}

// NewSrunEngineSet returns an engine-set launcher that runs the engines as
// one step of the Slurm allocation this program runs in:
// `srun [args] -n N <engine>`.
func NewSrunEngineSet(cfg Config) (*MPIExecEngineSet, error) {
	return newMPIEngineSet(cfg, DefaultSrun)
}

func newMPIEngineSet(cfg Config, def []string) (*MPIExecEngineSet, error) {
	g, err := newLocalGroup(cfg, EngineRole)
	if err != nil {
		return nil, err
	}
	var o MPIExecOptions
	if mo, ok := cfg.Options.(*MPIExecOptions); ok && mo != nil {
		o = *mo
	}
	mpi := slices.Clone(o.MPIExec)
	if len(mpi) == 0 {
		mpi = slices.Clone(def)
		if slices.Equal(def, DefaultSrun) && !slices.ContainsFunc(o.MPIArgs, func(a string) bool { return strings.HasPrefix(a, "--mpi") }) {
			// srun starts MPI ranks only with the plugin of the MPI the
			// engine binary links; without it each rank is a world of one.
			switch mpiFlavorOf(g.argv[0]) {
			case "ompi":
				mpi = append(mpi, "--mpi=pmix")
			case "mpich":
				mpi = append(mpi, "--mpi=pmi2")
			}
		}
	}
	return &MPIExecEngineSet{
		localGroup: g,
		mpiexec:    mpi,
		mpiArgs:    slices.Clone(o.MPIArgs),
		engine:     g.argv,
		idBase:     cfg.EngineIDBase,
		geteuid:    os.Geteuid,
		numCPU:     runtime.NumCPU,
	}, nil
}

// Argv is the command line Start runs for n engines.
func (m *MPIExecEngineSet) Argv(n int) []string {
	argv := slices.Clone(m.mpiexec)
	argv = append(argv, m.mpiArgs...)
	argv = append(argv, "-n", strconv.Itoa(n))
	return append(argv, m.engine...)
}

// env is what Start adds to the environment for n ranks.
func (m *MPIExecEngineSet) env(n int) map[string]string {
	extra := m.cfg.engineEnv()
	extra[protocol.EnvMPISize] = strconv.Itoa(n)
	extra[protocol.EnvEngineIDBase] = strconv.Itoa(m.idBase)
	setDefault := func(k string) {
		if _, ok := m.cfg.Env[k]; ok {
			return
		}
		if _, ok := os.LookupEnv(k); ok {
			return
		}
		extra[k] = "1"
	}
	if m.geteuid() == 0 {
		setDefault("OMPI_ALLOW_RUN_AS_ROOT")
		setDefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")
	}
	if n > m.numCPU() {
		setDefault("OMPI_MCA_rmaps_base_oversubscribe")
	}
	return extra
}

// Start implements Launcher: one mpiexec process running n ranks.
func (m *MPIExecEngineSet) Start(ctx context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("cannot start %d engines", n)
	}
	if m.isStarted() {
		return errors.New("engine set already started")
	}
	m.requested = n
	m.argv = m.Argv(n)
	name := joinNonEmpty("-", "ipengine", m.cfg.ClusterID, m.cfg.EngineSetID) + ".log"
	_, err := m.spawn(filepath.Join(wire.LogDir(m.cfg.ProfileDir), name), m.env(n))
	return err
}

// Requested is the number of ranks asked for.
func (m *MPIExecEngineSet) Requested() int { return m.requested }

// mpiexecProc is the mpiexec process (nil before Start or when it was
// gone at reattach).
func (m *MPIExecEngineSet) mpiexecProc() *localProc {
	procs := m.snapshot()
	if len(procs) == 0 {
		return nil
	}
	return procs[0]
}

// Status implements Launcher: the n ranks count as running while mpiexec
// runs (mpiexec ends the job when a rank fails).
func (m *MPIExecEngineSet) Status() Status {
	st := m.localGroup.Status()
	if st.Total == 0 {
		return st
	}
	st.Total = m.requested
	if st.Running > 0 {
		st.Running = m.requested
	}
	if st.Exited > 0 {
		st.Exited = m.requested
	}
	return st
}

// Signal implements Launcher: sig goes to mpiexec only, which forwards
// it to the ranks (Open MPI delivers SIGINT to them as SIGTERM).
func (m *MPIExecEngineSet) Signal(sig syscall.Signal) error {
	lp := m.mpiexecProc()
	if lp == nil || !lp.alive() {
		return nil
	}
	if ps, ok := lp.proc.(PIDSignaler); ok {
		return ps.SignalPID(sig)
	}
	return lp.proc.Signal(sig)
}

// descendants records mpiexec's live descendants, keeping those seen
// before (they may have been reparented since).
func (m *MPIExecEngineSet) descendants(p Process) []Process {
	tr, ok := m.cfg.runner().(TreeRunner)
	m.treeMu.Lock()
	defer m.treeMu.Unlock()
	if ok {
		for _, d := range tr.Descendants(p) {
			if !slices.ContainsFunc(m.tree, func(o Process) bool {
				return o.PID() == d.PID() && o.StartTime() == d.StartTime()
			}) {
				m.tree = append(m.tree, d)
			}
		}
	}
	return slices.Clone(m.tree)
}

// Stop implements Launcher: SIGTERM to mpiexec's group, SIGKILL after the
// grace period, then SIGKILL to every rank or helper left in other
// groups, and a check that none of them survives.
func (m *MPIExecEngineSet) Stop(ctx context.Context) error {
	lp := m.mpiexecProc()
	if lp == nil || lp.proc == nil {
		return nil
	}
	p := lp.proc
	log := m.cfg.logger().With("pid", lp.rec.PID)
	m.mu.Lock()
	lp.stopping = lp.stopping || p.Alive()
	stopping := lp.stopping
	m.mu.Unlock()
	m.descendants(p)
	var errs []error
	if err := stopProcess(ctx, log, fmt.Sprintf("mpiexec pid %d", lp.rec.PID), p, m.cfg.stopGrace(), func() { m.descendants(p) }); err != nil {
		errs = append(errs, err)
	}
	tree := m.descendants(p)
	for _, d := range tree {
		if d.Alive() {
			log.Warn("rank outlived mpiexec; sending SIGKILL", "rank_pid", d.PID())
			_ = d.Signal(syscall.SIGKILL)
		}
	}
	for _, d := range tree {
		if err := d.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pid %d of the MPI job survived SIGKILL: %w", d.PID(), err))
		}
	}
	m.mu.Lock()
	lp.rec.State = StateAfter
	m.mu.Unlock()
	if code := p.ExitCode(); code > 0 && !stopping {
		log.Warn("mpiexec had exited with an error", "exit_code", code, "log", lp.rec.OutputFile)
	}
	if stopping && lp.rec.OutputFile != "" {
		if err := os.Remove(lp.rec.OutputFile); err != nil && !os.IsNotExist(err) {
			log.Debug("removing log", "err", err)
		}
	}
	return errors.Join(errs...)
}

// JobPIDs lists mpiexec's pid and those of its descendants known so far
// (found now while mpiexec runs, or remembered from Stop).
func (m *MPIExecEngineSet) JobPIDs() []int {
	pids := m.PIDs()
	if lp := m.mpiexecProc(); lp != nil && lp.proc != nil {
		for _, d := range m.descendants(lp.proc) {
			pids = append(pids, d.PID())
		}
	}
	return pids
}

// mpiexecState is the MPIExecEngineSet handle: the mpiexec process (the
// local launcher's record, with the full command line) and the launch.
type mpiexecState struct {
	Version     int      `json:"version"`
	N           int      `json:"n"`
	EngineSetID string   `json:"engine_set_id"`
	MPICmd      []string `json:"mpi_cmd"`
	MPIArgs     []string `json:"mpi_args,omitempty"`
	EngineCmd   []string `json:"engine_cmd"`
	IDBase      int      `json:"engine_id_base"`
	procRecord
}

// MarshalState implements Stateful.
func (m *MPIExecEngineSet) MarshalState() (json.RawMessage, error) {
	recs := m.records()
	if len(recs) != 1 {
		return nil, errors.New("mpiexec engine set not started")
	}
	return json.Marshal(mpiexecState{
		Version:     StateVersion,
		N:           m.requested,
		EngineSetID: m.cfg.EngineSetID,
		MPICmd:      m.mpiexec,
		MPIArgs:     m.mpiArgs,
		EngineCmd:   m.engine,
		IDBase:      m.idBase,
		procRecord:  recs[0],
	})
}

func restoreMPIExecEngineSet(cfg Config, state json.RawMessage) (Launcher, error) {
	var st mpiexecState
	if err := decodeState("mpiexec engine set", state, &st); err != nil {
		return nil, err
	}
	cfg.restored(st.ProfileDir, st.EngineSetID, st.EngineCmd)
	cfg.Options = &MPIExecOptions{MPIExec: st.MPICmd, MPIArgs: st.MPIArgs}
	cfg.EngineIDBase = st.IDBase
	m, err := newMPIEngineSet(cfg, DefaultMPIExec)
	if err != nil {
		return nil, err
	}
	m.requested = st.N
	if len(st.Cmd) > 0 {
		m.argv = st.Cmd
	} else {
		m.argv = m.Argv(st.N)
	}
	rec := st.procRecord
	rec.Cmd = m.argv
	if st.State == StateAfter || m.attach(rec).proc == nil {
		return nil, fmt.Errorf("mpiexec engine set %s (pid %d): %w", st.EngineSetID, st.PID, ErrNotRunning)
	}
	return m, nil
}
