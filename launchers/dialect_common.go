package launchers

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Helpers shared by the dialect_*.go files.

// findSubmitID returns the first capture of the last line of stdout that
// re matches in full. Sites print banners, warnings and account balances
// before the scheduler's own message, and the id is on that message, so a
// line that is not the message never gives an id.
func findSubmitID(system, stdout string, res ...*regexp.Regexp) (string, error) {
	lines := strings.Split(strings.ReplaceAll(stdout, "\r\n", "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		for _, re := range res {
			if m := re.FindStringSubmatch(line); m != nil {
				return joinNonEmpty(";", m[1:]...), nil // Slurm federation: "id;cluster"
			}
		}
	}
	out := strings.TrimSpace(stdout)
	if out == "" {
		return "", fmt.Errorf("%s: the submit command printed no job id (empty output)", system)
	}
	if len(out) > 500 {
		out = out[:500] + "..."
	}
	return "", fmt.Errorf("%s: no job id in the submit command's output: %q", system, out)
}

// outputLines splits a command's stdout into trimmed, non-empty lines.
func outputLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// stateRank orders states for folding array tasks: the least advanced
// task speaks for the job, and among finished tasks the most telling
// outcome (a failure over a success over "gone").
func stateRank(s JobState) int {
	switch s {
	case JobSubmitted:
		return 0
	case JobPending:
		return 1
	case JobRunning:
		return 2
	case JobFailed:
		return 3
	case JobTimeout:
		return 4
	case JobCancelled:
		return 5
	case JobCompleted:
		return 6
	}
	return 7 // JobGone and anything unknown
}

// foldStatus records st under key, keeping the least advanced of the
// tasks already seen for that job.
func foldStatus(m map[string]JobStatus, key string, st JobStatus) {
	old, ok := m[key]
	if !ok || stateRank(st.State) < stateRank(old.State) {
		m[key] = st
	}
}

// unknownState is what a code absent from a dialect's table maps to: not
// finished, so the launcher keeps watching, and the code is shown.
func unknownState(raw string) (JobState, string) {
	return JobPending, "unknown state " + strconv.Quote(raw)
}

// signalName is sig without its SIG prefix, or its number when it has no
// name every tool knows.
func signalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return strconv.Itoa(int(sig))
}

// resultText is a command's stdout and stderr together, for error
// messages and for answers printed on either stream.
func resultText(res Result) string {
	return strings.TrimSpace(string(res.Stdout) + "\n" + string(res.Stderr))
}
