package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// Record is what this host keeps of a cluster it started on another one:
// enough for `ipcluster stop` to stop it and check the queue without
// asking the user again.
type Record struct {
	// Host is the ssh destination; IPCluster the remote command.
	Host      string   `json:"host"`
	IPCluster []string `json:"ipcluster"`
	// Profile is the remote profile name; ProfileDir the remote profile
	// directory it resolved to.
	Profile    string `json:"profile"`
	ProfileDir string `json:"remote_profile_dir"`
	ClusterID  string `json:"cluster_id"`
	// Jobs are every batch job the remote cluster reported, kept after
	// they finish so stop can check each one.
	Jobs []Job `json:"jobs,omitempty"`
	// Started is when the record was first written.
	Started time.Time `json:"started"`
}

// RecordFile is the local path of a remote cluster's record. It is not a
// cluster-<id>.json, which local commands would take for processes of
// this host.
func RecordFile(localProfileDir, id string) string {
	return filepath.Join(wire.SecurityDir(localProfileDir), "remote-cluster-"+id+".json")
}

// LoadRecord reads a record; os.ErrNotExist when there is none.
func LoadRecord(localProfileDir, id string) (*Record, error) {
	data, err := os.ReadFile(RecordFile(localProfileDir, id))
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", RecordFile(localProfileDir, id), err)
	}
	return &rec, nil
}

// Save writes the record (0600).
func (rec *Record) Save(localProfileDir string) error {
	if err := os.MkdirAll(wire.SecurityDir(localProfileDir), 0o700); err != nil {
		return err
	}
	return wire.WritePrivateJSON(RecordFile(localProfileDir, rec.ClusterID), rec)
}

// AddJobs merges jobs into the record.
func (rec *Record) AddJobs(jobs []Job) {
	for _, j := range jobs {
		if !slices.Contains(rec.Jobs, j) {
			rec.Jobs = append(rec.Jobs, j)
		}
	}
}

// Remove deletes the record and the local client file written beside it.
func Remove(localProfileDir, id string) error {
	var errs []error
	for _, p := range []string{RecordFile(localProfileDir, id), wire.ClientFile(localProfileDir, id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WriteClient writes a client connection file fetched by ClientInfo into
// the local profile (0600).
func WriteClient(localProfileDir, id string, data []byte) (string, error) {
	if err := os.MkdirAll(wire.SecurityDir(localProfileDir), 0o700); err != nil {
		return "", err
	}
	p := wire.ClientFile(localProfileDir, id)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// QueueState is one job as the remote queue reports it.
type QueueState struct {
	Job    Job
	Status launchers.JobStatus
}

// Queue asks the remote batch systems which of jobs are still queued or
// running (finished or forgotten jobs are not returned).
func (r *Remote) Queue(ctx context.Context, jobs []Job) ([]QueueState, error) {
	byLauncher := map[string][]string{}
	for _, j := range jobs {
		byLauncher[j.Launcher] = append(byLauncher[j.Launcher], j.ID)
	}
	var live []QueueState
	for name, ids := range byLauncher {
		d, err := dialect(name)
		if err != nil {
			return nil, err
		}
		res, runErr := r.runCommand(ctx, d.Query(ids))
		if runErr != nil && res == nil {
			return nil, runErr
		}
		var resVal launchers.Result
		if res != nil {
			resVal = *res
		}
		states, err := d.ParseQuery(resVal, runErr, ids)
		if err != nil {
			return nil, fmt.Errorf("asking the %s queue on %s: %w", d.Title, r.Name(), err)
		}
		for _, id := range ids {
			if st, ok := states[id]; ok && !st.State.Finished() {
				live = append(live, QueueState{Job: Job{Launcher: name, ID: id}, Status: st})
			}
		}
	}
	return live, nil
}

// Cancel removes jobs from their remote queues.
func (r *Remote) Cancel(ctx context.Context, jobs []Job) error {
	byLauncher := map[string][]string{}
	for _, j := range jobs {
		byLauncher[j.Launcher] = append(byLauncher[j.Launcher], j.ID)
	}
	var errs []error
	for name, ids := range byLauncher {
		d, err := dialect(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := r.runCommand(ctx, d.Cancel(ids)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runCommand runs a scheduler command remotely with the environment words
// of IPCluster. A command that exits non-zero returns its result and a
// *launchers.CommandError, as launchers' runners do; a failure of ssh
// itself returns no result.
func (r *Remote) runCommand(ctx context.Context, c launchers.Command) (*launchers.Result, error) {
	words := append(append(r.envPrefix(), c.Path), c.Args...)
	line := shellwords.Quote(words...)
	cmd, err := r.Host.Command(ctx, line)
	if err != nil {
		return nil, err
	}
	var out, errb tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if len(c.Stdin) > 0 {
		cmd.Stdin = strings.NewReader(string(c.Stdin))
	}
	runErr := cmd.Run()
	res := &launchers.Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if runErr == nil {
		return res, nil
	}
	err = r.Host.Explain(line, runErr, errb.Bytes())
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ssh %s: `%s`: %w", r.Name(), c.Path, context.Cause(ctx))
	}
	var se *sshx.Error
	if errors.As(err, &se) && se.Kind == sshx.CommandFailed && se.ExitCode > 0 && se.ExitCode != 255 {
		res.ExitCode = se.ExitCode
		return res, &launchers.CommandError{Command: c.Path, ExitCode: se.ExitCode, Stderr: strings.TrimSpace(errb.String())}
	}
	return nil, err
}

// dialect is the batch system of a launcher name.
func dialect(name string) (*launchers.Dialect, error) {
	l, err := launchers.New(launchers.KindEngines, name, launchers.Config{ProfileDir: os.TempDir(), Command: []string{"true"}})
	if err != nil {
		return nil, err
	}
	b, ok := l.(interface{ Dialect() *launchers.Dialect })
	if !ok {
		return nil, fmt.Errorf("launcher %q has no batch queue", name)
	}
	return b.Dialect(), nil
}
