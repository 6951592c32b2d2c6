package launchers

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Entry is one launcher implementation in the catalog. A nil constructor
// means the launcher does not play that role.
type Entry struct {
	// Name is what --controller and --launcher accept (lower case).
	Name string
	// Aliases are other names accepted for it, such as ipyparallel's
	// ("mpi" for mpiexec).
	Aliases []string
	// Title is the name shown to people ("Slurm", "MPI").
	Title string
	// Summary is one line for help texts.
	Summary string
	// Options returns fresh settings of the launcher's own type with
	// defaults filled in; nil when it has no settings.
	Options func() Options
	// NewController and NewEngines build a launcher that has not started.
	NewController func(Config) (Launcher, error)
	NewEngines    func(Config) (Launcher, error)
	// RestoreController and RestoreEngines rebuild a launcher from the
	// handle its MarshalState saved, reattached to its processes; they
	// return an error wrapping ErrNotRunning when nothing is left.
	RestoreController func(Config, json.RawMessage) (Launcher, error)
	RestoreEngines    func(Config, json.RawMessage) (Launcher, error)
}

// catalog lists every launcher. Adding a launcher means adding it here.
var catalog = []Entry{
	{
		Name:    "local",
		Title:   "Local",
		Summary: "processes on this host, in their own process groups",
		NewController: func(cfg Config) (Launcher, error) {
			return NewLocalController(cfg)
		},
		NewEngines: func(cfg Config) (Launcher, error) {
			return NewLocalEngineSet(cfg)
		},
		RestoreController: restoreLocalController,
		RestoreEngines:    restoreLocalEngineSet,
	},
	{
		Name:    "mpiexec",
		Title:   "MPI",
		Aliases: []string{"mpi"},
		Summary: "engines as one MPI job on this host (mpiexec -n N); the controller stays local",
		Options: func() Options { return &MPIExecOptions{} },
		NewEngines: func(cfg Config) (Launcher, error) {
			return NewMPIExecEngineSet(cfg)
		},
		RestoreEngines: restoreMPIExecEngineSet,
	},
	{
		Name:    "srun",
		Title:   "Srun",
		Summary: "inside a Slurm allocation (salloc or a batch script): engines as one job step (srun -n N), the controller where ipcluster runs",
		Options: func() Options { return &MPIExecOptions{} },
		NewController: func(cfg Config) (Launcher, error) {
			return NewLocalController(cfg)
		},
		NewEngines: func(cfg Config) (Launcher, error) {
			return NewSrunEngineSet(cfg)
		},
		RestoreController: restoreLocalController,
		RestoreEngines:    restoreMPIExecEngineSet,
	},
	{
		Name:    "ssh",
		Title:   "SSH",
		Summary: "processes on other hosts over the system ssh: --hosts host1:4,host2:8 for engines, --controller-host for the controller",
		Options: func() Options { return &SSHOptions{} },
		NewController: func(cfg Config) (Launcher, error) {
			return NewSSHController(cfg)
		},
		NewEngines: func(cfg Config) (Launcher, error) {
			return NewSSHEngineSet(cfg)
		},
		RestoreController: restoreSSHController,
		RestoreEngines:    restoreSSHEngineSet,
	},
	batchEntry(slurmDialect, "Slurm batch jobs (sbatch; engines started by srun, MPI-aware)"),
	batchEntry(sgeDialect, "Grid Engine array jobs (qsub -t)", "gridengine"),
	batchEntry(pbsDialect, "PBS Pro or Torque array jobs (qsub -J / -t)", "torque", "pbspro"),
	batchEntry(lsfDialect, "LSF array jobs (bsub)"),
	batchEntry(htcondorDialect, "HTCondor jobs (condor_submit, queue N)", "condor"),
}

// Lookup finds a launcher by name or alias, ignoring case as ipyparallel
// does ("Slurm", "MPI").
func Lookup(name string) (*Entry, error) {
	want := strings.ToLower(strings.TrimSpace(name))
	for i := range catalog {
		if catalog[i].Name == want || slices.Contains(catalog[i].Aliases, want) {
			return &catalog[i], nil
		}
	}
	if want == "sshproxy" {
		// ipyparallel's SSH proxy runs `ipcluster engines` on a login
		// node; ours is the whole ipcluster there.
		return nil, fmt.Errorf("%w %q: to run ipcluster itself on a remote host (and its launcher there), use `ipcluster start --ssh HOST --launcher <launcher there>`; --launcher ssh --hosts starts engines on hosts directly", ErrUnknownLauncher, name)
	}
	return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownLauncher, name, strings.Join(Names(""), ", "))
}

// Names lists the launchers that can play kind ("" = any), sorted.
func Names(kind Kind) []string {
	var names []string
	for _, e := range catalog {
		if kind == "" || e.plays(kind) {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	return names
}

func (e *Entry) plays(kind Kind) bool {
	switch kind {
	case KindController:
		return e.NewController != nil
	case KindEngines:
		return e.NewEngines != nil
	}
	return false
}

// New builds a launcher of the named implementation for kind.
func New(kind Kind, name string, cfg Config) (Launcher, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	switch {
	case kind == KindController && e.NewController != nil:
		return e.NewController(cfg)
	case kind == KindEngines && e.NewEngines != nil:
		return e.NewEngines(cfg)
	}
	return nil, fmt.Errorf("launcher %q cannot start %s", e.Name, kind)
}

// Restore rebuilds a saved launcher of the named implementation.
func Restore(kind Kind, name string, cfg Config, state json.RawMessage) (Launcher, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	switch {
	case kind == KindController && e.RestoreController != nil:
		return e.RestoreController(cfg, state)
	case kind == KindEngines && e.RestoreEngines != nil:
		return e.RestoreEngines(cfg, state)
	}
	return nil, fmt.Errorf("launcher %q cannot restore %s", e.Name, kind)
}

// Title is the name people see for launcher name (ipcluster list's
// LAUNCHER column); an unknown name is shown as it is.
func Title(name string) string {
	if e, err := Lookup(name); err == nil && e.Title != "" {
		return e.Title
	}
	return name
}
