package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Target names a cluster on both sides: the local profile directory that
// receives the client file and the record, and the remote profile name
// and cluster id.
type Target struct {
	LocalProfileDir string
	Profile         string
	ClusterID       string
}

func (t Target) remoteArgs() []string {
	p := t.Profile
	if p == "" {
		p = "default"
	}
	return []string{"--profile=" + p, "--cluster-id=" + t.ClusterID}
}

// Start runs `ipcluster start --daemonize args...` remotely (its output
// goes to out and errOut as it comes), then copies the client file into
// the local profile and writes the record. It returns the local client
// file.
func (r *Remote) Start(ctx context.Context, out, errOut io.Writer, t Target, args []string) (string, error) {
	rec := &Record{Host: r.Name(), IPCluster: r.IPCluster, Profile: t.Profile, ClusterID: t.ClusterID, Started: time.Now().UTC()}
	args = LoopbackClients(args)
	startErr := r.RunChecked(ctx, out, errOut, "start", append(append([]string{"--daemonize"}, t.remoteArgs()...), args...)...)
	var ee *ExitError
	if startErr != nil && (!errors.As(startErr, &ee) || ee.Code != 10) {
		// A start that failed has stopped what it started; a start
		// refused because the cluster runs (exit 10) still gets the
		// client file, so the laptop can use it.
		return "", startErr
	}
	path, err := r.Sync(ctx, t, rec)
	if err != nil {
		return "", err
	}
	return path, startErr
}

// Sync asks the remote for the cluster, merges its jobs into rec (or the
// saved record, when rec is nil), and rewrites the local client file and
// record. It fails wrapping ErrNotRunning when the cluster does not run
// there.
func (r *Remote) Sync(ctx context.Context, t Target, rec *Record) (string, error) {
	c, err := r.Find(ctx, t.Profile, t.ClusterID)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", fmt.Errorf("%w: no cluster %s in profile %s on %s", ErrNotRunning, quoteID(t.ClusterID), profileName(t.Profile), r.Name())
	}
	if !c.Running {
		// Engines it left may still run (and hold batch jobs): stop
		// cleans them up; a client would only wait for a dead controller.
		return "", fmt.Errorf("%w: the controller of cluster %s on %s has died; 'ipcluster stop --ssh %s' stops what it left",
			ErrNotRunning, quoteID(t.ClusterID), r.Name(), r.Name())
	}
	if rec == nil {
		if rec, err = LoadRecord(t.LocalProfileDir, t.ClusterID); err != nil || rec.Host != r.Name() {
			rec = &Record{Host: r.Name(), IPCluster: r.IPCluster, Profile: t.Profile, ClusterID: t.ClusterID, Started: time.Now().UTC()}
		}
	}
	rec.ProfileDir = c.ProfileDir
	rec.AddJobs(c.Jobs)
	data, err := r.ClientInfo(ctx, c)
	if err != nil {
		return "", err
	}
	path, err := WriteClient(t.LocalProfileDir, t.ClusterID, data)
	if err != nil {
		return "", err
	}
	return path, rec.Save(t.LocalProfileDir)
}

// ErrNotRunning is a cluster that does not run on the remote host.
var ErrNotRunning = errors.New("cluster not running")

// Engines runs `ipcluster engines args...` remotely and records the new
// jobs.
func (r *Remote) Engines(ctx context.Context, out, errOut io.Writer, t Target, args []string) error {
	if err := r.RunChecked(ctx, out, errOut, "engines", append(t.remoteArgs(), args...)...); err != nil {
		return err
	}
	_, err := r.Sync(ctx, t, nil)
	return err
}

// StopReport is what Stop did.
type StopReport struct {
	// NotRunning: the remote ipcluster found no such cluster (exit 11).
	NotRunning bool
	// Checked are the batch jobs asked in the queue after the stop.
	Checked []Job
	// Cancelled are jobs still queued after the remote stop, which Stop
	// cancelled itself.
	Cancelled []Job
}

// QueueTimeout bounds how long Stop waits for the queue to drop the
// cluster's jobs after cancelling them.
var QueueTimeout = 90 * time.Second

// Stop runs `ipcluster stop args...` remotely, then asks the queue for
// every job the cluster ever reported and cancels those still there,
// until the queue has none; then it removes the local client file and
// record. rec may be nil (a cluster started on the remote host itself).
func (r *Remote) Stop(ctx context.Context, out, errOut io.Writer, t Target, rec *Record, args []string) (*StopReport, error) {
	if err := r.Host.Connect(ctx); err != nil {
		return nil, err
	}
	var jobs []Job
	if rec != nil {
		jobs = append(jobs, rec.Jobs...)
	}
	// The remote knows jobs added since (engines started there).
	if c, err := r.Find(ctx, t.Profile, t.ClusterID); err == nil && c != nil {
		for _, j := range c.Jobs {
			if !containsJob(jobs, j) {
				jobs = append(jobs, j)
			}
		}
	} else if err != nil && !isExit(err) {
		return nil, err
	}
	rep := &StopReport{Checked: jobs}
	stopErr := r.Run(ctx, out, errOut, "stop", append(t.remoteArgs(), args...)...)
	var ee *ExitError
	if errors.As(stopErr, &ee) && ee.Code == 11 {
		rep.NotRunning, stopErr = true, nil
	}
	if stopErr != nil && !isExit(stopErr) {
		// Not reached, or the login failed: the queue cannot be asked
		// either, and the record must stay for the next attempt.
		return rep, stopErr
	}
	qerr := r.drainQueue(ctx, jobs, rep)
	if err := errors.Join(stopErr, qerr); err != nil {
		return rep, err
	}
	return rep, Remove(t.LocalProfileDir, t.ClusterID)
}

// drainQueue waits for jobs to leave the queue, cancelling them when the
// remote stop left them (at once when it failed, else after a grace for
// the cancellation it sent to take effect).
func (r *Remote) drainQueue(ctx context.Context, jobs []Job, rep *StopReport) error {
	if len(jobs) == 0 {
		return nil
	}
	deadline := time.Now().Add(QueueTimeout)
	cancelAt := time.Now().Add(10 * time.Second)
	cancelled := false
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		live, err := r.Queue(ctx, jobs)
		if err != nil {
			return err
		}
		if len(live) == 0 {
			return nil
		}
		if !cancelled && time.Now().After(cancelAt) {
			cancelled = true
			for _, q := range live {
				rep.Cancelled = append(rep.Cancelled, q.Job)
			}
			if err := r.Cancel(ctx, rep.Cancelled); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			var ids []string
			for _, q := range live {
				ids = append(ids, fmt.Sprintf("%s (%s %s)", q.Job.ID, q.Job.Launcher, q.Status.State))
			}
			return fmt.Errorf("jobs still in the queue on %s after stop and cancel: %s", r.Name(), strings.Join(ids, ", "))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(delay):
		}
	}
}

func isExit(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee)
}

func containsJob(jobs []Job, j Job) bool {
	for _, k := range jobs {
		if k == j {
			return true
		}
	}
	return false
}

func quoteID(id string) string {
	if id == "" {
		return "''"
	}
	return id
}

func profileName(p string) string {
	if p == "" {
		return "default"
	}
	return p
}

// LoopbackClients adds --client-ip=127.0.0.1 to the flags of a remote
// start whose controller runs on the login node itself, unless the user
// chose a client address. Clients of a remote cluster arrive through the
// ssh tunnel, which ends on the login node, so the client ports need not
// face the network at all; and on loopback they stay unencrypted, which
// is what lets a laptop binary built without cgo (no CURVE) in while
// engines on compute nodes still connect with CURVE (--ip='*'). A
// controller started elsewhere (--controller slurm, ssh) keeps the
// default: its clients' address is not the login node's loopback.
func LoopbackClients(args []string) []string {
	flags := args
	if i := slices.Index(args, "--"); i >= 0 {
		flags = args[:i]
	}
	for _, a := range flags {
		if a == "--client-ip" || strings.HasPrefix(a, "--client-ip=") {
			return args
		}
		if v, ok := strings.CutPrefix(a, "--controller="); ok && !strings.EqualFold(v, "local") {
			return args
		}
	}
	return append([]string{"--client-ip=127.0.0.1"}, args...)
}
