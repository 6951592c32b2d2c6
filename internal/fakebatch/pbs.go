//go:build unix

package fakebatch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pbsOpts are the qsub options the fake understands, from #PBS lines
// and then the command line (which wins).
type pbsOpts struct {
	name, queue, out, err, join, array, shell string
	exportAll, hold                           bool
	vars                                      []string
}

// pbsFlags parses qsub options getopt-style into o and returns the
// operands. The array option is -J on PBS Pro and -t on Torque; the other
// one is an invalid option, as on the real systems.
func (e *env) pbsFlags(o *pbsOpts, args []string) ([]string, error) {
	withArg := "NqoejlAWmMSvacrkuCPp"
	if e.system == "pbspro" {
		withArg += "J"
	} else {
		withArg += "t"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args[i+1:], nil
		}
		if len(a) < 2 || a[0] != '-' {
			return args[i:], nil
		}
		flag, val := a[1], a[2:]
		switch {
		case flag == 'V':
			o.exportAll = true
			continue
		case flag == 'h':
			o.hold = true
			continue
		case flag == 'z' || flag == 'f' || flag == 'X':
			continue
		case !strings.ContainsRune(withArg, rune(flag)):
			return nil, fmt.Errorf("invalid option -- '%c'", flag)
		}
		if val == "" {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option requires an argument -- '%c'", flag)
			}
			i++
			val = args[i]
		}
		switch flag {
		case 'N':
			o.name = val
		case 'q':
			o.queue = val
		case 'o':
			o.out = val
		case 'e':
			o.err = val
		case 'j':
			if val != "oe" && val != "eo" && val != "n" {
				return nil, fmt.Errorf("illegal -j value")
			}
			o.join = val
		case 'J', 't':
			if _, err := indexRange(val); err != nil {
				return nil, fmt.Errorf("illegal -%c value", flag)
			}
			o.array = val
		case 'S':
			o.shell = val
		case 'v':
			o.vars = append(o.vars, strings.Split(val, ",")...)
		}
	}
	return nil, nil
}

func (e *env) pbsServer() string {
	if s := e.get("FAKEBATCH_SERVER"); s != "" {
		return s
	}
	return "pbsserver"
}

func (e *env) pbsDefaultQueue() string {
	if e.system == "pbspro" {
		return "workq"
	}
	return "batch"
}

func qsub(e *env, args []string) int {
	usage := func(err error) int {
		fmt.Fprintf(e.stderr, "qsub: %v\nusage: qsub [-J|-t range] [-N name] [-q queue] [-o path] [-e path] [-j oe] [-V] [-v list] [-h] [script]\n", err)
		return 2
	}
	var o pbsOpts
	rest, err := e.pbsFlags(&o, args)
	if err != nil {
		return usage(err)
	}
	var text []byte
	name := "STDIN"
	switch len(rest) {
	case 0:
		text, err = io.ReadAll(e.stdin)
	case 1:
		text, err = os.ReadFile(rest[0])
		name = filepath.Base(rest[0])
	default:
		return usage(fmt.Errorf("too many operands: %q", rest))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "qsub: script file:: %v\n", err)
		return 2
	}
	dirs, err := directives(string(text), "#PBS")
	if err != nil {
		fmt.Fprintf(e.stderr, "qsub: %v\n", err)
		return 2
	}
	o = pbsOpts{}
	for _, d := range dirs {
		if extra, err := e.pbsFlags(&o, d); err != nil || len(extra) > 0 {
			if err == nil {
				err = fmt.Errorf("directive error: %q", d)
			}
			return usage(err)
		}
	}
	e.pbsFlags(&o, args) //nolint:errcheck // parsed once already
	if o.name != "" {
		name = o.name
	}
	if o.queue == "" {
		o.queue = e.pbsDefaultQueue()
	}
	if msg, ok := e.reject(e.pbsUnknownQueue()); ok {
		fmt.Fprintln(e.stderr, msg)
		return 1
	}
	if !e.queueKnown(o.queue) {
		fmt.Fprintln(e.stderr, e.pbsUnknownQueue())
		return 1
	}
	workdir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(e.stderr, "qsub: %v\n", err)
		return 2
	}
	j, err := e.submit(func(seq int) (*job, error) { return e.pbsJob(seq, o, name, workdir, string(text)) })
	if err != nil {
		fmt.Fprintf(e.stderr, "qsub: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, j.ID)
	return 0
}

func (e *env) pbsUnknownQueue() string {
	if e.system == "pbspro" {
		return "qsub: Unknown queue"
	}
	return "qsub: submit error (Unknown queue MSG=requested queue not found)"
}

// pbsJob builds the job record: ids 1234.server / 1234[].server, one
// task per array index, each with PBS's job environment.
func (e *env) pbsJob(seq int, o pbsOpts, name, workdir, text string) (*job, error) {
	server := e.pbsServer()
	// -h is a user hold, released by nobody here.
	j := &job{Name: name, Queue: o.queue, ID: fmt.Sprintf("%d.%s", seq, server), Hold: o.hold}
	indices := []int{0}
	if o.array != "" {
		j.Array = true
		j.ID = fmt.Sprintf("%d[].%s", seq, server)
		j.ArraySpec = o.array
		indices, _ = indexRange(o.array)
	}
	argv, err := e.scriptCommand(seq, text)
	if err != nil {
		return nil, err
	}
	if o.shell != "" {
		argv = []string{o.shell, argv[len(argv)-1]}
	}
	nodefile := filepath.Join(e.st.dir, "scripts", strconv.Itoa(seq)+".nodes")
	if err := os.WriteFile(nodefile, []byte(hostname()+"\n"), 0o600); err != nil {
		return nil, err
	}
	home := e.get("HOME")
	if home == "" {
		home = "/"
	}
	for _, idx := range indices {
		id := j.ID
		suffix := ""
		if j.Array {
			id = fmt.Sprintf("%d[%d].%s", seq, idx, server)
			suffix = "." + strconv.Itoa(idx)
			if e.system == "torque" {
				suffix = "-" + strconv.Itoa(idx)
			}
		}
		vars := e.minimalEnv()
		if o.exportAll {
			vars = append([]string(nil), e.vars...)
		}
		for _, v := range o.vars {
			if k, val, ok := strings.Cut(v, "="); ok {
				vars = setEnv(vars, k, val)
			} else if val := e.get(v); val != "" {
				vars = setEnv(vars, v, val)
			}
		}
		set := map[string]string{"PBS_O_HOME": e.get("HOME"), "PBS_O_PATH": e.get("PATH"), "PBS_O_LOGNAME": e.user(),
			"PBS_O_SHELL": e.get("SHELL"), "PBS_O_HOST": hostname(), "PBS_O_WORKDIR": workdir, "PBS_O_QUEUE": o.queue,
			"PBS_JOBID": id, "PBS_JOBNAME": name, "PBS_QUEUE": o.queue, "PBS_ENVIRONMENT": "PBS_BATCH", "PBS_NODEFILE": nodefile}
		if e.system == "pbspro" {
			set["NCPUS"] = "1"
			if j.Array {
				set["PBS_ARRAY_INDEX"], set["PBS_ARRAY_ID"] = strconv.Itoa(idx), j.ID
			}
		} else {
			set["PBS_NP"], set["PBS_NUM_NODES"], set["PBS_NUM_PPN"] = "1", "1", "1"
			if j.Array {
				set["PBS_ARRAYID"] = strconv.Itoa(idx)
			}
		}
		keys := make([]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vars = setEnv(vars, k, set[k])
		}
		path := func(p, def string) string {
			if p == "" {
				p = fmt.Sprintf("%s.%s%d%s", name, def, seq, suffix)
			}
			if i := strings.IndexByte(p, ':'); i >= 0 && !strings.Contains(p[:i], "/") {
				p = p[i+1:] // host:path
			}
			p = strings.ReplaceAll(p, "^array_index^", strconv.Itoa(idx))
			if !filepath.IsAbs(p) {
				p = filepath.Join(workdir, p)
			}
			return p
		}
		t := &task{Index: idx, Argv: argv, Env: vars, Dir: home, Out: path(o.out, "o"), Err: path(o.err, "e")}
		switch o.join {
		case "oe":
			t.Err = t.Out
		case "eo":
			t.Out = t.Err
		}
		j.Tasks = append(j.Tasks, t)
	}
	return j, nil
}

var pbsIDRe = regexp.MustCompile(`^(\d+)(\[(\d*)\])?(?:\..*)?$`)

// pbsFind resolves a job id as qstat/qdel accept it: 1234 or 1234.server
// for a job, 1234[] or 1234[].server for an array job (its brackets are
// part of its id: "1234" alone is unknown, as on PBS), a sub-job
// 1234[3].server (sub >= 0 then).
func pbsFind(jobs []*job, id string) (j *job, sub int) {
	m := pbsIDRe.FindStringSubmatch(id)
	if m == nil {
		return nil, -1
	}
	j = findJob(jobs, m[1])
	if j == nil || j.Array != (m[2] != "") {
		return nil, -1
	}
	if m[3] == "" {
		return j, -1
	}
	sub, _ = strconv.Atoi(m[3])
	for _, t := range j.Tasks {
		if t.Index == sub {
			return j, sub
		}
	}
	return nil, -1
}

// pbsTaskState is one (sub-)job's state letter.
func (e *env) pbsTaskState(j *job, t *task) string {
	switch t.State {
	case taskRunning:
		return "R"
	case taskDone:
		if e.system == "torque" {
			return "C"
		}
		if j.Array {
			return "X"
		}
		return "F"
	}
	return "Q"
}

// pbsJobState is a whole job's state letter; PBS Pro shows a started
// array as B (begun).
func (e *env) pbsJobState(j *job) string {
	if !j.Array {
		return e.pbsTaskState(j, j.Tasks[0])
	}
	n := j.count()
	switch {
	case n[taskDone] == len(j.Tasks):
		if e.system == "torque" {
			return "C"
		}
		return "F"
	case n[taskQueued] == len(j.Tasks):
		return "Q"
	case e.system == "pbspro":
		return "B"
	}
	return "R"
}

// pbsRow is one line of qstat's answer.
type pbsRow struct {
	id, state string
	j         *job
	t         *task // nil for a whole job
}

func qstat(e *env, args []string) int {
	var history, full, jsonOut, subjobs bool
	var ids []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--version":
			// Both print their version and exit; this is how a client
			// tells them apart (launchers.md is silent; the answers are
			// PBS Pro's "pbs_version = 2022.1.1" and Torque's
			// "Version: 6.1.3" as their qstat(1B)/qstat(1) document).
			if e.system == "pbspro" {
				fmt.Fprintln(e.stdout, "pbs_version = 2022.1.1")
			} else {
				fmt.Fprintln(e.stdout, "Version: 6.1.3")
				fmt.Fprintln(e.stdout, "Commit: fakebatch")
			}
			return 0
		case a == "-x" && e.system == "pbspro":
			history = true
		case a == "-f":
			full = true
		case a == "-t":
			subjobs = true
		case a == "-F" && e.system == "pbspro" && i+1 < len(args):
			i++
			if args[i] != "json" {
				fmt.Fprintf(e.stderr, "qstat: fakebatch knows only -F json, not %q\n", args[i])
				return 2
			}
			jsonOut = true
		case a == "-u" && i+1 < len(args):
			i++ // every job is the user's
		case a == "-w" || a == "-a":
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(e.stderr, "qstat: invalid option -- '%s'\n", strings.TrimPrefix(a, "-"))
			return 2
		default:
			ids = append(ids, a)
		}
	}
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "qstat: %v\n", err)
		return 1
	}
	now := time.Now()
	shown := func(j *job) bool {
		if e.system == "pbspro" {
			done, _ := j.finished()
			return history || !done
		}
		return j.visible(now)
	}
	status := 0
	var rows []pbsRow
	addJob := func(j *job) {
		rows = append(rows, pbsRow{id: j.ID, state: e.pbsJobState(j), j: j})
		if j.Array && subjobs {
			for _, t := range j.Tasks {
				rows = append(rows, pbsRow{id: e.subID(j, t.Index), state: e.pbsTaskState(j, t), j: j, t: t})
			}
		}
	}
	if len(ids) == 0 {
		for _, j := range jobs {
			if shown(j) {
				addJob(j)
			}
		}
	}
	for _, id := range ids {
		j, sub := pbsFind(jobs, id)
		switch {
		case j == nil || e.system == "torque" && !shown(j):
			fmt.Fprintf(e.stderr, "qstat: Unknown Job Id %s\n", id)
			status = 153
		case !shown(j):
			fmt.Fprintf(e.stderr, "qstat: %s Job has finished, use -x or -H to obtain historical job information\n", id)
			status = 35
		case sub >= 0:
			for _, t := range j.Tasks {
				if t.Index == sub {
					rows = append(rows, pbsRow{id: e.subID(j, sub), state: e.pbsTaskState(j, t), j: j, t: t})
				}
			}
		default:
			addJob(j)
		}
	}
	switch {
	case full && jsonOut:
		e.pbsJSON(rows)
	case full:
		for _, r := range rows {
			fmt.Fprintf(e.stdout, "Job Id: %s\n", r.id)
			for _, kv := range e.pbsAttrs(r) {
				fmt.Fprintf(e.stdout, "    %s = %v\n", kv.k, kv.v)
			}
			fmt.Fprintln(e.stdout)
		}
	case len(rows) > 0:
		fmt.Fprintln(e.stdout, "Job id            Name             User              Time Use S Queue")
		fmt.Fprintln(e.stdout, "----------------  ---------------- ----------------  -------- - -----")
		for _, r := range rows {
			use := "00:00:00"
			if r.state == "Q" {
				use = "0"
			}
			fmt.Fprintf(e.stdout, "%-16.16s  %-16.16s %-16.16s  %8s %s %s\n", r.id, r.j.Name, r.j.User, use, r.state, r.j.Queue)
		}
	}
	return status
}

func (e *env) subID(j *job, idx int) string {
	return fmt.Sprintf("%d[%d].%s", j.Seq, idx, e.pbsServer())
}

type attr struct {
	k string
	v any
}

// pbsAttrs are the attributes qstat -f shows for a row, in PBS's
// spelling (Exit_status on PBS Pro, exit_status on Torque).
func (e *env) pbsAttrs(r pbsRow) []attr {
	attrs := []attr{{"Job_Name", r.j.Name}, {"Job_Owner", r.j.User + "@" + hostname()},
		{"job_state", r.state}, {"queue", r.j.Queue}}
	tasks := r.j.Tasks
	if r.t != nil {
		tasks = []*task{r.t}
	}
	if r.j.Array && r.t == nil {
		attrs = append(attrs, attr{"array", "True"}, attr{"array_indices_submitted", r.j.ArraySpec})
	}
	switch r.state {
	case "Q":
		if r.j.Hold {
			attrs = append(attrs, attr{"comment", "Not Running: Insufficient amount of resource: ncpus (R: 64 A: 2 T: 2)"})
		}
	case "F", "X", "C":
		exit := 0
		for _, t := range tasks {
			if t.Exit != 0 {
				exit = t.Exit
			}
			if t.Signal != 0 && e.system == "pbspro" {
				exit = 256 + t.Signal
			}
		}
		name := "Exit_status"
		if e.system == "torque" {
			name = "exit_status"
		}
		attrs = append(attrs, attr{name, exit})
	}
	return attrs
}

// pbsJSON prints PBS Pro's qstat -f -F json document.
func (e *env) pbsJSON(rows []pbsRow) {
	jobs := map[string]map[string]any{}
	for _, r := range rows {
		m := map[string]any{}
		for _, kv := range e.pbsAttrs(r) {
			m[kv.k] = kv.v
		}
		jobs[r.id] = m
	}
	doc := map[string]any{"timestamp": time.Now().Unix(), "pbs_version": "fakebatch", "pbs_server": e.pbsServer()}
	if len(jobs) > 0 {
		doc["Jobs"] = jobs
	}
	out, _ := json.MarshalIndent(doc, "", "    ")
	fmt.Fprintf(e.stdout, "%s\n", out)
}

func qdel(e *env, args []string) int {
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "qdel: %v\n", err)
		return 1
	}
	status := 0
	for i := 0; i < len(args); i++ {
		id := args[i]
		if id == "-W" {
			i++
			continue
		}
		if strings.HasPrefix(id, "-") {
			continue // -x, -p, -Wforce: nothing to purge in the fake
		}
		j, sub := pbsFind(jobs, id)
		if j == nil || (e.system == "torque" && !j.visible(time.Now())) {
			fmt.Fprintf(e.stderr, "qdel: Unknown Job Id %s\n", id)
			status = 153
			continue
		}
		only := func(t *task) bool { return sub < 0 || t.Index == sub }
		if ok, err := e.cancel(j, only); err != nil {
			fmt.Fprintf(e.stderr, "qdel: %v\n", err)
			status = 1
		} else if !ok {
			if e.system == "pbspro" {
				fmt.Fprintf(e.stderr, "qdel: Job has finished %s\n", id)
				status = 35
			} else {
				fmt.Fprintf(e.stderr, "qdel: Invalid state for job - COMPLETE %s\n", id)
				status = 170
			}
		}
	}
	return status
}

func qsig(e *env, args []string) int {
	sig, ids, bad := signalArgs(args, syscall.SIGTERM)
	if bad != "" {
		fmt.Fprintf(e.stderr, "qsig: Unknown signal %s\n", bad)
		return 2
	}
	jobs, err := e.st.all()
	if err != nil {
		fmt.Fprintf(e.stderr, "qsig: %v\n", err)
		return 1
	}
	status := 0
	for _, id := range ids {
		j, sub := pbsFind(jobs, id)
		if j == nil {
			fmt.Fprintf(e.stderr, "qsig: Unknown Job Id %s\n", id)
			status = 153
			continue
		}
		if e.pbsJobState(j) == "Q" || func() bool { done, _ := j.finished(); return done }() {
			fmt.Fprintf(e.stderr, "qsig: Request invalid for state of job %s\n", id)
			status = 168
			continue
		}
		e.signalTasks(j, sig, func(t *task) bool { return sub < 0 || t.Index == sub })
	}
	return status
}

// signalArgs reads the "-s SIG ids..." arguments qsig and bkill share:
// the signal (def when not given), the ids, and a signal name it could
// not read.
func signalArgs(args []string, def syscall.Signal) (sig syscall.Signal, ids []string, bad string) {
	sig = def
	for i := 0; i < len(args); i++ {
		if args[i] == "-s" && i+1 < len(args) {
			i++
			s, ok := parseSignal(args[i])
			if !ok {
				return 0, nil, args[i]
			}
			sig = s
			continue
		}
		ids = append(ids, args[i])
	}
	return sig, ids, ""
}
