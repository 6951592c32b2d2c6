// Package templates holds the batch-script templates that batch-system
// launchers render (Slurm today; PBS, SGE, LSF and HTCondor with their
// launchers). They are Go text/templates embedded in the binary, rendered
// with typed data and missingkey=error, so a misspelt field is an error at
// submission time rather than a broken directive in a job script. A
// template of the same name in <profile>/templates/ overrides the default.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

//go:embed *.sh.tmpl
var defaults embed.FS

// Job is the data every batch template sees. Templates leave out the
// directives of empty fields.
type Job struct {
	// Name is the job name (ipengine-<cluster id>, ipcontroller-<id>).
	Name string
	// N is the number of engines this job runs: tasks of one step
	// (Slurm) or array tasks 1..N (SGE, PBS, LSF, HTCondor). 1 for a
	// controller.
	N int
	// Queue (partition), Account, QoS, Walltime and Memory map to the
	// scheduler's directives as given.
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
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("templates: %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, job); err != nil {
		return "", fmt.Errorf("templates: %s: %w", name, err)
	}
	return b.String(), nil
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
