package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// dbSuffixes are the files of a task database beside controller.DBFile:
// SQLite's WAL and shared memory, the directory of its large buffers
// (controller.BlobDir), and the copy a fresh start kept.
var dbSuffixes = []string{"", "-wal", "-shm", ".blobs", ".prev", ".prev-wal", ".prev-shm", ".prev.blobs"}

// CleanOptions are the options of `ipcluster clean`.
type CleanOptions struct {
	F *Factory
	ClusterFlags
	// Force removes files even of clusters that are running.
	Force bool
	// All cleans every profile under $IPYTHONDIR.
	All bool
	// OneCluster limits cleaning to ClusterID (--cluster-id was given).
	OneCluster bool
	// StopGrace is the SIGTERM-to-SIGKILL delay for engines left by a
	// dead controller.
	StopGrace time.Duration
}

// NewCmdClean builds `ipcluster clean`. runF replaces cleanRun in tests.
func NewCmdClean(f *Factory, runF func(*CleanOptions) error) *cobra.Command {
	opts := &CleanOptions{F: f}
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Delete logs, connection files and stale cluster files",
		Long: `Delete the files clusters leave in a profile: everything in log/, the
controller connection files security/ipcontroller-*.json, the task
databases security/ipcontroller-*tasks.db with their directories of large
buffers (*tasks.db.blobs; what 'start --restore' loads), and the cluster files of clusters that are no longer running. With
--cluster-id, only that cluster's files: its cluster file, connection files,
task database and logs.

Refuses while a cluster's controller runs, unless --force (which can orphan
its processes). A cluster whose controller died (kill -9) is not running:
the engines it left behind are stopped before its files are removed.`,
		Example: `  ipcluster clean
  ipcluster clean --cluster-id=big
  ipcluster clean --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.OneCluster = cmd.Flags().Changed("cluster-id")
			if opts.OneCluster && opts.All {
				return errors.New("give either --all or --cluster-id, not both")
			}
			if runF != nil {
				return runF(opts)
			}
			return cleanRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	fs.BoolVar(&opts.Force, "force", false, "remove files even of running clusters (may orphan processes)")
	fs.BoolVar(&opts.All, "all", false, "clean every profile under $IPYTHONDIR")
	fs.Var(newSecondsValue(&opts.StopGrace, 5*time.Second), "stop-grace", "how long a stopping leftover engine gets between SIGTERM and SIGKILL")
	return cmd
}

func cleanRun(ctx context.Context, o *CleanOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var dirs []string
	if o.All {
		var err error
		if dirs, err = filepath.Glob(filepath.Join(wire.IPythonDir(), "profile_*")); err != nil {
			return err
		}
	} else {
		dir, err := o.Dir()
		if err != nil {
			return err
		}
		dirs = []string{dir}
	}
	log := o.F.Logger()
	// Look at every cluster first: nothing is removed if one runs.
	var running []string
	var orphaned []*launchers.Cluster
	for _, dir := range dirs {
		files, err := launchers.ClusterFiles(dir)
		if err != nil {
			return err
		}
		if o.OneCluster {
			files = []string{wire.ClusterFile(dir, o.ClusterID)}
		}
		for _, path := range files {
			c, err := launchers.LoadCluster(ctx, launchers.ClusterOptions{
				ProfileDir: dir, ClusterID: launchers.ClusterIDFromFile(path), Runner: o.F.Runner, Logger: log,
			})
			switch {
			case errors.Is(err, launchers.ErrNoCluster):
			case err != nil:
				log.Warn("unreadable cluster file", "file", path, "err", err)
			case c.ControllerRunning():
				running = append(running, path)
			case c.Running():
				orphaned = append(orphaned, c)
			}
		}
	}
	if len(running) > 0 && !o.Force {
		return fmt.Errorf("clusters are running (%s); stop them first or use --force", strings.Join(running, ", "))
	}
	// Engines whose controller died can do no work; removing their
	// cluster file without stopping them would leave them untracked.
	for _, c := range orphaned {
		pids := c.PIDs()
		if err := stopCluster(c, o.StopGrace); err != nil {
			return fmt.Errorf("stopping the engines left by the dead controller of cluster %s: %w", clusterName(c.Options().ClusterID), err)
		}
		fmt.Fprintf(o.F.IO.ErrOut, "Stopped %d engine processes left by the dead controller of cluster %s\n", len(pids), clusterName(c.Options().ClusterID))
	}
	removed := 0
	remove := func(paths []string) error {
		for _, m := range paths {
			fi, err := os.Lstat(m)
			if err != nil {
				continue
			}
			if fi.IsDir() {
				// Only a task database's buffer directory is removed
				// whole; it holds nothing but the buffer files.
				if !strings.HasSuffix(m, ".blobs") || !strings.HasSuffix(strings.TrimSuffix(strings.TrimSuffix(m, ".blobs"), ".prev"), "tasks.db") {
					continue
				}
				files, _ := os.ReadDir(m)
				if err := os.RemoveAll(m); err != nil {
					return err
				}
				log.Debug("removed", "dir", m, "files", len(files))
				removed += len(files)
				continue
			}
			if err := os.Remove(m); err != nil {
				return err
			}
			log.Debug("removed", "file", m)
			removed++
		}
		return nil
	}
	for _, dir := range dirs {
		if o.OneCluster {
			logs, err := launchers.ClusterLogFiles(dir, o.ClusterID)
			if err != nil {
				return err
			}
			cf := wire.ClusterFile(dir, o.ClusterID)
			files := append(logs, cf, cf+".lock", wire.ClientFile(dir, o.ClusterID), wire.EngineFile(dir, o.ClusterID))
			for _, suffix := range dbSuffixes {
				files = append(files, controller.DBFile(dir, o.ClusterID)+suffix)
			}
			if err := remove(files); err != nil {
				return err
			}
			continue
		}
		var patterns = []string{
			filepath.Join(wire.LogDir(dir), "*"),
			filepath.Join(wire.SecurityDir(dir), "ipcontroller-*.json"),
			filepath.Join(wire.SecurityDir(dir), "cluster-*.json"),
			filepath.Join(wire.SecurityDir(dir), "cluster-*.json.lock"),
			// Task databases (controller.DBFile) with their WAL, shm and
			// the previous run's copy.
			filepath.Join(wire.SecurityDir(dir), "ipcontroller-*tasks.db*"),
		}
		for _, p := range patterns {
			matches, err := filepath.Glob(p)
			if err != nil {
				return err
			}
			if err := remove(matches); err != nil {
				return err
			}
		}
	}
	if o.OneCluster {
		fmt.Fprintf(o.F.IO.ErrOut, "Removed %d files of cluster %s\n", removed, clusterName(o.ClusterID))
		return nil
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Removed %d files\n", removed)
	return nil
}
