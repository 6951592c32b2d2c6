// Package templates holds the batch-script templates that batch-system
// launchers render: <system>-engines.sh.tmpl and
// <system>-controller.sh.tmpl for slurm, sge, pbs, lsf and htcondor. They are Go text/templates embedded in the binary, rendered
// with typed data and missingkey=error, so a misspelt field is an error at
// submission time rather than a broken directive in a job script. A
// template of the same name in <profile>/templates/ overrides the default.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

//go:embed *.sh.tmpl
var defaults embed.FS

// Job is the data every batch template sees. Templates leave out the
// directives of empty fields, and of fields a system has no directive for
// (QoS outside Slurm; Queue under HTCondor; Nodes and TasksPerNode under
// SGE, LSF and HTCondor, whose array tasks each run one engine).
type Job struct {
	// Name is the job name (ipengine-<cluster id>, ipcontroller-<id>).
	Name string
	// N is the number of engines this job runs: tasks of one step
	// (Slurm) or array tasks 1..N (SGE, PBS, LSF, HTCondor). 1 for a
	// controller.
	N int
	// Queue (partition), Account, QoS, Walltime and Memory map to the
	// scheduler's directives as given, in the scheduler's own syntax
	// (Walltime: Slurm and PBS "HH:MM:SS", SGE h_rt, LSF -W "[HH:]MM",
	// HTCondor seconds).
	Queue, Account, QoS, Walltime, Memory string
	// Nodes and TasksPerNode shape the job (0: the scheduler decides).
	Nodes, TasksPerNode int
	// CoresPerEngine is the cores each engine may use (0: the default).
	CoresPerEngine int
	// Output is the job's output file (stdout and stderr).
	Output string
	// WorkDir is the directory the job starts in.
	WorkDir string
	// Directives are extra scheduler lines added verbatim after the
	// generated ones.
	Directives []string
	// Prologue runs before the engines (module load, conda activate...).
	Prologue string
	// Launch is what starts the tasks of a multi-task job, with its
	// arguments ("srun --mpi=pmix"); empty for array jobs.
	Launch string
	// Command is the engine (or controller) command line, already quoted
	// for the shell.
	Command string
	// IDBase is the engine id of this job's first engine; templates
	// export it as IPP_ENGINE_ID_BASE, and array templates export the
	// task's 0-based index as IPP_ENGINE_INDEX.
	IDBase int
	// Flavor is the variant of the batch system where their scripts
	// differ: PBS "torque" (array -t, nodes=N:ppn=C) or "" / "pbspro"
	// (array -J, select=N:ncpus=C). The launcher fills it from the
	// dialect's Flavor probe.
	Flavor string
	// ParallelEnv is the Grid Engine parallel environment that
	// CoresPerEngine slots come from (#$ -pe <ParallelEnv> <cores>);
	// sites name their own, "" means "smp".
	ParallelEnv string
	// Env holds variables the script exports before the command (sorted
	// by the template with range); values are already shell-quoted.
	Env map[string]string
}

// Render renders the template called name (e.g. "slurm-engines.sh.tmpl"),
// preferring the profile's own copy when profileDir has one.
func Render(profileDir, name string, job Job) (string, error) {
	src, err := lookup(profileDir, name)
	if err != nil {
		return "", err
	}
	return render(name, src, job)
}

// RenderFile renders the template in the file at path (a user's own,
// given with --template).
func RenderFile(path string, job Job) (string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("templates: %w", err)
	}
	return render(filepath.Base(path), src, job)
}

func render(name string, src []byte, job Job) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("templates: %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, job); err != nil {
		return "", fmt.Errorf("templates: %s: %w", name, err)
	}
	return b.String(), nil
}

// funcs are the functions templates may call besides text/template's.
var funcs = template.FuncMap{
	// shquote quotes a value for the script's shell (paths in commands,
	// as opposed to directives, which no shell reads).
	"shquote": func(s string) string {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	},
	// mul multiplies resource counts (Torque's ppn = tasks x cores).
	"mul": func(a, b int) int { return a * b },
}

// Suffix ends every template's file name; Names and the ipcluster
// templates command show names without it.
const Suffix = ".sh.tmpl"

// Names lists the built-in templates ("slurm-engines", ...), sorted.
func Names() []string {
	entries, _ := fs.ReadDir(defaults, ".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), Suffix))
	}
	sort.Strings(names)
	return names
}

// Source is the text Render would use for the template called name
// (with or without Suffix), and the file it comes from when the profile
// overrides the default ("" for the built-in one).
func Source(profileDir, name string) (text, overridePath string, err error) {
	if !strings.HasSuffix(name, Suffix) {
		name += Suffix
	}
	if profileDir != "" {
		p := filepath.Join(profileDir, "templates", name)
		if b, err := os.ReadFile(p); err == nil {
			return string(b), p, nil
		}
	}
	b, err := defaults.ReadFile(name)
	if err != nil {
		return "", "", fmt.Errorf("templates: no template %q (have %s)", strings.TrimSuffix(name, Suffix), strings.Join(Names(), ", "))
	}
	return string(b), "", nil
}

func lookup(profileDir, name string) ([]byte, error) {
	if profileDir != "" {
		if b, err := os.ReadFile(filepath.Join(profileDir, "templates", name)); err == nil {
			return b, nil
		}
	}
	b, err := defaults.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("templates: no template %q", name)
	}
	return b, nil
}
