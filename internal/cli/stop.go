package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/remote"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// StopOptions are the options of `ipcluster stop`.
type StopOptions struct {
	F *Factory
	ClusterFlags
	// All stops every cluster of the profile.
	All bool
	// ClusterIDs are the clusters to stop (default: --cluster-id).
	ClusterIDs []string
	// StopGrace is the SIGTERM-to-SIGKILL delay.
	StopGrace time.Duration
	// remoteArgs are the flags given, for the remote ipcluster of --ssh.
	remoteArgs []string
}

// NewCmdStop builds `ipcluster stop`. runF replaces stopRun in tests.
func NewCmdStop(f *Factory, runF func(*StopOptions) error) *cobra.Command {
	opts := &StopOptions{F: f}
	cmd := &cobra.Command{
		Use:   "stop [flags] [cluster-id...]",
		Short: "Stop a running cluster",
		Long: `Stop the controller and every engine set of a cluster, wherever they were
started from, and check that none of their processes is left.

A cluster whose controller died without cleaning up (kill -9, a crash, a
reboot) is cleaned up the same way: the engines it left are stopped, and its
cluster file and connection files are removed; stop says so and exits with 0,
as ipyparallel's does whenever the cluster file exists.

A cluster started with 'start --ssh HOST' is stopped on HOST (found by --ssh or
by the record start left in this profile); then the batch queue there is
asked for every job the cluster reported, and jobs still queued are
cancelled, until none is left.

Exits with 11 if there is no such cluster (no cluster file).`,
		Example: `  ipcluster stop
  ipcluster stop --cluster-id=big
  ipcluster stop --all --profile=mpi
  ipcluster stop --ssh login.hpc`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ClusterIDs = args
			if opts.All && len(args) > 0 {
				return errors.New("give either --all or cluster ids, not both")
			}
			if opts.All && opts.SSH != "" {
				return errors.New("--all with --ssh: name the clusters to stop (ipcluster list --ssh HOST shows them)")
			}
			opts.remoteArgs = forwardFlags(cmd.Flags())
			if runF != nil {
				return runF(opts)
			}
			return stopRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.BoolVar(&opts.All, "all", false, "stop every cluster of the profile")
	fs.Var(newSecondsValue(&opts.StopGrace, 5*time.Second), "stop-grace", "how long a stopping process gets between SIGTERM and SIGKILL")
	return cmd
}

func stopRun(ctx context.Context, o *StopOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := o.Dir()
	if err != nil {
		return err
	}
	ids := o.ClusterIDs
	switch {
	case o.All:
		files, err := launchers.ClusterFiles(dir)
		if err != nil {
			return err
		}
		for _, f := range files {
			ids = append(ids, launchers.ClusterIDFromFile(f))
		}
		// Clusters started here with --ssh run elsewhere: their records.
		recs, _ := filepath.Glob(remote.RecordFile(dir, "*"))
		for _, f := range recs {
			id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "remote-cluster-"), ".json")
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			fmt.Fprintln(o.F.IO.ErrOut, "No clusters to stop")
			return nil
		}
	case len(ids) == 0:
		ids = []string{o.ClusterID}
	}
	var errs []error
	for _, id := range ids {
		if err := stopOne(ctx, o, dir, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stopOne(ctx context.Context, o *StopOptions, dir, id string) error {
	// A cluster started with --ssh is stopped where it runs, found by
	// --ssh or by the record start left here.
	rec, recErr := remote.LoadRecord(dir, id)
	if host := o.SSH; host != "" || (recErr == nil && !fileExists(wire.ClusterFile(dir, id))) {
		if host == "" {
			host = rec.Host
		}
		t := remote.Target{LocalProfileDir: dir, Profile: o.Profile, ClusterID: id}
		return stopRemote(ctx, o, host, t, rec)
	}
	flags := ClusterFlags{ProfileDir: dir, ClusterID: id}
	copts, err := clusterOptions(o.F, flags, "", "")
	if err != nil {
		return err
	}
	copts.StopGrace = o.StopGrace
	c, err := launchers.LoadCluster(ctx, copts)
	if errors.Is(err, launchers.ErrNoCluster) {
		return fmt.Errorf("%w: cluster %s (%v)", ErrAlreadyStopped, clusterName(id), err)
	}
	if err != nil {
		return err
	}
	orphans := !c.ControllerRunning()
	note := deathNote(c)
	if !c.Running() {
		// Only files were left. LoadCluster removed the records of the
		// dead processes (and the files with them); Save removes a file
		// that recorded nothing at all.
		if err := c.Save(ctx); err != nil {
			return err
		}
		fmt.Fprintf(o.F.IO.ErrOut, "Cluster %s was not running (%s); removed its stale files\n", clusterName(id), note)
		return nil
	}
	pids := c.PIDs()
	jobs := clusterJobs(c)
	copts.Logger.Info("stopping cluster", "cluster_id", clusterName(id), "pids", pids, "jobs", jobs)
	if err := stopCluster(c, o.StopGrace); err != nil {
		return fmt.Errorf("stopping cluster %s: %w", clusterName(id), err)
	}
	if orphans {
		fmt.Fprintf(o.F.IO.ErrOut, "Cluster %s had lost its controller (%s): stopped the %d engine processes it left and removed its stale files\n",
			clusterName(id), note, len(pids))
		return nil
	}
	what := fmt.Sprintf("%d processes", len(pids))
	if len(jobs) > 0 {
		what += fmt.Sprintf(", batch jobs %s, gone from the queue", strings.Join(jobs, " "))
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Stopped cluster %s (%s)\n", clusterName(id), what)
	return nil
}

// clusterJobs lists the ids of the batch jobs of a cluster still queued
// or running.
func clusterJobs(c *launchers.Cluster) []string {
	var ids []string
	add := func(l launchers.Launcher) {
		for _, j := range l.Status().Jobs {
			if !j.State.Finished() {
				ids = append(ids, j.ID)
			}
		}
	}
	if ctl := c.Controller(); ctl != nil {
		add(ctl)
	}
	for _, set := range c.EngineSets() {
		add(set)
	}
	slices.SortFunc(ids, compareJobIDs)
	return ids
}

// compareJobIDs orders batch job ids by their leading number (Slurm's
// "9" before "10", PBS's "9.server" before "10.server"), then as text.
func compareJobIDs(a, b string) int {
	lead := func(s string) (int, bool) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		return n, err == nil
	}
	na, oka := lead(a)
	nb, okb := lead(b)
	if oka && okb && na != nb {
		return cmp.Compare(na, nb)
	}
	return strings.Compare(a, b)
}

// deathNote says why a loaded cluster is not running.
func deathNote(c *launchers.Cluster) string {
	switch {
	case c.ControllerGone() != nil:
		return fmt.Sprintf("its controller had died: %v", c.ControllerGone())
	case c.Running():
		// An earlier command found the controller dead and dropped it.
		return "its controller had died"
	}
	return "its processes had exited"
}
