package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/templates"
)

func TestTemplatesFlags(t *testing.T) {
	var got *TemplatesOptions
	capture := func(o *TemplatesOptions) error { got = o; return nil }
	if err := run(NewCmdTemplates(&Factory{}, capture), "show", "slurm-engines", "--profile", "p", "--default"); err != nil {
		t.Fatal(err)
	}
	if got.Action != "show" || got.Name != "slurm-engines" || got.Profile != "p" || !got.Default {
		t.Errorf("show: %+v", got)
	}
	if err := run(NewCmdTemplates(&Factory{}, capture), "list", "--profile-dir", "/x"); err != nil || got.Action != "list" || got.ProfileDir != "/x" {
		t.Errorf("list: %+v %v", got, err)
	}
	for _, bad := range [][]string{{"show"}, {"show", "a", "b"}, {"list", "x"}, {"list", "--default"}, {}} {
		if err := run(NewCmdTemplates(&Factory{IO: IOStreams{ErrOut: new(bytes.Buffer)}}, capture), bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTemplatesCommand(t *testing.T) {
	profile := t.TempDir()
	exec := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		f := &Factory{IO: IOStreams{Out: &out, ErrOut: &errOut}}
		cmd := NewRootCmd(f)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}
	out, _, err := exec("templates", "list", "--profile-dir", profile)
	if err != nil || strings.Fields(out)[0] != "htcondor-controller" || len(strings.Split(strings.TrimSpace(out), "\n")) != len(templates.Names()) {
		t.Fatalf("list: %q %v", out, err)
	}
	def, _, _ := templates.Source("", "slurm-engines")
	out, errOut, err := exec("templates", "show", "slurm-engines", "--profile-dir", profile)
	if err != nil || out != def || errOut != "" {
		t.Errorf("show default: %q %q %v", out, errOut, err)
	}

	// A profile copy wins, with a note on stderr; --default still shows ours.
	mine := filepath.Join(profile, "templates", "slurm-engines.sh.tmpl")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("#!/bin/sh\n# site copy\n"), 0o644)
	out, errOut, err = exec("templates", "show", "slurm-engines", "--profile-dir", profile)
	if err != nil || out != "#!/bin/sh\n# site copy\n" || !strings.Contains(errOut, mine) {
		t.Errorf("show override: %q %q %v", out, errOut, err)
	}
	if out, _, err = exec("templates", "show", "--default", "slurm-engines", "--profile-dir", profile); err != nil || out != def {
		t.Errorf("show --default: %q %v", out, err)
	}
	if out, _, _ = exec("templates", "list", "--profile-dir", profile); !strings.Contains(out, "slurm-engines\t(overridden by "+mine+")") {
		t.Errorf("list with override: %q", out)
	}

	_, _, err = exec("templates", "show", "slurm-engine", "--profile-dir", profile)
	if err == nil || !strings.Contains(err.Error(), "slurm-engines") {
		t.Errorf("unknown name: %v (want the names listed)", err)
	}
}
