package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// ListOptions are the options of `ipcluster list`.
type ListOptions struct {
	F *Factory
	ClusterFlags
	// Output is "text" or "json".
	Output string
	// ProbeTimeout bounds asking each controller for its engines.
	ProbeTimeout time.Duration
	// remoteArgs are the flags given, for the remote ipcluster of --ssh.
	remoteArgs []string
}

// NewCmdList builds `ipcluster list`. runF replaces listRun in tests.
func NewCmdList(f *Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List running clusters",
		Long: `List the running clusters of every profile under $IPYTHONDIR (or of the
given profile). ENGINES is registered/requested when the controller answers,
else the number requested.

RUNNING is True while the cluster's controller process is alive, which is
also when 'ipcluster start' refuses to start the cluster again (exit 10).
Process liveness is checked by pid and start time, not trusted from the
files. A cluster whose controller died (kill -9) is shown as False while
engines it left still run ('ipcluster stop' stops them); the stale connection
files of a dead controller are removed, and clusters whose processes are all
gone are dropped (and their files removed).

With --ssh HOST, the list is the one ipcluster prints on HOST.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = strings.ToLower(opts.Output)
			if opts.Output != "text" && opts.Output != "json" {
				return fmt.Errorf("-o must be text or json, not %q", opts.Output)
			}
			opts.remoteArgs = forwardFlags(cmd.Flags())
			if runF != nil {
				return runF(opts)
			}
			if opts.SSH != "" {
				return listRemote(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, false)
	opts.ClusterFlags.bindRemote(fs)
	fs.StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	fs.Var(newSecondsValue(&opts.ProbeTimeout, 3*time.Second), "probe-timeout", "how long to wait for each controller's engine count")
	return cmd
}

// ClusterStatus is one cluster in the list.
type ClusterStatus struct {
	Profile    string `json:"profile"`
	ProfileDir string `json:"profile_dir"`
	ClusterID  string `json:"cluster_id"`
	File       string `json:"file"`
	Running    bool   `json:"running"`
	Requested  int    `json:"engines_requested"`
	// Registered is -1 when the controller could not be asked.
	Registered int    `json:"engines_registered"`
	Launcher   string `json:"launcher"`
	// Jobs are the batch jobs of the controller and engine sets, as the
	// scheduler reports them now.
	Jobs []launchers.JobStatus `json:"jobs,omitempty"`

	file *launchers.ClusterFile
}

// listEntry is one element of `list -o json`: the cluster file as
// ipyparallel prints it, plus our "status".
type listEntry struct {
	*launchers.ClusterFile
	Status *ClusterStatus `json:"status"`
}

func listRun(ctx context.Context, o *ListOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir := ""
	if o.profileGiven() {
		var err error
		if dir, err = o.Dir(); err != nil {
			return err
		}
	}
	files, err := launchers.ClusterFiles(dir)
	if err != nil {
		return err
	}
	statuses := make([]*ClusterStatus, len(files))
	var wg sync.WaitGroup
	for i, path := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = clusterStatus(ctx, o, path)
		}()
	}
	wg.Wait()
	var live []*ClusterStatus
	for _, s := range statuses {
		if s != nil {
			live = append(live, s)
		}
	}
	if o.Output == "json" {
		entries := make([]listEntry, len(live))
		for i, s := range live {
			entries[i] = listEntry{ClusterFile: s.file, Status: s}
		}
		enc := json.NewEncoder(o.F.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	if err := writeListText(o.F, live); err != nil {
		return err
	}
	return writeRemoteRecords(o.F, dir)
}

// writeListText prints the table of `ipcluster list`.
func writeListText(f *Factory, list []*ClusterStatus) error {
	tw := tabwriter.NewWriter(f.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tCLUSTER ID\tRUNNING\tENGINES\tLAUNCHER\tJOBS")
	for _, s := range list {
		engines := strconv.Itoa(s.Requested)
		if s.Registered >= 0 {
			engines = fmt.Sprintf("%d/%d", s.Registered, s.Requested)
		}
		running := "False"
		if s.Running {
			running = "True"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Profile, clusterName(s.ClusterID), running, engines, s.Launcher, jobsText(s.Jobs))
	}
	return tw.Flush()
}

// clusterStatus loads one cluster file (dropping what died) and asks its
// controller how many engines are registered; nil when nothing runs.
func clusterStatus(ctx context.Context, o *ListOptions, path string) *ClusterStatus {
	profileDir := filepath.Dir(filepath.Dir(path))
	id := launchers.ClusterIDFromFile(path)
	log := o.F.Logger()
	c, err := launchers.LoadCluster(ctx, launchers.ClusterOptions{
		ProfileDir: profileDir, ClusterID: id, Runner: o.F.Runner, Logger: log,
	})
	if err != nil {
		log.Warn("skipping cluster file", "file", path, "err", err)
		return nil
	}
	if !c.Running() {
		return nil
	}
	f, err := launchers.ReadClusterFile(path)
	if err != nil {
		log.Warn("skipping cluster file", "file", path, "err", err)
		return nil
	}
	s := &ClusterStatus{
		Profile:    launchers.AbbreviateProfileDir(profileDir),
		ProfileDir: profileDir,
		ClusterID:  id,
		File:       path,
		Running:    c.ControllerRunning(),
		Registered: -1,
		Launcher:   launcherTitle(f.Engines.Class),
		file:       f,
	}
	for _, state := range f.Engines.Sets {
		s.Requested += launchers.SetN(state)
	}
	if ctl := c.Controller(); ctl != nil {
		s.Jobs = append(s.Jobs, ctl.Status().Jobs...)
	}
	sets := c.EngineSets()
	for _, id := range f.SetIDs() {
		if set := sets[id]; set != nil {
			s.Jobs = append(s.Jobs, set.Status().Jobs...)
		}
	}
	if launchers := setLaunchers(f); len(launchers) > 1 {
		s.Launcher = strings.Join(launchers, "+")
	}
	if s.Running {
		pctx, cancel := context.WithTimeout(ctx, o.ProbeTimeout)
		defer cancel()
		if client, err := o.F.Connect(pctx, wire.ClientFile(profileDir, id)); err == nil {
			s.Registered = len(client.IDs())
			client.Close()
		} else {
			log.Debug("controller did not answer", "cluster_id", clusterName(id), "err", err)
		}
	}
	return s
}

// launcherTitle shows a launcher name as ipcluster list does ("Local",
// "Slurm").
func launcherTitle(name string) string {
	if name == "" {
		return "-"
	}
	return launchers.Title(name)
}

// setLaunchers lists the launchers of a cluster's engine sets, titled,
// in start order without repeats.
func setLaunchers(f *launchers.ClusterFile) []string {
	var names []string
	for _, id := range f.SetIDs() {
		name := launcherTitle(launchers.SetLauncher(f, id))
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// jobsText shows batch jobs for the list: "12:RUNNING 13:PENDING(Resources)".
func jobsText(jobs []launchers.JobStatus) string {
	if len(jobs) == 0 {
		return "-"
	}
	parts := make([]string, len(jobs))
	for i, j := range jobs {
		parts[i] = j.ID + ":" + string(j.State)
		if j.Reason != "" && j.State == launchers.JobPending {
			parts[i] += "(" + j.Reason + ")"
		}
	}
	return strings.Join(parts, " ")
}
