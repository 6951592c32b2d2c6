package launchers

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"syscall"
)

// One dialect serves PBS Pro (OpenPBS) and Torque: their qsub, qstat -t,
// qdel and qsig agree, and what differs is script syntax (array -J vs
// -t, resources select= vs nodes=:ppn=), which the template chooses from
// templates.Job.Flavor, filled by Flavor below. Two dialects would
// duplicate every command and parser for two template lines.

var pbsSubmitRes = []*regexp.Regexp{
	// "1234.server", "1234[].server", bare "1234" (Slurm's PBS wrappers).
	regexp.MustCompile(`^(\d+(?:\[\])?(?:\.[A-Za-z0-9_.-]+)?)$`),
	// Some sites: "Request 1234.server was sumbitted to queue: standard." (sic)
	regexp.MustCompile(`^Request (\d+(?:\[\])?(?:\.[A-Za-z0-9_.-]+)?) was su\w+ to queue`),
}

// pbsIDNum is a PBS id's job number and array index ("1234[3].srv").
var pbsIDNum = regexp.MustCompile(`^(\d+)(?:\[(\d*)\])?`)

// pbsStates maps qstat's S column (Torque and PBS Pro).
var pbsStates = map[string]struct {
	state  JobState
	reason string
}{
	"Q": {JobPending, ""}, "H": {JobPending, "hold"}, "W": {JobPending, "waiting for its start time"},
	"T": {JobPending, "in transit"}, "M": {JobPending, "moved to another server"},
	"S": {JobPending, "suspended"}, "U": {JobPending, "suspended (workstation busy)"},
	"R": {JobRunning, ""}, "E": {JobRunning, "exiting"}, "B": {JobRunning, ""},
	// Exit statuses are not in the table: finished, outcome unknown.
	"C": {JobGone, "completed"}, "F": {JobGone, "finished"}, "X": {JobGone, "finished"},
}

// pbsGoneLine is a qstat error that means the job left the queue, with
// the id as given: "qstat: Unknown Job Id 999.server" (Torque after
// keep_completed, PBS Pro without job history), "qstat: 1000.server Job
// has finished, use -x or -H ..." (PBS Pro with history).
var pbsGoneLine = regexp.MustCompile(`Unknown Job Id (\S+)|(\S+) [Jj]ob has finished`)

var pbsDialect = &Dialect{
	Name:               "pbs",
	Title:              "PBS Pro / Torque",
	Directive:          "#PBS",
	EngineTemplate:     "pbs-engines.sh.tmpl",
	ControllerTemplate: "pbs-controller.sh.tmpl",
	Array:              true,
	Submit: func(path, _ string) Command {
		return Command{Path: "qsub", Args: []string{path}}
	},
	ParseSubmit: func(stdout string) (string, error) {
		return findSubmitID("qsub", stdout, pbsSubmitRes...)
	},
	Query: func(ids []string) Command {
		// -t lists array sub-jobs one per line on both flavours.
		return Command{Path: "qstat", Args: append([]string{"-t"}, ids...)}
	},
	ParseQuery: parsePBSQuery,
	Cancel: func(ids []string) Command {
		return Command{Path: "qdel", Args: append([]string(nil), ids...)}
	},
	Signal: func(ids []string, sig syscall.Signal) Command {
		name := signalName(sig)
		if _, ok := signalNames[sig]; ok {
			name = "SIG" + name // Torque's qsig wants the full name
		}
		return Command{Path: "qsig", Args: append([]string{"-s", name}, ids...)}
	},
	Flavor: pbsFlavor,
}

// pbsFlavor tells PBS Pro ("pbs_version = 2022.1.1") from Torque
// ("Version: 6.1.3") by qstat --version.
func pbsFlavor(ctx context.Context, r Runner) (string, error) {
	res, err := r.Run(ctx, Command{Path: "qstat", Args: []string{"--version"}})
	text := resultText(res)
	switch {
	case strings.Contains(text, "pbs_version"):
		return "pbspro", nil
	case strings.Contains(strings.ToLower(text), "version:"):
		return "torque", nil
	case err != nil:
		return "", fmt.Errorf("qstat --version: %w", err)
	}
	return "", fmt.Errorf("qstat --version: neither PBS Pro nor Torque: %q", text)
}

// parsePBSQuery reads qstat's default table (Job id, Name, User, Time
// Use, S, Queue). Ids may be truncated in the table, so rows match on
// the job number.
func parsePBSQuery(res Result, err error, ids []string) (map[string]JobStatus, error) {
	if err != nil {
		// qstat exits non-zero when any id is unknown, yet lists the others.
		for _, l := range outputLines(res.Stderr) {
			if !pbsGoneLine.MatchString(l) {
				return nil, fmt.Errorf("qstat: %w", err)
			}
		}
		if len(res.Stderr) == 0 && len(res.Stdout) == 0 {
			return nil, fmt.Errorf("qstat: %w", err)
		}
	}
	want := map[string]string{}
	for _, id := range ids {
		if m := pbsIDNum.FindStringSubmatch(id); m != nil {
			want[m[1]] = id
		}
	}
	out := map[string]JobStatus{}
	// qsub returns once the server has queued the job, so a job the
	// server does not list has finished: there is no moment after
	// submission when it is unknown (as LSF's bjobs has), and saying so
	// at once makes a job that fails at once show in a second rather
	// than after the launcher's grace for such systems.
	for _, l := range outputLines(res.Stderr) {
		m := pbsGoneLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if n := pbsIDNum.FindStringSubmatch(m[1] + m[2]); n != nil {
			if id, ok := want[n[1]]; ok {
				reason := "no longer known to the server"
				if m[2] != "" {
					reason = "finished"
				}
				out[id] = JobStatus{ID: id, State: JobGone, Reason: reason}
			}
		}
	}
	for _, line := range outputLines(res.Stdout) {
		f := strings.Fields(line)
		if len(f) != 6 {
			continue
		}
		m := pbsIDNum.FindStringSubmatch(f[0])
		if m == nil {
			continue // header and dashes
		}
		id, ok := want[m[1]]
		if !ok {
			continue
		}
		st := JobStatus{ID: id, Task: m[2], Raw: f[4]}
		if s, ok := pbsStates[f[4]]; ok {
			st.State, st.Reason = s.state, s.reason
		} else {
			st.State, st.Reason = unknownState(f[4])
		}
		foldStatus(out, id, st)
	}
	return out, nil
}
