//go:build unix

package fakebatch_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/fakebatch"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

const wait = 30 * time.Second

// fake is one installed system plus a working directory to submit from.
// Its helpers report problems in their results rather than failing a
// test, since subtests share it.
type fake struct {
	bin, dir string
	home     string
}

func newFake(t *testing.T, system string) *fake {
	return &fake{bin: fakebatch.Install(t, system), dir: t.TempDir(), home: t.TempDir()}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a fake command through its wrapper, from f.dir, with the
// wrappers first on PATH (as a launcher's test would set it) and the
// test's secret variable in the environment (to see whether jobs get it)
// plus extra variables. The wrapper is named by its full path: Debian's
// Grid Engine has a qsub of its own in /usr/bin.
func (f *fake) run(stdin, name string, args []string, extra ...string) result {
	cmd := exec.Command(filepath.Join(f.bin, name), args...)
	env := append(os.Environ(), "PATH="+f.bin+":"+os.Getenv("PATH"), "HOME="+f.home, "FAKEBATCH_TEST_SECRET=s3cret")
	cmd.Env = append(env, extra...)
	cmd.Dir = f.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return result{stderr: err.Error(), code: -1}
		}
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// write writes a file into f.dir; a failure shows as the file missing.
func (f *fake) write(name, text string) string {
	p := filepath.Join(f.dir, name)
	os.WriteFile(p, []byte(text), 0o755) //nolint:errcheck // see above
	return p
}

func (f *fake) release() { f.write("go", "") }

// body is the job script's commands: report the task's view, then wait
// for the test to release it, so the test sees it running.
func (f *fake) body(indexVar string) string {
	return fmt.Sprintf("echo \"task=$%s id=$%s workdir=$%s pwd=$(pwd) secret=${FAKEBATCH_TEST_SECRET:-unset}\"\n"+
		"while [ ! -e %s/go ]; do sleep 0.02; done\n", indexVar, "JOBVAR", "DIRVAR", f.dir)
}

func (f *fake) noneActive(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, wait, func() bool {
		ids, err := fakebatch.Active(f.bin)
		return err == nil && len(ids) == 0
	}, "jobs still queued or running")
}

// lines returns the output file's lines, sorted.
func lines(t *testing.T, p string) []string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSpace(string(data)), "\n")
	slices.Sort(ls)
	return ls
}

func TestPBS(t *testing.T) {
	for _, flavour := range []string{"pbspro", "torque"} {
		t.Run(flavour, func(t *testing.T) { testPBS(t, flavour) })
	}
}

func testPBS(t *testing.T, flavour string) {
	arrayFlag, indexVar, other := "-J", "PBS_ARRAY_INDEX", "-t"
	if flavour == "torque" {
		arrayFlag, indexVar, other = "-t", "PBS_ARRAYID", "-J"
	}
	f := newFake(t, flavour)
	body := strings.NewReplacer("JOBVAR", "PBS_JOBID", "DIRVAR", "PBS_O_WORKDIR").Replace(f.body(indexVar))
	header := "Job id            Name             User              Time Use S Queue\n" +
		"----------------  ---------------- ----------------  -------- - -----\n"

	t.Run("array", func(t *testing.T) {
		out := filepath.Join(f.dir, "array.log")
		script := f.write("array.sh", fmt.Sprintf("#!/bin/sh\n#PBS %s 1-3\n#PBS -q batch\n#PBS -j oe\n#PBS -o %s\n#PBS -N ipengine\n%s", arrayFlag, out, body))
		r := f.run("", "qsub", []string{script})
		m := regexp.MustCompile(`^(\d+)\[\]\.pbsserver\n$`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("qsub: %+v", r)
		}
		id := strings.TrimSpace(r.stdout)
		rowRe := regexp.MustCompile(`(?m)^(\S+)\s+ipengine\s+\S+\s+\S+ (\w) batch$`)
		testutil.Eventually(t, wait, func() bool {
			r := f.run("", "qstat", []string{"-t", id})
			rows := rowRe.FindAllStringSubmatch(r.stdout, -1)
			if !strings.HasPrefix(r.stdout, header) || len(rows) != 4 {
				return false
			}
			for _, row := range rows[1:] {
				if row[2] != "R" {
					return false
				}
			}
			want := "B"
			if flavour == "torque" {
				want = "R"
			}
			return rows[0][1] == id && rows[0][2] == want && rows[2][1] == m[1]+"[2].pbsserver"
		}, "array %s never showed 3 running sub-jobs", id)
		bare := m[1] + ".pbsserver"
		if r := f.run("", "qstat", []string{bare}); r.stderr != "qstat: Unknown Job Id "+bare+"\n" || r.code == 0 {
			t.Errorf("an array job named without its brackets: %+v", r)
		}
		f.release()
		if flavour == "pbspro" {
			testutil.Eventually(t, wait, func() bool { return pbsJSONState(t, f, id) == "F" }, "job never F")
			r = f.run("", "qstat", []string{id})
			if want := "qstat: " + id + " Job has finished, use -x or -H to obtain historical job information\n"; r.stderr != want || r.code == 0 {
				t.Errorf("qstat of a finished job: %+v, want stderr %q", r, want)
			}
		} else {
			testutil.Eventually(t, wait, func() bool {
				return strings.Contains(f.run("", "qstat", []string{id}).stdout, " C batch\n")
			}, "job never C")
		}
		got := lines(t, out)
		for i, l := range got {
			want := fmt.Sprintf("task=%d id=%s[%d].pbsserver workdir=%s pwd=%s secret=unset", i+1, m[1], i+1, f.dir, f.home)
			if l != want {
				t.Errorf("output line %d = %q, want %q", i, l, want)
			}
		}
		if len(got) != 3 {
			t.Errorf("output has %d lines, want 3: %q", len(got), got)
		}
		f.noneActive(t)
	})

	t.Run("export", func(t *testing.T) {
		out := filepath.Join(f.dir, "v.log")
		script := f.write("v.sh", fmt.Sprintf("#!/bin/sh\n#PBS -V\n#PBS -j oe\n#PBS -o %s\n%s", out, body))
		r := f.run("", "qsub", []string{script})
		if !regexp.MustCompile(`^\d+\.pbsserver\n$`).MatchString(r.stdout) {
			t.Fatalf("qsub: %+v", r)
		}
		f.noneActive(t)
		if got := lines(t, out); len(got) != 1 || !strings.HasSuffix(got[0], "secret=s3cret") || !strings.HasPrefix(got[0], "task= id="+strings.TrimSpace(r.stdout)) {
			t.Errorf("with -V the job saw %q", got)
		}
	})

	t.Run("hold and cancel", func(t *testing.T) {
		script := f.write("h.sh", "#!/bin/sh\n#PBS -N held\ntrue\n")
		r := f.run("", "qsub", []string{script}, "FAKEBATCH_HOLD=1")
		id := strings.TrimSpace(r.stdout)
		r = f.run("", "qstat", []string{id})
		if !strings.HasPrefix(r.stdout, header) || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(id)+` +held +\S+ +0 Q \w+$`).MatchString(r.stdout) {
			t.Errorf("qstat of a held job: %+v", r)
		}
		if r = f.run("", "qstat", []string{"-f", id}); !strings.HasPrefix(r.stdout, "Job Id: "+id+"\n") || !strings.Contains(r.stdout, "\n    job_state = Q\n") {
			t.Errorf("qstat -f of a held job: %+v", r)
		}
		if r = f.run("", "qdel", []string{id}); r.code != 0 || r.stdout+r.stderr != "" {
			t.Errorf("qdel: %+v", r)
		}
		f.noneActive(t)
		r = f.run("", "qdel", []string{"999.pbsserver"})
		if r.stderr != "qdel: Unknown Job Id 999.pbsserver\n" || r.code == 0 {
			t.Errorf("qdel of an unknown id: %+v", r)
		}
	})

	t.Run("cancel running", func(t *testing.T) {
		pidFile := filepath.Join(f.dir, "pid")
		script := f.write("r.sh", fmt.Sprintf("#!/bin/sh\nsleep 1000 &\necho $! > %s.tmp && mv %s.tmp %s\nwait\n", pidFile, pidFile, pidFile))
		id := strings.TrimSpace(f.run("", "qsub", []string{script}).stdout)
		pid := waitPID(t, pidFile)
		if r := f.run("", "qdel", []string{id}); r.code != 0 {
			t.Fatalf("qdel: %+v", r)
		}
		f.noneActive(t)
		testutil.Eventually(t, wait, func() bool { return syscall.Kill(pid, 0) != nil }, "the job's sleep %d survived qdel", pid)
	})

	t.Run("reject", func(t *testing.T) {
		want := "qsub: Unknown queue\n"
		if flavour == "torque" {
			want = "qsub: submit error (Unknown queue MSG=requested queue not found)\n"
		}
		script := f.write("q.sh", "#!/bin/sh\n#PBS -q nosuch\ntrue\n")
		for _, env := range []string{"FAKEBATCH_REJECT=1", "FAKEBATCH_QUEUES=workq,batch"} {
			if r := f.run("", "qsub", []string{script}, env); r.code == 0 || r.stderr != want || r.stdout != "" {
				t.Errorf("%s: %+v, want stderr %q", env, r, want)
			}
		}
		bad := f.write("bad.sh", fmt.Sprintf("#!/bin/sh\n#PBS %s 1-3\ntrue\n", other))
		if r := f.run("", "qsub", []string{bad}); r.code == 0 || !strings.Contains(r.stderr, "invalid option -- '"+other[1:]+"'") {
			t.Errorf("%s on %s: %+v", other, flavour, r)
		}
		f.noneActive(t)
	})

	if flavour == "pbspro" {
		t.Run("fail", func(t *testing.T) {
			out := filepath.Join(f.dir, "fail.log")
			script := f.write("f.sh", fmt.Sprintf("#!/bin/sh\n#PBS -j oe\n#PBS -o %s\necho never\n", out))
			id := strings.TrimSpace(f.run("", "qsub", []string{script}, "FAKEBATCH_FAIL=1").stdout)
			testutil.Eventually(t, wait, func() bool { return pbsJSONState(t, f, id) == "F" }, "failed job never F")
			if got := pbsJSON(t, f, id)["Exit_status"]; got != 1.0 {
				t.Errorf("Exit_status = %v, want 1", got)
			}
			if data, _ := os.ReadFile(out); string(data) != "fakebatch: job failed at once (FAKEBATCH_FAIL)\n" {
				t.Errorf("output %q", data)
			}
		})
	}
}

func pbsJSON(t *testing.T, f *fake, id string) map[string]any {
	r := f.run("", "qstat", []string{"-x", "-f", "-F", "json", id})
	var doc struct{ Jobs map[string]map[string]any }
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("qstat -F json: %v in %+v", err, r)
	}
	return doc.Jobs[id]
}

func pbsJSONState(t *testing.T, f *fake, id string) string {
	s, _ := pbsJSON(t, f, id)["job_state"].(string)
	return s
}

func waitPID(t *testing.T, p string) int {
	var pid int
	testutil.Eventually(t, wait, func() bool {
		data, err := os.ReadFile(p)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 0
	}, "the job never wrote %s", p)
	return pid
}

func TestLSF(t *testing.T) {
	f := newFake(t, "lsf")
	body := strings.NewReplacer("JOBVAR", "LSB_JOBID", "DIRVAR", "LS_SUBCWD").Replace(f.body("LSB_JOBINDEX"))
	submitted := regexp.MustCompile(`^Job <(\d+)> is submitted to (default )?queue <(\w+)>\.\n$`)

	t.Run("array", func(t *testing.T) {
		out := filepath.Join(f.dir, "array.log")
		// The indented directive is not one (ipyparallel's template bug).
		script := fmt.Sprintf("#!/bin/sh\n#BSUB -J \"ipengine[1-3]\"\n#BSUB -q short\n#BSUB -o %s\n#BSUB -e %s\n#BSUB -env none\n\n    #BSUB -env all\n%s", out, out, body)
		r := f.run(script, "bsub", nil)
		m := submitted.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil || m[2] != "" || m[3] != "short" {
			t.Fatalf("bsub: %+v", r)
		}
		id := m[1]
		testutil.Eventually(t, wait, func() bool {
			r := f.run("", "bjobs", []string{"-noheader", "-o", "jobid stat", id})
			return r.stdout == strings.Repeat(id+" RUN\n", 3)
		}, "job %s never showed 3 RUN elements", id)
		r = f.run("", "bjobs", []string{id})
		if !strings.HasPrefix(r.stdout, "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n") ||
			!regexp.MustCompile(`(?m)^`+id+` +\S+ +RUN +short +\S+ +\S+ +ipengine\[2\] `).MatchString(r.stdout) {
			t.Errorf("bjobs table: %+v", r)
		}
		f.release()
		testutil.Eventually(t, wait, func() bool {
			r := f.run("", "bjobs", []string{"-noheader", "-o", "jobid jobindex stat delimiter=','", id})
			return r.stdout == fmt.Sprintf("%s,1,DONE\n%s,2,DONE\n%s,3,DONE\n", id, id, id)
		}, "job %s never DONE", id)
		got := lines(t, out)
		for i, l := range got {
			want := fmt.Sprintf("task=%d id=%s workdir=%s pwd=%s secret=unset", i+1, id, f.dir, f.dir)
			if l != want {
				t.Errorf("output line %d = %q, want %q", i, l, want)
			}
		}
		if len(got) != 3 {
			t.Errorf("output has %d lines, want 3", len(got))
		}
	})

	t.Run("default env and queue", func(t *testing.T) {
		out := filepath.Join(f.dir, "all.log")
		r := f.run(fmt.Sprintf("#!/bin/sh\n#BSUB -o %s\n%s", out, body), "bsub", nil)
		m := submitted.FindStringSubmatch(r.stdout)
		if m == nil || m[2] != "default " || m[3] != "normal" {
			t.Fatalf("bsub: %+v", r)
		}
		f.release()
		f.noneActive(t)
		if got := lines(t, out); len(got) != 1 || got[0] != fmt.Sprintf("task=0 id=%s workdir=%s pwd=%s secret=s3cret", m[1], f.dir, f.dir) {
			t.Errorf("LSF propagates the environment by default; the job saw %q", got)
		}
	})

	t.Run("hold and cancel", func(t *testing.T) {
		r := f.run("#!/bin/sh\ntrue\n", "bsub", nil, "FAKEBATCH_HOLD=1")
		id := submitted.FindStringSubmatch(r.stdout)[1]
		if r = f.run("", "bjobs", []string{"-noheader", "-o", "jobid stat pend_reason delimiter='|'", id}); r.stdout != id+"|PEND|Not enough job slot(s)\n" {
			t.Errorf("bjobs of a held job: %+v", r)
		}
		if r = f.run("", "bkill", []string{id}); r.stdout != "Job <"+id+"> is being terminated\n" || r.code != 0 {
			t.Errorf("bkill: %+v", r)
		}
		f.noneActive(t)
		if r = f.run("", "bjobs", []string{"-noheader", "-o", "jobid stat", id}); r.stdout != id+" EXIT\n" {
			t.Errorf("bjobs after bkill: %+v", r)
		}
		if r = f.run("", "bjobs", []string{"999"}); r.stderr != "Job <999> is not found\n" || r.code == 0 {
			t.Errorf("bjobs of an unknown id: %+v", r)
		}
		if r = f.run("", "bkill", []string{"999"}); r.stderr != "Job <999>: No matching job found\n" || r.code == 0 {
			t.Errorf("bkill of an unknown id: %+v", r)
		}
	})

	t.Run("cancel running", func(t *testing.T) {
		pidFile := filepath.Join(f.dir, "pid")
		r := f.run(fmt.Sprintf("#!/bin/sh\nsleep 1000 &\necho $! > %s.tmp && mv %s.tmp %s\nwait\n", pidFile, pidFile, pidFile), "bsub", nil)
		id := submitted.FindStringSubmatch(r.stdout)[1]
		pid := waitPID(t, pidFile)
		if r = f.run("", "bkill", []string{id}); r.code != 0 {
			t.Fatalf("bkill: %+v", r)
		}
		f.noneActive(t)
		testutil.Eventually(t, wait, func() bool { return syscall.Kill(pid, 0) != nil }, "the job's sleep %d survived bkill", pid)
	})

	t.Run("reject", func(t *testing.T) {
		if r := f.run("#!/bin/sh\ntrue\n", "bsub", nil, "FAKEBATCH_REJECT=1"); r.code == 0 || r.stderr != "Request aborted by esub. Job not submitted.\n" {
			t.Errorf("FAKEBATCH_REJECT: %+v", r)
		}
		if r := f.run("#!/bin/sh\n#BSUB -q nosuch\ntrue\n", "bsub", nil, "FAKEBATCH_QUEUES=normal"); r.code == 0 || r.stderr != "nosuch: No such queue. Job not submitted.\n" {
			t.Errorf("unknown queue: %+v", r)
		}
	})

	t.Run("fail", func(t *testing.T) {
		r := f.run("#!/bin/sh\necho never\n", "bsub", nil, "FAKEBATCH_FAIL=1")
		id := submitted.FindStringSubmatch(r.stdout)[1]
		testutil.Eventually(t, wait, func() bool {
			return f.run("", "bjobs", []string{"-noheader", "-o", "jobid stat exit_code", id}).stdout == id+" EXIT 1\n"
		}, "failed job never EXIT 1")
	})
}

func TestHTCondor(t *testing.T) {
	f := newFake(t, "htcondor")
	submitted := regexp.MustCompile(`^Submitting job\(s\)\.+\n(\d+) job\(s\) submitted to cluster (\d+)\.\n$`)
	sub := func(name, extra string, n int) string {
		script := f.write(name+".sh", "#!/bin/sh\n"+strings.NewReplacer("JOBVAR", "FAKE_ID", "DIRVAR", "FAKE_DIR").Replace(f.body("FAKE_INDEX")))
		return f.write(name+".sub", fmt.Sprintf(`universe = vanilla
executable = %s
# shared file system
transfer_executable = False
arguments = "$(Process) 'two words'"
environment = "FAKE_INDEX=$(Process) FAKE_ID=$(Cluster).$(Process) FAKE_DIR=%s"
output = %s/%s.$(Process).out
error = %s/%s.$(Process).out
%s
queue %d
`, script, f.dir, f.dir, name, f.dir, name, extra, n))
	}

	t.Run("procs", func(t *testing.T) {
		logFile := filepath.Join(f.dir, "c.log")
		r := f.run("", "condor_submit", []string{sub("c", "log = "+logFile, 3)})
		m := submitted.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil || m[1] != "3" || strings.Count(r.stdout, ".") != 3+1 {
			t.Fatalf("condor_submit: %+v", r)
		}
		c := m[2]
		ids := []string{c + ".0", c + ".1", c + ".2"}
		testutil.Eventually(t, wait, func() bool {
			r := f.run("", "condor_q", append(slices.Clone(ids), "-af:jr", "JobStatus"))
			return r.stdout == fmt.Sprintf("%s.0 2\n%s.1 2\n%s.2 2\n", c, c, c)
		}, "cluster %s never showed 3 running procs", c)
		f.release()
		testutil.Eventually(t, wait, func() bool {
			r := f.run("", "condor_q", append(slices.Clone(ids), "-af:jr", "JobStatus"))
			return r.stdout == "" && r.code == 0
		}, "completed procs never left the queue")
		events, _ := os.ReadFile(logFile)
		for i := range 3 {
			for _, ev := range []string{"000 (%s.%03d.000) ", "001 (%s.%03d.000) ", "005 (%s.%03d.000) "} {
				if !strings.Contains(string(events), fmt.Sprintf(ev, c, i)) {
					t.Errorf("user log lacks %q:\n%s", fmt.Sprintf(ev, c, i), events)
				}
			}
			got := lines(t, filepath.Join(f.dir, fmt.Sprintf("c.%d.out", i)))
			want := fmt.Sprintf("task=%d id=%s.%d workdir=%s pwd=%s secret=unset", i, c, i, f.dir, f.dir)
			if len(got) != 1 || got[0] != want {
				t.Errorf("proc %d wrote %q, want %q", i, got, want)
			}
		}
	})

	t.Run("getenv", func(t *testing.T) {
		r := f.run("", "condor_submit", []string{sub("g", "getenv = True", 1)})
		f.release()
		f.noneActive(t)
		if got := lines(t, filepath.Join(f.dir, "g.0.out")); len(got) != 1 || !strings.HasSuffix(got[0], "secret=s3cret") {
			t.Errorf("with getenv the job saw %q (submit %+v)", got, r)
		}
	})

	t.Run("hold and remove", func(t *testing.T) {
		r := f.run("", "condor_submit", []string{sub("h", "", 2)}, "FAKEBATCH_HOLD=1")
		c := submitted.FindStringSubmatch(r.stdout)[2]
		if r = f.run("", "condor_q", []string{c, "-af:jr", "JobStatus"}); r.stdout != c+".0 1\n"+c+".1 1\n" {
			t.Errorf("condor_q of idle procs: %+v", r)
		}
		if r = f.run("", "condor_rm", []string{c}); r.stdout != "All jobs in cluster "+c+" have been marked for removal\n" || r.code != 0 {
			t.Errorf("condor_rm: %+v", r)
		}
		f.noneActive(t)
		if r = f.run("", "condor_rm", []string{c}); r.stderr != "Couldn't find/remove all jobs in cluster "+c+"\n" || r.code == 0 {
			t.Errorf("condor_rm of a removed cluster: %+v", r)
		}
	})

	t.Run("cancel running", func(t *testing.T) {
		pidFile := filepath.Join(f.dir, "pid")
		script := f.write("r.sh", fmt.Sprintf("#!/bin/sh\nsleep 1000 &\necho $! > %s.tmp && mv %s.tmp %s\nwait\n", pidFile, pidFile, pidFile))
		r := f.run(fmt.Sprintf("executable = %s\nqueue\n", script), "condor_submit", nil)
		c := submitted.FindStringSubmatch(r.stdout)[2]
		pid := waitPID(t, pidFile)
		if r = f.run("", "condor_rm", []string{c}); r.code != 0 {
			t.Fatalf("condor_rm: %+v", r)
		}
		f.noneActive(t)
		testutil.Eventually(t, wait, func() bool { return syscall.Kill(pid, 0) != nil }, "the job's sleep %d survived condor_rm", pid)
	})

	t.Run("missing executable is held", func(t *testing.T) {
		r := f.run("executable = ipengine\ntransfer_executable = False\nqueue 1\n", "condor_submit", nil)
		c := submitted.FindStringSubmatch(r.stdout)[2]
		testutil.Eventually(t, wait, func() bool {
			return strings.HasPrefix(f.run("", "condor_q", []string{c, "-af:jr", "JobStatus", "HoldReason"}).stdout, c+".0 5 \"Error from slot1@")
		}, "proc with a missing executable never held")
		f.run("", "condor_rm", []string{c})
		f.noneActive(t)
	})

	t.Run("reject", func(t *testing.T) {
		if r := f.run("executable = /bin/true\nqueue\n", "condor_submit", nil, "FAKEBATCH_REJECT=1"); r.code == 0 || r.stderr != "ERROR: Can't find address of local schedd\n" {
			t.Errorf("FAKEBATCH_REJECT: %+v", r)
		}
		if r := f.run("executable = /nonexistent\nqueue\n", "condor_submit", nil); r.code == 0 || r.stderr != "ERROR: Executable file /nonexistent does not exist\n" {
			t.Errorf("missing executable: %+v", r)
		}
	})
}

// TestSpecTemplates submits the scripts ipyparallel's own templates render
// (program and paths replaced) and checks that the fakes treat them
// as the real systems would, defects included.
func TestSpecTemplates(t *testing.T) {
	pbs := "#!/bin/sh\n#PBS -t 1-4\n#PBS -q q1\n#PBS -j oe\n#PBS -o LOG\n#PBS -V\n#PBS -N ipengine\necho engine $PBS_ARRAYID\n"
	t.Run("pbs on torque", func(t *testing.T) {
		f := newFake(t, "torque")
		out := filepath.Join(f.dir, "e.log")
		r := f.run("", "qsub", []string{f.write("pbs_engines", strings.Replace(pbs, "LOG", out, 1))})
		if r.code != 0 || !strings.HasSuffix(r.stdout, "[].pbsserver\n") {
			t.Fatalf("qsub: %+v", r)
		}
		f.noneActive(t)
		if got := lines(t, out); !slices.Equal(got, []string{"engine 1", "engine 2", "engine 3", "engine 4"}) {
			t.Errorf("output %q", got)
		}
	})
	t.Run("pbs on pbspro", func(t *testing.T) {
		f := newFake(t, "pbspro")
		r := f.run("", "qsub", []string{f.write("pbs_engines", pbs)})
		if r.code == 0 || !strings.HasPrefix(r.stderr, "qsub: invalid option -- 't'\n") {
			t.Errorf("PBS Pro accepted ipyparallel's Torque array line: %+v", r)
		}
	})
	t.Run("lsf", func(t *testing.T) {
		f := newFake(t, "lsf")
		out := filepath.Join(f.dir, "e.log")
		script := fmt.Sprintf("#!/bin/sh\n#BSUB -J ipengine[1-4]\n#BSUB -q q1\n#BSUB -o %s\n#BSUB -e %s\n\n"+
			"    #BSUB -J ipengine-cid\n    #BSUB -env all\n    echo engine $LSB_JOBINDEX $LSB_JOBNAME\n", out, out)
		r := f.run(script, "bsub", nil)
		if r.stdout != "Job <100> is submitted to queue <q1>.\n" {
			t.Fatalf("bsub: %+v", r)
		}
		f.noneActive(t)
		want := []string{"engine 1 ipengine[1-4]", "engine 2 ipengine[1-4]", "engine 3 ipengine[1-4]", "engine 4 ipengine[1-4]"}
		if got := lines(t, out); !slices.Equal(got, want) {
			t.Errorf("output %q, want %q", got, want)
		}
	})
	t.Run("htcondor", func(t *testing.T) {
		f := newFake(t, "htcondor")
		script := "\nuniverse        = vanilla\nexecutable      = ipengine\n# by default we expect a shared file system\n" +
			"transfer_executable = False\narguments       = \"\"\n\nqueue 4\n"
		r := f.run(script, "condor_submit", nil)
		if r.stdout != "Submitting job(s)....\n4 job(s) submitted to cluster 100.\n" {
			t.Fatalf("condor_submit: %+v", r)
		}
		// No ipengine in the submit directory: HTCondor holds the procs.
		testutil.Eventually(t, wait, func() bool {
			return f.run("", "condor_q", []string{"100", "-af:jr", "JobStatus"}).stdout == "100.0 5\n100.1 5\n100.2 5\n100.3 5\n"
		}, "procs never held")
		if r = f.run("", "condor_rm", []string{"100"}); r.code != 0 {
			t.Errorf("condor_rm: %+v", r)
		}
		f.noneActive(t)
	})
}
