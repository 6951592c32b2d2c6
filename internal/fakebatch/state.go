//go:build unix

package fakebatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The states a task goes through. A task is queued until its supervisor
// starts the process, running while the process lives, then done; held is
// HTCondor's state for a job whose executable could not be started.
const (
	taskQueued  = "queued"
	taskRunning = "running"
	taskDone    = "done"
	taskHeld    = "held"
)

// job is one submission as the state directory records it: a whole array
// job is one record with one task per array index (HTCondor: per proc).
type job struct {
	Seq       int       `json:"seq"`
	System    string    `json:"system"`
	ID        string    `json:"id"` // as submit printed it: 1234[].server, 123, 118907
	Name      string    `json:"name"`
	Queue     string    `json:"queue"`
	User      string    `json:"user"`
	Array     bool      `json:"array"`
	ArraySpec string    `json:"array_spec,omitempty"` // as submitted: 1-3
	Submitted time.Time `json:"submitted"`
	// Fault injection and timing, fixed at submission.
	Hold       bool          `json:"hold,omitempty"`
	Fail       bool          `json:"fail,omitempty"`
	StartDelay time.Duration `json:"start_delay,omitempty"`
	Grace      time.Duration `json:"grace"`
	Keep       time.Duration `json:"keep"`
	Tasks      []*task       `json:"tasks"`
}

// task is one process of a job: what to run and what became of it.
type task struct {
	Index int      `json:"index"`
	Argv  []string `json:"argv"`
	Env   []string `json:"env"`
	Dir   string   `json:"dir"`
	Out   string   `json:"out"`           // "" discards
	Err   string   `json:"err"`           // equal to Out when joined
	Log   string   `json:"log,omitempty"` // HTCondor's user log

	State      string    `json:"state"`
	Supervisor int       `json:"supervisor,omitempty"`
	PGID       int       `json:"pgid,omitempty"`
	Exit       int       `json:"exit"`
	Signal     int       `json:"signal,omitempty"`
	Cancelled  bool      `json:"cancelled,omitempty"`
	HoldReason string    `json:"hold_reason,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Ended      time.Time `json:"ended,omitzero"`
}

// store is the state directory shared by every command and supervisor:
// jobs/<seq>.json, a sequence counter and a lock file that serialises
// every read-modify-write.
type store struct{ dir string }

func (s store) jobPath(seq int) string {
	return filepath.Join(s.dir, "jobs", strconv.Itoa(seq)+".json")
}

// locked runs fn holding the state directory's exclusive lock; commands
// are short, so one lock for everything keeps the reasoning simple.
func (s store) locked(fn func() error) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "jobs"), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway
	return fn()
}

// nextSeq hands out job numbers, starting at 100 so ids have several digits.
func (s store) nextSeq() (int, error) {
	seq := 0
	err := s.locked(func() error {
		p := filepath.Join(s.dir, "seq")
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		seq = 100
		if len(data) > 0 {
			if seq, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
				return fmt.Errorf("corrupt sequence file %s: %w", p, err)
			}
		}
		return os.WriteFile(p, []byte(strconv.Itoa(seq+1)), 0o600)
	})
	return seq, err
}

func (s store) load(seq int) (*job, error) {
	data, err := os.ReadFile(s.jobPath(seq))
	if err != nil {
		return nil, err
	}
	j := new(job)
	if err := json.Unmarshal(data, j); err != nil {
		return nil, fmt.Errorf("%s: %w", s.jobPath(seq), err)
	}
	return j, nil
}

// save writes j atomically so that readers never see half a file.
func (s store) save(j *job) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.jobPath(j.Seq) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.jobPath(j.Seq))
}

// all returns every job, oldest first, with dead supervisors accounted for.
func (s store) all() ([]*job, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, "jobs", "*.json"))
	if err != nil {
		return nil, err
	}
	var jobs []*job
	for _, p := range paths {
		seq, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), ".json"))
		if err != nil {
			continue
		}
		j, err := s.load(seq)
		if err != nil {
			return nil, err
		}
		j.settle()
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Seq < jobs[b].Seq })
	return jobs, nil
}

// settle marks done the tasks whose supervisor died without saying so
// (killed by a test's cleanup, say), so a query never reports a dead job
// as running.
func (j *job) settle() {
	for _, t := range j.Tasks {
		live := t.State == taskRunning || (t.State == taskQueued && !j.Hold && t.Supervisor != 0)
		if live && !alive(t.Supervisor) {
			t.State, t.Exit, t.Signal = taskDone, 128+int(syscall.SIGKILL), int(syscall.SIGKILL)
			if t.Ended.IsZero() {
				t.Ended = time.Now()
			}
		}
	}
}

// finished reports whether no task will run any more; ended is when the
// last one stopped.
func (j *job) finished() (done bool, ended time.Time) {
	for _, t := range j.Tasks {
		if t.State != taskDone {
			return false, time.Time{}
		}
		if t.Ended.After(ended) {
			ended = t.Ended
		}
	}
	return true, ended
}

// visible reports whether a finished job still shows in the queue
// (Torque's C, LSF's DONE/EXIT for a while).
func (j *job) visible(now time.Time) bool {
	done, ended := j.finished()
	return !done || now.Sub(ended) < j.Keep
}

// count tallies the tasks per state.
func (j *job) count() map[string]int {
	n := map[string]int{}
	for _, t := range j.Tasks {
		n[t.State]++
	}
	return n
}

// alive reports whether pid is a live process (zombies are dead: nobody
// may reap a supervisor reparented to a container's init).
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil && !errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	i := strings.LastIndexByte(string(data), ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

// findJob returns the job whose printed id, or whose number, is id.
func findJob(jobs []*job, id string) *job {
	for _, j := range jobs {
		if j.ID == id || strconv.Itoa(j.Seq) == id {
			return j
		}
	}
	return nil
}
