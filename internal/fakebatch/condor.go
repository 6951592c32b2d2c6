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

// condorProc is one proc to queue: the submit description's values as
// they stood at its queue statement, macros not yet expanded.
type condorProc struct {
	attrs map[string]string
}

var condorMacroRe = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// condorParse reads a submit description: `key = value` lines (keys are
// case-insensitive), # comments, trailing-backslash continuations, and
// `queue [N]` statements, each of which queues N procs with the values
// set so far. It returns the procs per queue statement.
func condorParse(text string) ([][]condorProc, error) {
	attrs := map[string]string{}
	var groups [][]condorProc
	lines := strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n")
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.ToLower(line), "queue ") {
			k = strings.ToLower(strings.TrimSpace(k))
			if strings.HasPrefix(k, "+") || strings.HasPrefix(k, "my.") {
				continue // job ClassAd attributes: nothing for the fake to do
			}
			attrs[k] = strings.TrimSpace(v)
			continue
		}
		words := strings.Fields(line)
		if strings.ToLower(words[0]) != "queue" {
			return nil, fmt.Errorf("Failed to parse command file (line %d).", n+1) //nolint:staticcheck // HTCondor's own text
		}
		count := 1
		if len(words) == 2 {
			c, err := strconv.Atoi(words[1])
			if err != nil || c < 0 {
				return nil, fmt.Errorf("Failed to parse command file (line %d).", n+1) //nolint:staticcheck // HTCondor's own text
			}
			count = c
		} else if len(words) > 2 {
			return nil, fmt.Errorf("fakebatch: queue %s ... is not faked (line %d)", strings.Join(words[1:], " "), n+1)
		}
		var procs []condorProc
		for range count {
			cp := map[string]string{}
			for k, v := range attrs {
				cp[k] = v
			}
			procs = append(procs, condorProc{cp})
		}
		groups = append(groups, procs)
	}
	return groups, nil
}

// condorExpand substitutes $(Cluster), $(Process) and the description's
// own macros in v.
func condorExpand(v string, attrs map[string]string, cluster, proc int) string {
	for range 10 { // macros may refer to macros
		next := condorMacroRe.ReplaceAllStringFunc(v, func(m string) string {
			name := strings.ToLower(m[2 : len(m)-1])
			switch name {
			case "cluster", "clusterid":
				return strconv.Itoa(cluster)
			case "process", "procid":
				return strconv.Itoa(proc)
			}
			return attrs[name]
		})
		if next == v {
			break
		}
		v = next
	}
	return v
}

// condorArgs splits arguments or environment: the new syntax is a
// double-quoted string of words with single-quote grouping (two single
// quotes stand for one inside); the old syntax splits on sep (blanks for arguments, ';' for
// environment).
func condorArgs(v string, oldSep string) []string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = strings.ReplaceAll(v[1:len(v)-1], `""`, `"`)
		var words []string
		var cur strings.Builder
		in, quoted := false, false
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\'' && quoted && i+1 < len(v) && v[i+1] == '\'':
				cur.WriteByte('\'')
				i++
			case c == '\'':
				quoted, in = !quoted, true
			case !quoted && (c == ' ' || c == '\t'):
				if in {
					words = append(words, cur.String())
					cur.Reset()
					in = false
				}
			default:
				cur.WriteByte(c)
				in = true
			}
		}
		if in {
			words = append(words, cur.String())
		}
		return words
	}
	if oldSep == " " {
		return strings.Fields(v)
	}
	var out []string
	for _, w := range strings.Split(v, oldSep) {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}

func condorTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "t", "yes", "y", "1":
		return true
	}
	return false
}

func condorSubmit(e *env, args []string) int {
	fail := func(msg string) int {
		fmt.Fprintln(e.stderr, msg)
		return 1
	}
	terse := false
	var file string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-terse":
			terse = true
		case a == "-batch-name" && i+1 < len(args):
			i++
		case strings.HasPrefix(a, "-") && a != "-":
			return fail("ERROR: Unknown command line option " + a)
		default:
			file = a
		}
	}
	var data []byte
	var err error
	if file == "" || file == "-" {
		data, err = io.ReadAll(e.stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fail("ERROR: Can't open \"" + file + "\"  with flags 00 (No such file or directory)")
	}
	if msg, ok := e.reject("ERROR: Can't find address of local schedd"); ok {
		return fail(msg)
	}
	groups, err := condorParse(string(data))
	if err != nil {
		return fail("ERROR: " + err.Error())
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fail("ERROR: " + err.Error())
	}
	if len(groups) == 0 {
		return fail("ERROR: no 'queue' statement in the submit description")
	}
	total := 0
	for _, g := range groups {
		total += len(g)
		for _, p := range g {
			if u := strings.ToLower(p.attrs["universe"]); u != "" && u != "vanilla" && u != "local" && u != "scheduler" {
				return fail("ERROR: I don't know about the '" + p.attrs["universe"] + "' universe.")
			}
			exe := p.attrs["executable"]
			if exe == "" {
				return fail("ERROR: No 'executable' parameter was provided")
			}
			if !filepath.IsAbs(exe) {
				exe = filepath.Join(cwd, exe)
			}
			if _, err := os.Stat(exe); err != nil && condorTrue(strings.ToLower(orDefault(p.attrs["transfer_executable"], "true"))) {
				return fail("ERROR: Executable file " + exe + " does not exist")
			}
		}
	}
	if total == 0 {
		return fail("ERROR: every 'queue' statement queues 0 jobs")
	}
	j, err := e.submit(func(cluster int) (*job, error) {
		j := &job{ID: strconv.Itoa(cluster), Name: "", Queue: "", Array: true}
		proc := 0
		for _, g := range groups {
			for _, p := range g {
				j.Tasks = append(j.Tasks, e.condorTask(p.attrs, cwd, cluster, proc))
				proc++
			}
		}
		if len(j.Tasks) > 0 {
			j.Name = filepath.Base(j.Tasks[0].Argv[0])
		}
		return j, nil
	})
	if err != nil {
		return fail("ERROR: " + err.Error())
	}
	if terse {
		if total > 0 {
			fmt.Fprintf(e.stdout, "%d.0 - %d.%d\n", j.Seq, j.Seq, total-1)
		}
		return 0
	}
	fmt.Fprintf(e.stdout, "Submitting job(s)%s\n", strings.Repeat(".", total))
	for _, g := range groups {
		fmt.Fprintf(e.stdout, "%d job(s) submitted to cluster %d.\n", len(g), j.Seq)
	}
	return 0
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// condorTask is one proc: the executable with its arguments, run in
// initialdir with the environment getenv and environment describe.
func (e *env) condorTask(attrs map[string]string, cwd string, cluster, proc int) *task {
	x := func(k string) string { return condorExpand(attrs[k], attrs, cluster, proc) }
	dir := orDefault(x("initialdir"), orDefault(x("iwd"), cwd))
	abs := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return p
	}
	argv := append([]string{abs(x("executable"))}, condorArgs(x("arguments"), " ")...)
	vars := e.minimalEnv()
	if g := attrs["getenv"]; condorTrue(g) {
		vars = append([]string(nil), e.vars...)
	} else if g != "" && !strings.EqualFold(g, "false") {
		for _, k := range strings.Split(g, ",") {
			if k = strings.TrimSpace(k); k != "" {
				vars = setEnv(vars, k, e.get(k))
			}
		}
	}
	for _, kv := range condorArgs(x("environment"), ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars = setEnv(vars, k, v)
		}
	}
	scratch := filepath.Join(e.st.dir, "scratch", fmt.Sprintf("%d.%d", cluster, proc))
	os.MkdirAll(scratch, 0o700) //nolint:errcheck // the job notices if it is missing
	vars = setEnv(vars, "_CONDOR_SCRATCH_DIR", scratch)
	vars = setEnv(vars, "_CONDOR_SLOT", "slot1")
	vars = setEnv(vars, "BATCH_SYSTEM", "HTCondor")
	return &task{Index: proc, Argv: argv, Env: vars, Dir: dir, Out: abs(x("output")), Err: abs(x("error")), Log: abs(x("log"))}
}

// condorStatus is a proc's JobStatus: 1 Idle, 2 Running, 3 Removed
// (while a removed proc still runs), 5 Held; 0 when it has left the
// queue (completed or removed).
func condorStatus(t *task) int {
	switch {
	case t.State == taskDone:
		return 0
	case t.State == taskHeld:
		return 5
	case t.Cancelled:
		return 3
	case t.State == taskRunning:
		return 2
	}
	return 1
}

var condorIDRe = regexp.MustCompile(`^(\d+)(?:\.(\d+))?$`)

// condorSelect returns the procs that ids name (all of every job when
// none), in the queue.
func condorSelect(jobs []*job, ids []string) (out [][2]any, unknown []string) {
	for _, id := range ids {
		m := condorIDRe.FindStringSubmatch(id)
		j := findJob(jobs, m[1])
		found := false
		if j != nil {
			for _, t := range j.Tasks {
				if (m[2] == "" || strconv.Itoa(t.Index) == m[2]) && condorStatus(t) != 0 {
					out = append(out, [2]any{j, t})
					found = true
				}
			}
		}
		if !found {
			unknown = append(unknown, id)
		}
	}
	if len(ids) == 0 {
		for _, j := range jobs {
			for _, t := range j.Tasks {
				if condorStatus(t) != 0 {
					out = append(out, [2]any{j, t})
				}
			}
		}
	}
	return out, unknown
}

// condorAttr is a ClassAd attribute of a proc, as -af prints it (raw:
// strings quoted, as -af:r does).
func condorAttr(j *job, t *task, name string, raw bool) string {
	str := func(s string) string {
		if raw {
			return strconv.Quote(s)
		}
		return s
	}
	switch strings.ToLower(name) {
	case "jobstatus":
		return strconv.Itoa(condorStatus(t))
	case "clusterid":
		return j.ID
	case "procid":
		return strconv.Itoa(t.Index)
	case "owner":
		return str(j.User)
	case "cmd":
		return str(t.Argv[0])
	case "args", "arguments":
		return str(strings.Join(t.Argv[1:], " "))
	case "iwd":
		return str(t.Dir)
	case "out":
		return str(t.Out)
	case "err":
		return str(t.Err)
	case "holdreason":
		if t.HoldReason != "" {
			return str(t.HoldReason)
		}
	case "qdate":
		return strconv.FormatInt(j.Submitted.Unix(), 10)
	}
	return "undefined"
}

func condorQ(e *env, args []string) int {
	var ids, attrs []string
	af, jobPrefix, raw := false, false, false
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-af") || strings.HasPrefix(a, "-autoformat"):
			af = true
			if _, mods, ok := strings.Cut(a, ":"); ok {
				jobPrefix, raw = strings.Contains(mods, "j"), strings.Contains(mods, "r")
			}
		case condorIDRe.MatchString(a):
			ids = append(ids, a)
		case a == "-nobatch" || a == "-allusers" || a == "-global":
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(e.stderr, "Error: unrecognized argument %s\n", a)
			return 1
		case af:
			attrs = append(attrs, a)
		default:
			fmt.Fprintf(e.stderr, "Error: unrecognized argument %s\n", a)
			return 1
		}
	}
	if af && len(attrs) == 0 {
		fmt.Fprintln(e.stderr, "Error: -af requires at least one attribute")
		return 1
	}
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "condor_q: %v\n", err)
		return 1
	}
	procs, _ := condorSelect(jobs, ids) // procs not in the queue are simply not listed
	if af {
		for _, p := range procs {
			j, t := p[0].(*job), p[1].(*task)
			var vals []string
			if jobPrefix {
				vals = append(vals, fmt.Sprintf("%s.%d", j.ID, t.Index))
			}
			for _, a := range attrs {
				vals = append(vals, condorAttr(j, t, a, raw))
			}
			fmt.Fprintln(e.stdout, strings.Join(vals, " "))
		}
		return 0
	}
	fmt.Fprintln(e.stdout, " ID         OWNER            SUBMITTED     RUN_TIME ST PRI SIZE CMD")
	letters := map[int]string{1: "I", 2: "R", 3: "X", 5: "H"}
	for _, p := range procs {
		j, t := p[0].(*job), p[1].(*task)
		fmt.Fprintf(e.stdout, "%-10s %-16s %s   0+00:00:00 %-2s 0    0.0 %s\n", fmt.Sprintf("%s.%d", j.ID, t.Index),
			j.User, j.Submitted.Format("1/2 15:04"), letters[condorStatus(t)], strings.Join(t.Argv, " "))
	}
	return 0
}

func condorRm(e *env, args []string) int {
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "condor_rm: %v\n", err)
		return 1
	}
	status := 0
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue // -forcex: removal is immediate here anyway
		}
		m := condorIDRe.FindStringSubmatch(a)
		var j *job
		if m != nil {
			j = findJob(jobs, m[1])
		}
		only := func(t *task) bool { return m[2] == "" || strconv.Itoa(t.Index) == m[2] }
		ok := false
		if j != nil {
			if ok, err = e.cancel(j, only); err != nil {
				fmt.Fprintf(e.stderr, "condor_rm: %v\n", err)
				return 1
			}
		}
		switch {
		case ok && m[2] == "":
			fmt.Fprintf(e.stdout, "All jobs in cluster %s have been marked for removal\n", m[1])
		case ok:
			fmt.Fprintf(e.stdout, "Job %s marked for removal\n", a)
		case m != nil && m[2] == "":
			fmt.Fprintf(e.stderr, "Couldn't find/remove all jobs in cluster %s\n", m[1])
			status = 1
		default:
			fmt.Fprintf(e.stderr, "Job %s not found\n", a)
			status = 1
		}
	}
	return status
}

// logEvent appends an event to a proc's user log (log = ...), in
// HTCondor's format: code, (cluster.proc.subproc), time, text, "...".
func logEvent(j *job, t *task, code int, text string) {
	if t.Log == "" {
		return
	}
	f, err := os.OpenFile(t.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return // HTCondor too carries on without its user log
	}
	defer f.Close()
	fmt.Fprintf(f, "%03d (%03d.%03d.000) %s %s\n...\n", code, j.Seq, t.Index, time.Now().Format("2006-01-02 15:04:05"), text)
}
