package launchers

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Grid Engine (Son of Grid Engine, Univa/Altair GE, OGS) runs one engine
// per array task. Finished jobs vanish from qstat (qacct has them, after
// a flush delay), so a job missing from qstat is JobGone. SGE has no
// qsig: signals other than deletion are impossible, so Signal is nil.

var sgeSubmitRes = []*regexp.Regexp{
	regexp.MustCompile(`^Your job(?:-array)? (\d+)(?:\.\d+-\d+:\d+)? \(".*"\) has been submitted$`),
	// qsub -terse, when a site's sge_request adds it.
	regexp.MustCompile(`^(\d+)(?:\.\d+-\d+:\d+)?$`),
}

// sgeState maps a qstat state word (sge_status(5)) to a JobState: the
// letters combine, and the most telling one decides (error over deletion
// over hold over suspension over running over waiting). A job being
// deleted is not finished yet: only leaving qstat finishes it.
func sgeState(raw string) (JobState, string) {
	has := func(letters string) bool { return strings.ContainsAny(raw, letters) }
	switch {
	case has("E"):
		// Eqw never runs until an operator clears it (qmod -cj): waiting
		// for it would wait forever.
		return JobFailed, "error state (qstat -j shows why)"
	case has("d"):
		// Deletion was asked for, but the job is still listed and its
		// processes may still run (like Slurm's CG, completing): it
		// is finished only when qstat no longer lists it, so that a
		// stop does not return while the engines still run.
		if has("rtR") {
			return JobRunning, "being deleted"
		}
		return JobPending, "being deleted"
	case has("h"):
		return JobPending, "hold"
	case has("sST"):
		return JobPending, "suspended"
	case has("rtR"):
		return JobRunning, ""
	case has("qw"):
		return JobPending, ""
	}
	return unknownState(raw)
}

var sgeDialect = &Dialect{
	Name:               "sge",
	Title:              "Grid Engine",
	Directive:          "#$",
	EngineTemplate:     "sge-engines.sh.tmpl",
	ControllerTemplate: "sge-controller.sh.tmpl",
	Array:              true,
	Submit: func(path, _ string) Command {
		return Command{Path: "qsub", Args: []string{path}}
	},
	ParseSubmit: func(stdout string) (string, error) {
		return findSubmitID("qsub", stdout, sgeSubmitRes...)
	},
	Query: func([]string) Command {
		// qstat cannot filter by job id in its listing (-j prints details),
		// and by default lists the caller's own jobs.
		return Command{Path: "qstat"}
	},
	ParseQuery: parseSGEQuery,
	Cancel: func(ids []string) Command {
		return Command{Path: "qdel", Args: append([]string(nil), ids...)}
	},
	Signal: nil,
	ComputeHosts: func(ctx context.Context, r Runner, queue string) ([]string, error) {
		var args []string
		if queue != "" {
			args = []string{"-q", queue}
		}
		res, err := r.Run(ctx, Command{Path: "qselect", Args: args})
		if err != nil {
			return nil, err
		}
		var hosts []string
		seen := map[string]bool{}
		for _, qi := range outputLines(res.Stdout) { // queue instances "all.q@vm"
			_, host, ok := strings.Cut(qi, "@")
			if ok && host != "" && !seen[host] {
				seen[host] = true
				hosts = append(hosts, host)
			}
		}
		if len(hosts) == 0 {
			return nil, fmt.Errorf("qselect: no hosts in queue %q", queue)
		}
		return hosts, nil
	},
}

// parseSGEQuery reads qstat's table: job-ID prior name user state
// submit/start-date time [queue] slots [ja-task-ID]. The queue column is
// empty for waiting jobs, so the columns after the time are told apart by
// the queue instance's "@".
func parseSGEQuery(res Result, err error, ids []string) (map[string]JobStatus, error) {
	if err != nil {
		return nil, fmt.Errorf("qstat: %w", err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]JobStatus{}
	for _, line := range outputLines(res.Stdout) {
		f := strings.Fields(line)
		if len(f) < 8 || !want[f[0]] {
			continue // header, dashes, other jobs
		}
		rest := f[7:]
		if _, err := strconv.Atoi(rest[0]); err != nil || strings.Contains(rest[0], "@") {
			rest = rest[1:] // the queue instance
		}
		st := JobStatus{ID: f[0], Raw: f[4]}
		if len(rest) >= 2 {
			st.Task = rest[1]
		}
		st.State, st.Reason = sgeState(f[4])
		foldStatus(out, f[0], st)
	}
	return out, nil
}
