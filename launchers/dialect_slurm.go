package launchers

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// Slurm runs all the engines of a set as the tasks of one job (one srun
// step), not as an array. Queries use squeue with --states=all: sacct
// needs slurmdbd, which small sites and CI lack, while squeue still shows
// a finished job's real outcome for MinJobAge (300 s by default) and a
// job missing after that is judged finished (JobGone).

// slurmSubmitRes are the messages sbatch prints: --parsable's "N" or
// "N;cluster" (federation), and the plain "Submitted batch job N" with
// its multi-cluster tail.
var slurmSubmitRes = []*regexp.Regexp{
	regexp.MustCompile(`^(\d+)(?:;([A-Za-z0-9_.-]+))?$`),
	regexp.MustCompile(`^Submitted batch job (\d+)(?: on cluster ([A-Za-z0-9_.-]+))?$`),
}

// slurmStates maps squeue's short codes (%t). Codes that can come back
// (requeue, suspension) are not finished.
var slurmStates = map[string]JobState{
	"PD": JobPending, "CF": JobPending, "RQ": JobPending, "RH": JobPending,
	"RF": JobPending, "RD": JobPending, "S": JobPending, "ST": JobPending,
	"R": JobRunning, "CG": JobRunning, "RS": JobRunning, "SI": JobRunning, "SO": JobRunning,
	"CD": JobCompleted,
	"CA": JobCancelled,
	"F":  JobFailed, "NF": JobFailed, "RV": JobFailed, "SE": JobFailed, "PR": JobFailed,
	"OOM": JobFailed, "BF": JobFailed,
	"TO": JobTimeout, "DL": JobTimeout,
}

// slurmSplitIDs separates "N;cluster" ids into job numbers and the
// clusters squeue and scancel must be pointed at (-M).
func slurmSplitIDs(ids []string) (nums, clusters []string) {
	seen := map[string]bool{}
	for _, id := range ids {
		num, cluster, _ := strings.Cut(id, ";")
		nums = append(nums, num)
		if cluster != "" && !seen[cluster] {
			seen[cluster] = true
			clusters = append(clusters, cluster)
		}
	}
	sort.Strings(clusters)
	return nums, clusters
}

func slurmWithClusters(args []string, ids []string) []string {
	nums, clusters := slurmSplitIDs(ids)
	if len(clusters) > 0 {
		args = append(args, "--clusters="+strings.Join(clusters, ","))
	}
	return append(args, nums...)
}

var slurmDialect = &Dialect{
	Name:               "slurm",
	Title:              "Slurm",
	Directive:          "#SBATCH",
	EngineTemplate:     "slurm-engines.sh.tmpl",
	ControllerTemplate: "slurm-controller.sh.tmpl",
	Array:              false,
	Submit: func(path, _ string) Command {
		// --parsable keeps warnings on stderr and the id alone on stdout.
		return Command{Path: "sbatch", Args: []string{"--parsable", path}}
	},
	ParseSubmit: func(stdout string) (string, error) {
		return findSubmitID("sbatch", stdout, slurmSubmitRes...)
	},
	Query: func(ids []string) Command {
		nums, clusters := slurmSplitIDs(ids)
		args := []string{"--noheader", "--states=all", "--format=%i|%t|%r", "--jobs=" + strings.Join(nums, ",")}
		if len(clusters) > 0 {
			args = append(args, "--clusters="+strings.Join(clusters, ","))
		}
		return Command{Path: "squeue", Args: args}
	},
	ParseQuery: parseSlurmQuery,
	Cancel: func(ids []string) Command {
		return Command{Path: "scancel", Args: slurmWithClusters(nil, ids)}
	},
	Signal: func(ids []string, sig syscall.Signal) Command {
		// Without --full (or --batch) scancel signals the job's steps: the
		// srun tasks, i.e. the engines, and not the batch shell, which a
		// SIGINT would kill and the whole job with it.
		return Command{Path: "scancel", Args: slurmWithClusters([]string{"--signal=" + signalName(sig)}, ids)}
	},
	ComputeHosts: func(ctx context.Context, r Runner, queue string) ([]string, error) {
		args := []string{"--noheader", "--Node", "--format=%N"}
		if queue != "" {
			args = append(args, "--partition="+queue)
		}
		res, err := r.Run(ctx, Command{Path: "sinfo", Args: args})
		if err != nil {
			return nil, err
		}
		hosts := uniqueLines(res.Stdout)
		if len(hosts) == 0 {
			return nil, fmt.Errorf("sinfo: no nodes in partition %q", queue)
		}
		return hosts, nil
	},
}

func parseSlurmQuery(res Result, err error, ids []string) (map[string]JobStatus, error) {
	if err != nil {
		// squeue exits 1 when none of the ids is known any more: all gone.
		if strings.Contains(resultText(res), "Invalid job id specified") {
			return map[string]JobStatus{}, nil
		}
		return nil, fmt.Errorf("squeue: %w", err)
	}
	want := map[string]string{} // job number -> id as submitted
	for _, id := range ids {
		num, _, _ := strings.Cut(id, ";")
		want[num] = id
	}
	out := map[string]JobStatus{}
	for _, line := range outputLines(res.Stdout) {
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 {
			continue // "CLUSTER: name" headers of --clusters
		}
		num, task, _ := strings.Cut(f[0], "_")
		id, ok := want[num]
		if !ok {
			continue
		}
		st := JobStatus{ID: id, Task: strings.Trim(task, "[]"), Raw: f[1]}
		state, ok := slurmStates[f[1]]
		if ok {
			st.State = state
			if r := strings.TrimSpace(f[2]); r != "None" && r != "" {
				st.Reason = r
			}
		} else {
			st.State, st.Reason = unknownState(f[1])
		}
		foldStatus(out, id, st)
	}
	return out, nil
}

// uniqueLines is the distinct non-empty lines of b, in order.
func uniqueLines(b []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range outputLines(b) {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
