package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSlurmGolden(t *testing.T) {
	got, err := Render("", "slurm-engines.sh.tmpl", Job{
		Name: "ipengine-demo", N: 4, Queue: "debug", Walltime: "01:00:00", Output: "/p/log/e.log",
		Directives: []string{"#SBATCH --constraint=haswell"}, Prologue: "module load mpi",
		Command: "/opt/bin/ipcluster engine --profile-dir /p",
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/slurm-engines.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
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
