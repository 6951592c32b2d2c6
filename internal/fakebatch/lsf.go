//go:build unix

package fakebatch

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// lsfOpts are the bsub options the fake understands.
type lsfOpts struct {
	name, queue, out, err, env, cwd string
	hold                            bool
}

var (
	lsfWithArg = map[string]bool{"-J": true, "-q": true, "-o": true, "-oo": true, "-e": true, "-eo": true,
		"-env": true, "-n": true, "-W": true, "-R": true, "-P": true, "-G": true, "-M": true, "-m": true,
		"-u": true, "-cwd": true, "-w": true, "-L": true, "-app": true, "-sla": true, "-We": true, "-c": true, "-g": true}
	lsfNoArg = map[string]bool{"-x": true, "-N": true, "-B": true, "-r": true, "-rn": true, "-H": true}
	// lsfArrayRe reads -J "name[1-4]" (and [1-10:2], [1,3,5], %N limits).
	lsfArrayRe = regexp.MustCompile(`^([^\[]*)\[([0-9,:\-]+)\](%\d+)?$`)
)

func (o *lsfOpts) parse(args []string) ([]string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			return args[i:], nil
		}
		if lsfNoArg[a] {
			o.hold = o.hold || a == "-H"
			continue
		}
		if !lsfWithArg[a] {
			return nil, fmt.Errorf("illegal option -- %s", strings.TrimPrefix(a, "-"))
		}
		if i+1 >= len(args) {
			return nil, fmt.Errorf("option requires an argument -- %s", strings.TrimPrefix(a, "-"))
		}
		i++
		v := args[i]
		switch a {
		case "-J":
			o.name = v
		case "-q":
			o.queue = v
		case "-o", "-oo":
			o.out = v
		case "-e", "-eo":
			o.err = v
		case "-env":
			o.env = v
		case "-cwd":
			o.cwd = v
		}
	}
	return nil, nil
}

// bsub: `bsub < script` reads #BSUB lines from the script on stdin;
// `bsub [options] command args` runs the command and, like LSF, reads no
// directives from it.
func bsub(e *env, args []string) int {
	fail := func(msg string) int {
		fmt.Fprintln(e.stderr, msg)
		return 255
	}
	var o lsfOpts
	rest, err := o.parse(args)
	if err != nil {
		return fail("bsub: " + err.Error() + ". Job not submitted.")
	}
	var argv []string
	var text string
	if len(rest) == 0 {
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return fail("bsub: " + err.Error())
		}
		text = string(data)
		dirs, err := directives(text, "#BSUB")
		if err != nil {
			return fail("bsub: " + err.Error() + ". Job not submitted.")
		}
		o = lsfOpts{}
		for _, d := range dirs {
			if extra, err := o.parse(d); err != nil || len(extra) > 0 {
				return fail(fmt.Sprintf("bsub: bad directive %q. Job not submitted.", strings.Join(d, " ")))
			}
		}
		o.parse(args) //nolint:errcheck // parsed once already
	} else {
		quoted := make([]string, len(rest))
		for i, w := range rest {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		argv = []string{"/bin/sh", "-c", strings.Join(quoted, " ")}
	}
	if msg, ok := e.reject("Request aborted by esub. Job not submitted."); ok {
		return fail(msg)
	}
	queue := o.queue
	if queue == "" {
		queue = "normal"
	}
	if !e.queueKnown(queue) {
		return fail(queue + ": No such queue. Job not submitted.")
	}
	indices := []int{0}
	name := o.name
	if m := lsfArrayRe.FindStringSubmatch(name); m != nil {
		if indices, err = indexRange(m[2]); err != nil {
			return fail("Bad job name. Job not submitted.")
		}
	} else if strings.ContainsAny(name, "[]") {
		return fail("Bad job name. Job not submitted.")
	}
	if name == "" {
		name = "STDIN"
		if argv != nil {
			name = strings.Join(rest, " ")
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fail("bsub: " + err.Error())
	}
	if o.cwd != "" {
		cwd = o.cwd
	}
	j, err := e.submit(func(seq int) (*job, error) {
		if argv == nil {
			if argv, err = e.scriptCommand(seq, text); err != nil {
				return nil, err
			}
		}
		return e.lsfJob(seq, o, name, queue, cwd, argv, indices)
	})
	if err != nil {
		return fail("bsub: " + err.Error())
	}
	if o.queue == "" {
		fmt.Fprintf(e.stdout, "Job <%d> is submitted to default queue <%s>.\n", j.Seq, queue)
	} else {
		fmt.Fprintf(e.stdout, "Job <%d> is submitted to queue <%s>.\n", j.Seq, queue)
	}
	return 0
}

// lsfEnv applies -env as LSF does: "all" (the default) propagates the
// submitter's environment, "none" nothing, a list only the variables named.
func (e *env) lsfEnv(spec string) []string {
	if spec == "" {
		spec = "all"
	}
	var vars []string
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		switch {
		case i == 0 && item == "all":
			vars = append([]string(nil), e.vars...)
		case i == 0 && item == "none":
			return e.minimalEnv()
		case i == 0:
			vars = e.minimalEnv()
			fallthrough
		default:
			if k, ok := strings.CutPrefix(item, "~"); ok {
				vars = unsetEnv(vars, k)
			} else if k, v, ok := strings.Cut(item, "="); ok {
				vars = setEnv(vars, k, v)
			} else if item != "" {
				vars = setEnv(vars, item, e.get(item))
			}
		}
	}
	return vars
}

func (e *env) lsfJob(seq int, o lsfOpts, name, queue, cwd string, argv []string, indices []int) (*job, error) {
	j := &job{Name: name, Queue: queue, ID: strconv.Itoa(seq), Array: len(indices) > 1 || indices[0] != 0, Hold: o.hold}
	for _, idx := range indices {
		vars := e.lsfEnv(o.env)
		for _, kv := range [][2]string{{"LSB_JOBID", j.ID}, {"LSB_JOBINDEX", strconv.Itoa(idx)}, {"LSB_JOBNAME", name},
			{"LSB_QUEUE", queue}, {"LS_SUBCWD", cwd}, {"LSB_HOSTS", hostname()}, {"LSB_MCPU_HOSTS", hostname() + " 1"},
			{"LSB_DJOB_NUMPROC", "1"}} {
			vars = setEnv(vars, kv[0], kv[1])
		}
		path := func(p string) string {
			p = strings.ReplaceAll(strings.ReplaceAll(p, "%J", j.ID), "%I", strconv.Itoa(idx))
			if p != "" && !filepath.IsAbs(p) {
				p = filepath.Join(cwd, p)
			}
			return p
		}
		t := &task{Index: idx, Argv: argv, Env: vars, Dir: cwd, Out: path(o.out), Err: path(o.err)}
		if t.Out == "" {
			// LSF would mail the output; keep it where a test can look.
			t.Out = filepath.Join(e.st.dir, "spool", fmt.Sprintf("%d.%d.out", seq, idx))
			if err := os.MkdirAll(filepath.Dir(t.Out), 0o700); err != nil {
				return nil, err
			}
		}
		if t.Err == "" {
			t.Err = t.Out
		}
		j.Tasks = append(j.Tasks, t)
	}
	return j, nil
}

// lsfStat is an element's LSF state word.
func lsfStat(t *task) string {
	switch t.State {
	case taskRunning:
		return "RUN"
	case taskDone:
		if t.Cancelled || t.Exit != 0 {
			return "EXIT"
		}
		return "DONE"
	}
	return "PEND"
}

// lsfField is one bjobs -o field of element t of j.
func lsfField(j *job, t *task, field string) (string, bool) {
	name := j.Name
	if j.Array {
		name = fmt.Sprintf("%s[%d]", lsfArrayRe.ReplaceAllString(j.Name, "$1"), t.Index)
	}
	exec := "-"
	if !t.Started.IsZero() {
		exec = hostname()
	}
	switch field {
	case "jobid", "id":
		return j.ID, true
	case "stat":
		return lsfStat(t), true
	case "user":
		return j.User, true
	case "queue":
		return j.Queue, true
	case "job_name", "name":
		return name, true
	case "jobindex":
		return strconv.Itoa(t.Index), true
	case "from_host":
		return hostname(), true
	case "exec_host":
		return exec, true
	case "submit_time":
		return j.Submitted.Format("Jan _2 15:04"), true
	case "exit_code":
		if t.State != taskDone {
			return "-", true
		}
		return strconv.Itoa(t.Exit), true
	case "pend_reason":
		switch {
		case t.State != taskQueued:
			return "-", true
		case j.Hold:
			return "Not enough job slot(s)", true
		}
		return "New job is waiting for scheduling", true
	}
	return "", false
}

// lsfFormat reads -o "jobid stat delimiter=','" into fields and a
// delimiter; widths ("jobid:7") are accepted and ignored.
func lsfFormat(spec string) (fields []string, delim string, err error) {
	delim = " "
	words, err := shellWords(spec)
	if err != nil {
		return nil, "", err
	}
	for _, w := range words {
		if d, ok := strings.CutPrefix(w, "delimiter="); ok {
			delim = d
			continue
		}
		f, _, _ := strings.Cut(w, ":")
		fields = append(fields, strings.ToLower(f))
	}
	return fields, delim, nil
}

var lsfIDRe = regexp.MustCompile(`^(\d+)(?:\[(\d+)\])?$`)

func bjobs(e *env, args []string) int {
	var header, all = true, false
	var format string
	var ids []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-noheader":
			header = false
		case a == "-a":
			all = true
		case a == "-o" && i+1 < len(args):
			i++
			format = args[i]
		case (a == "-u" || a == "-q" || a == "-J") && i+1 < len(args):
			i++
		case a == "-w" || a == "-W" || a == "-l":
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(e.stderr, "bjobs: illegal option -- %s\n", strings.TrimPrefix(a, "-"))
			return 255
		default:
			ids = append(ids, a)
		}
	}
	var fields []string
	delim := " "
	if format != "" {
		var err error
		if fields, delim, err = lsfFormat(format); err != nil {
			fmt.Fprintf(e.stderr, "bjobs: -o %q: %v\n", format, err)
			return 255
		}
		for _, f := range fields {
			if _, ok := lsfField(&job{Tasks: []*task{{}}}, &task{}, f); !ok {
				fmt.Fprintf(e.stderr, "%s: Illegal field.\n", f)
				return 255
			}
		}
	}
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "bjobs: %v\n", err)
		return 255
	}
	now := time.Now()
	type row struct {
		j *job
		t *task
	}
	var rows []row
	status := 0
	if len(ids) == 0 {
		for _, j := range jobs {
			for _, t := range j.Tasks {
				if t.State != taskDone || all && j.visible(now) {
					rows = append(rows, row{j, t})
				}
			}
		}
		if len(rows) == 0 {
			fmt.Fprintln(e.stderr, "No unfinished job found")
			return 255
		}
	}
	for _, id := range ids {
		m := lsfIDRe.FindStringSubmatch(id)
		var j *job
		if m != nil {
			j = findJob(jobs, m[1])
		}
		n := len(rows)
		if j != nil && j.visible(now) {
			for _, t := range j.Tasks {
				if m[2] == "" || strconv.Itoa(t.Index) == m[2] && j.Array {
					rows = append(rows, row{j, t})
				}
			}
		}
		if len(rows) == n {
			fmt.Fprintf(e.stderr, "Job <%s> is not found\n", id)
			status = 255
		}
	}
	if len(rows) == 0 {
		return status
	}
	if fields == nil {
		if header {
			fmt.Fprintln(e.stdout, "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME")
		}
		for _, r := range rows {
			v := func(f string) string { s, _ := lsfField(r.j, r.t, f); return s }
			exec := v("exec_host")
			if exec == "-" {
				exec = ""
			}
			fmt.Fprintf(e.stdout, "%-7s %-7s %-5s %-10s %-11s %-11s %-10s %s\n", r.j.ID, r.j.User, v("stat"),
				r.j.Queue, hostname(), exec, v("job_name"), v("submit_time"))
		}
		return status
	}
	if header {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = strings.ToUpper(f)
		}
		fmt.Fprintln(e.stdout, strings.Join(names, delim))
	}
	for _, r := range rows {
		vals := make([]string, len(fields))
		for i, f := range fields {
			vals[i], _ = lsfField(r.j, r.t, f)
		}
		fmt.Fprintln(e.stdout, strings.Join(vals, delim))
	}
	return status
}

func bkill(e *env, args []string) int {
	sig, ids, bad := signalArgs(args, 0)
	if bad != "" {
		fmt.Fprintf(e.stderr, "%s: Illegal signal value\n", bad)
		return 255
	}
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "bkill: %v\n", err)
		return 255
	}
	status := 0
	for _, id := range ids {
		m := lsfIDRe.FindStringSubmatch(id)
		var j *job
		if m != nil {
			j = findJob(jobs, m[1])
		}
		if j == nil || !j.visible(time.Now()) {
			fmt.Fprintf(e.stderr, "Job <%s>: No matching job found\n", id)
			status = 255
			continue
		}
		only := func(t *task) bool { return m[2] == "" || strconv.Itoa(t.Index) == m[2] }
		if sig != 0 {
			e.signalTasks(j, sig, only)
			fmt.Fprintf(e.stdout, "Job <%s> is being signaled\n", id)
			continue
		}
		ok, err := e.cancel(j, only)
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "bkill: %v\n", err)
			status = 255
		case !ok:
			fmt.Fprintf(e.stderr, "Job <%s>: Job has already finished\n", id)
			status = 255
		default:
			fmt.Fprintf(e.stdout, "Job <%s> is being terminated\n", id)
		}
	}
	return status
}
