package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// CleanOptions are the options of `ipcluster clean`.
type CleanOptions struct {
	F *Factory
	ClusterFlags
	// Force removes files even of clusters that are running.
	Force bool
	// All cleans every profile under $IPYTHONDIR.
	All bool
}

// NewCmdClean builds `ipcluster clean`. runF replaces cleanRun in tests.
func NewCmdClean(f *Factory, runF func(*CleanOptions) error) *cobra.Command {
	opts := &CleanOptions{F: f}
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Delete logs, connection files and stale cluster files",
		Long: `Delete the files clusters leave in a profile: everything in log/, the
controller connection files security/ipcontroller-*.json, and the cluster
files of clusters that are no longer running. Refuses while a cluster of the
profile runs, unless --force (which can orphan its processes).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return cleanRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, false)
	fs.BoolVar(&opts.Force, "force", false, "remove files even of running clusters (may orphan processes)")
	fs.BoolVar(&opts.All, "all", false, "clean every profile under $IPYTHONDIR")
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
	for _, dir := range dirs {
		files, err := launchers.ClusterFiles(dir)
		if err != nil {
			return err
		}
		for _, path := range files {
			c, err := launchers.LoadCluster(ctx, launchers.ClusterOptions{
				ProfileDir: dir, ClusterID: launchers.ClusterIDFromFile(path), Runner: o.F.Runner, Logger: log,
			})
			if err != nil && !errors.Is(err, launchers.ErrNoCluster) {
				log.Warn("unreadable cluster file", "file", path, "err", err)
				continue
			}
			if err == nil && c.Running() {
				running = append(running, path)
			}
		}
	}
	if len(running) > 0 && !o.Force {
		return fmt.Errorf("clusters are running (%s); stop them first or use --force", strings.Join(running, ", "))
	}
	removed := 0
	for _, dir := range dirs {
		var patterns = []string{
			filepath.Join(wire.LogDir(dir), "*"),
			filepath.Join(wire.SecurityDir(dir), "ipcontroller-*.json"),
			filepath.Join(wire.SecurityDir(dir), "cluster-*.json"),
			filepath.Join(wire.SecurityDir(dir), "cluster-*.json.lock"),
		}
		for _, p := range patterns {
			matches, err := filepath.Glob(p)
			if err != nil {
				return err
			}
			for _, m := range matches {
				if fi, err := os.Lstat(m); err != nil || fi.IsDir() {
					continue
				}
				if err := os.Remove(m); err != nil {
					return err
				}
				log.Debug("removed", "file", m)
				removed++
			}
		}
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Removed %d files\n", removed)
	return nil
}
