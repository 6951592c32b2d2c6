package launchers

import (
	"fmt"
	"regexp"
	"strings"
)

// HTCondor has no job scripts, only submit descriptions naming an
// executable. Our template is one shell script that carries its submit
// description as "#CONDOR key = value" lines, like the #SBATCH lines of
// other systems: the script is what runs, and Submit hands condor_submit
// (on standard input) "executable = <script>" plus those lines. One file
// to render, override and read, and the other dialects' model unchanged.
// Each process of the cluster is one engine ($(Process), 0-based, passed
// as the script's first argument).

// condorDirective starts the submit-description lines of the script.
const condorDirective = "#CONDOR"

var condorSubmitRe = regexp.MustCompile(`^\d+ job\(s\) submitted to cluster (\d+)\.$`)

// condorStates maps JobStatus (condor_q).
var condorStates = map[string]struct {
	state  JobState
	reason string
}{
	"1": {JobPending, ""}, "2": {JobRunning, ""}, "3": {JobCancelled, "removed"},
	"4": {JobCompleted, ""}, "5": {JobPending, "held"}, "6": {JobRunning, "transferring output"},
	"7": {JobPending, "suspended"},
}

// condorSubmitDescription extracts the submit description from a
// rendered script: its #CONDOR lines after "executable = path", with the
// queue statement last.
func condorSubmitDescription(path, script string) string {
	var b, queue strings.Builder
	fmt.Fprintf(&b, "executable = %s\n", path)
	for _, line := range strings.Split(script, "\n") {
		rest, ok := strings.CutPrefix(line, condorDirective)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest == "queue" || strings.HasPrefix(rest, "queue ") {
			queue.WriteString(rest + "\n")
			continue
		}
		b.WriteString(rest + "\n")
	}
	if queue.Len() == 0 {
		queue.WriteString("queue\n")
	}
	return b.String() + queue.String()
}

var htcondorDialect = &Dialect{
	Name:               "htcondor",
	Title:              "HTCondor",
	Directive:          condorDirective,
	EngineTemplate:     "htcondor-engines.sh.tmpl",
	ControllerTemplate: "htcondor-controller.sh.tmpl",
	Array:              true,
	Submit: func(path, script string) Command {
		// With no file argument condor_submit reads the description from
		// standard input.
		return Command{Path: "condor_submit", Stdin: []byte(condorSubmitDescription(path, script))}
	},
	ParseSubmit: func(stdout string) (string, error) {
		return findSubmitID("condor_submit", stdout, condorSubmitRe)
	},
	Query: func(ids []string) Command {
		return Command{Path: "condor_q", Args: append(append([]string(nil), ids...), "-af:j", "JobStatus", "HoldReason")}
	},
	ParseQuery: parseCondorQuery,
	Cancel: func(ids []string) Command {
		return Command{Path: "condor_rm", Args: append([]string(nil), ids...)}
	},
	Signal: nil, // condor_rm is the only way to reach a job
}

// parseCondorQuery reads `condor_q <clusters> -af:j JobStatus HoldReason`:
// "118907.0 5 <hold reason>", "118907.1 2 undefined". Completed jobs
// leave the queue (condor_history keeps them).
func parseCondorQuery(res Result, err error, ids []string) (map[string]JobStatus, error) {
	if err != nil {
		return nil, fmt.Errorf("condor_q: %w", err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]JobStatus{}
	for _, line := range outputLines(res.Stdout) {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 {
			continue
		}
		cluster, proc, ok := strings.Cut(f[0], ".")
		if !ok || !want[cluster] {
			continue
		}
		st := JobStatus{ID: cluster, Task: proc, Raw: f[1]}
		if s, ok := condorStates[f[1]]; ok {
			st.State, st.Reason = s.state, s.reason
			if f[1] == "5" && len(f) == 3 && f[2] != "undefined" {
				st.Reason = "held: " + strings.TrimSpace(f[2])
			}
		} else {
			st.State, st.Reason = unknownState(f[1])
		}
		foldStatus(out, cluster, st)
	}
	// condor_submit returns once the schedd has committed the cluster,
	// and condor_q asks that schedd, so a cluster it does not list has
	// left the queue (completed or removed), even right after
	// submission. Saying so at once makes a job that fails at once show
	// in a second rather than after the launcher's grace for systems
	// that answer "not found" for a while.
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = JobStatus{ID: id, State: JobGone, Reason: "left the queue"}
		}
	}
	return out, nil
}
