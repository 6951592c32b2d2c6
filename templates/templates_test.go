package templates

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fullJob sets every field, so every directive a template has shows up.
var fullJob = Job{
	Name: "ipengine-demo", N: 4, Queue: "debug", Account: "proj1", QoS: "normal",
	Walltime: "01:00:00", Memory: "4G", Nodes: 2, TasksPerNode: 2, CoresPerEngine: 3,
	Output: "/p/log/ipengine-demo.log", WorkDir: "/home/u/work",
	Directives: []string{"#X --constraint=haswell", "#X --exclusive"},
	Prologue:   "module load mpi\nsource /opt/env.sh",
	Launch:     "srun --mpi=pmix", Command: "/opt/bin/ipcluster engine --profile-dir /p",
	IDBase: 8, ParallelEnv: "mpi",
	Env: map[string]string{protocol.EnvClusterID: "demo", protocol.EnvProfileDir: "'/p'"},
}

// bareJob leaves every optional field empty.
var bareJob = Job{Name: "ipengine-demo", N: 4, Command: "/opt/bin/ipcluster engine"}

func TestGolden(t *testing.T) {
	type variant struct {
		suffix string
		job    Job
	}
	torque := fullJob
	torque.Flavor = "torque"
	single := bareJob
	single.N = 1
	variants := []variant{{"full", fullJob}, {"bare", bareJob}}
	for _, name := range Names() {
		vs := variants
		if strings.HasPrefix(name, "pbs-") {
			vs = append(vs, variant{"torque", torque}, variant{"single", single})
		}
		if array := name == "sge-engines" || name == "pbs-engines" || name == "lsf-engines"; array {
			// For an array system a Launch means --mpi: one job of N
			// slots under mpiexec instead of N array tasks.
			mpiJob := fullJob
			mpiJob.Launch = "mpiexec -n 4"
			vs = []variant{{"full", withoutLaunch(fullJob)}, {"bare", bareJob}, {"mpi", mpiJob}}
			if name == "pbs-engines" {
				mpiTorque := mpiJob
				mpiTorque.Flavor = "torque"
				vs = append(vs, variant{"torque", withoutLaunch(torque)}, variant{"single", single}, variant{"mpi-torque", mpiTorque})
			}
		}
		for _, v := range vs {
			t.Run(name+"/"+v.suffix, func(t *testing.T) {
				job := v.job
				if strings.HasSuffix(name, "-controller") {
					job.N = 1
					job.Name = "ipcontroller-demo"
					job.Launch = ""
				}
				got, err := Render("", name+Suffix, job)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", name+"."+v.suffix+".golden")
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (go test -run TestGolden -update writes it)", err)
				}
				if got != string(want) {
					t.Errorf("rendered:\n%s\nwant (%s):\n%s", got, golden, want)
				}
				checkScript(t, name, job, got)
			})
		}
	}
}

// checkScript checks what every script must do whatever the system.
func checkScript(t *testing.T, name string, job Job, script string) {
	t.Helper()
	if !strings.HasPrefix(script, "#!/bin/sh\n") {
		t.Error("no #!/bin/sh first line")
	}
	if m := regexp.MustCompile(`(?m)^[ \t]+#`).FindString(script); m != "" {
		t.Errorf("indented directive (the scheduler ignores it): %q", m)
	}
	for _, want := range []string{"export IPP_ENGINE_ID_BASE=", job.Command} {
		if !strings.Contains(script, want) {
			t.Errorf("missing %q", want)
		}
	}
	env := map[string]string{"slurm": "#SBATCH --export=ALL", "sge": "#$ -V", "pbs": "#PBS -V", "lsf": "#BSUB -env all", "htcondor": "#CONDOR getenv = True"}
	system, role, _ := strings.Cut(name, "-")
	if !strings.Contains(script, env[system]) {
		t.Errorf("environment not propagated (%s)", env[system])
	}
	switch {
	case role == "engines" && system != "slurm" && job.Launch == "" && !strings.Contains(script, "export IPP_ENGINE_INDEX="):
		t.Error("array template without IPP_ENGINE_INDEX")
	case role == "engines" && system != "htcondor" && job.Launch != "" && !strings.Contains(script, job.Launch+" "+job.Command):
		t.Errorf("engines not started by %q", job.Launch)
	case role == "engines" && system != "slurm" && system != "htcondor" && job.Launch != "" && strings.Contains(script, protocol.EnvEngineIndex):
		t.Error("an MPI job exports an array index (ranks take their id from MPI)")
	}
	if system == "sge" && strings.Contains(script, "#PBS") {
		t.Error("SGE script with #PBS lines")
	}
	for _, d := range job.Directives {
		if !strings.Contains(script, "\n"+d+"\n") {
			t.Errorf("directive %q not verbatim on its own line", d)
		}
	}
	if job.Prologue != "" {
		if p, c := strings.Index(script, job.Prologue), strings.LastIndex(script, job.Command); p < 0 || p > c {
			t.Error("prologue missing or after the command")
		}
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		f := filepath.Join(t.TempDir(), "s.sh")
		os.WriteFile(f, []byte(script), 0o600)
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("sh -n: %v: %s", err, out)
		}
	}
}

func TestNamesAndSource(t *testing.T) {
	var want []string
	for _, s := range []string{"htcondor", "lsf", "pbs", "sge", "slurm"} {
		want = append(want, s+"-controller", s+"-engines")
	}
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	text, over, err := Source("", "slurm-engines")
	if err != nil || over != "" || !strings.Contains(text, "#SBATCH --ntasks={{.N}}") {
		t.Errorf("default source: %q %q %v", text, over, err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	mine := filepath.Join(dir, "templates", "sge-engines.sh.tmpl")
	os.WriteFile(mine, []byte("#!/bin/sh\n# mine\n"), 0o644)
	if text, over, err := Source(dir, "sge-engines.sh.tmpl"); err != nil || over != mine || text != "#!/bin/sh\n# mine\n" {
		t.Errorf("override: %q %q %v", text, over, err)
	}
	if _, _, err := Source(dir, "slurm-engine"); err == nil || !strings.Contains(err.Error(), "slurm-engines") {
		t.Errorf("unknown name: %v (want the list of names)", err)
	}
}

func TestShquote(t *testing.T) {
	got, err := Render("", "pbs-engines.sh.tmpl", Job{N: 2, Command: "x", WorkDir: `/a b/it's`})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", regexp.MustCompile(`(?m)^cd (.*) \|\| exit 1$`).FindStringSubmatch(got)[1]+` >/dev/null 2>&1; printf %s "$1"`, "sh", "probe").Output()
	if err != nil || string(out) != "probe" {
		t.Errorf("cd line: %v %q", err, out)
	}
	line := regexp.MustCompile(`(?m)^cd (.*) \|\| exit 1$`).FindStringSubmatch(got)[1]
	echo, err := exec.Command("sh", "-c", "printf %s "+line).Output()
	if err != nil || string(echo) != `/a b/it's` {
		t.Errorf("shquote round trip: %q %v", echo, err)
	}
}

func TestProfileOverrideAndErrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "slurm-engines.sh.tmpl"), []byte("#!/bin/sh\n# mine {{.N}}\n"), 0o644)
	got, err := Render(dir, "slurm-engines.sh.tmpl", Job{N: 3})
	if err != nil || got != "#!/bin/sh\n# mine 3\n" {
		t.Fatalf("override: %q %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, "templates", "broken.sh.tmpl"), []byte("{{.Nmae}}"), 0o644)
	if _, err := Render(dir, "broken.sh.tmpl", Job{}); err == nil || !strings.Contains(err.Error(), "Nmae") {
		t.Fatalf("misspelt field: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "templates", "syntax.sh.tmpl"), []byte("{{if}}"), 0o644)
	if _, err := Render(dir, "syntax.sh.tmpl", Job{}); err == nil {
		t.Fatal("broken template accepted")
	}
	if _, err := Render("", "nope.sh.tmpl", Job{}); err == nil {
		t.Fatal("missing template accepted")
	}
}

func withoutLaunch(j Job) Job {
	j.Launch = ""
	return j
}
