package launchers

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
)

// LSF runs one engine per array element. bsub honours #BSUB lines only
// in a script read on standard input, so Submit feeds the script there.
// bjobs answers "Job <N> is not found" for a moment after submission and
// again once the job has aged out (CLEAN_PERIOD).

var lsfSubmitRe = regexp.MustCompile(`^Job <(\d+)> is submitted to (?:default )?queue <[^>]*>\.$`)

var lsfNotFound = regexp.MustCompile(`^Job <[^>]*> is not found`)

// lsfQueryFormat is bjobs' -o: "123|PEND|Not enough job slot(s)".
const lsfQueryFormat = "jobid stat pend_reason delimiter='|'"

// lsfRow splits a bjobs line into id, state and pending reason: the
// delimited format of lsfQueryFormat, or blank-separated "123 RUN".
func lsfRow(line string) (f []string, ok bool) {
	if strings.Contains(line, "|") {
		f = strings.SplitN(line, "|", 3)
	} else {
		f = strings.Fields(line)
	}
	return f, len(f) == 2 || len(f) == 3 && strings.Contains(line, "|")
}

var lsfStates = map[string]struct {
	state  JobState
	reason string
}{
	"PEND": {JobPending, ""}, "WAIT": {JobPending, "waiting (chunk job)"}, "PROV": {JobPending, "provisioning"},
	"PSUSP": {JobPending, "suspended while pending"},
	"USUSP": {JobPending, "suspended by the user"}, "SSUSP": {JobPending, "suspended by the system"},
	"RUN": {JobRunning, ""}, "UNKWN": {JobRunning, "execution host unreachable"},
	"DONE": {JobCompleted, ""}, "EXIT": {JobFailed, "non-zero exit"},
	"ZOMBI": {JobFailed, "killed while its host was unreachable"},
}

var lsfDialect = &Dialect{
	Name:               "lsf",
	Title:              "LSF",
	Directive:          "#BSUB",
	EngineTemplate:     "lsf-engines.sh.tmpl",
	ControllerTemplate: "lsf-controller.sh.tmpl",
	Array:              true,
	// Output straight to the job's file rather than spooled and mailed.
	SubmitEnv: map[string]string{"LSB_STDOUT_DIRECT": "Y"},
	Submit: func(_, script string) Command {
		return Command{Path: "bsub", Stdin: []byte(script)}
	},
	ParseSubmit: func(stdout string) (string, error) {
		return findSubmitID("bsub", stdout, lsfSubmitRe)
	},
	Query: func(ids []string) Command {
		// pend_reason holds blanks, hence the delimiter (bjobs -o takes
		// delimiter='c' since LSF 9.1.2).
		return Command{Path: "bjobs", Args: append([]string{"-noheader", "-o", lsfQueryFormat}, ids...)}
	},
	ParseQuery: parseLSFQuery,
	Cancel: func(ids []string) Command {
		return Command{Path: "bkill", Args: append([]string(nil), ids...)}
	},
	Signal: func(ids []string, sig syscall.Signal) Command {
		return Command{Path: "bkill", Args: append([]string{"-s", signalName(sig)}, ids...)}
	},
}

// parseLSFQuery reads `bjobs -noheader -o lsfQueryFormat`: one line per
// job or array element ("123|PEND|Not enough job slot(s)"; also the
// blank-separated "123 RUN" of -o 'jobid stat'), and "Job <N> is not found" (either
// stream) for ids it no longer knows.
func parseLSFQuery(res Result, err error, ids []string) (map[string]JobStatus, error) {
	if err != nil {
		for _, l := range outputLines(append(append([]byte(nil), res.Stdout...), res.Stderr...)) {
			if _, row := lsfRow(l); !lsfNotFound.MatchString(l) && !row {
				return nil, fmt.Errorf("bjobs: %w", err)
			}
		}
		if len(res.Stderr) == 0 && len(res.Stdout) == 0 {
			return nil, fmt.Errorf("bjobs: %w", err)
		}
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]JobStatus{}
	for _, line := range outputLines(res.Stdout) {
		f, ok := lsfRow(line)
		if !ok {
			continue
		}
		num, task, _ := strings.Cut(f[0], "[") // "123[4]" when jobid shows the element
		if !want[num] {
			continue
		}
		st := JobStatus{ID: num, Task: strings.TrimSuffix(task, "]"), Raw: f[1]}
		if s, ok := lsfStates[f[1]]; ok {
			st.State, st.Reason = s.state, s.reason
		} else {
			st.State, st.Reason = unknownState(f[1])
		}
		if len(f) == 3 && st.State == JobPending {
			if r := strings.TrimSpace(f[2]); r != "" && r != "-" {
				st.Reason = strings.TrimSuffix(r, ";")
			}
		}
		foldStatus(out, num, st)
	}
	return out, nil
}
