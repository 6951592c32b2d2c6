package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// pythonClusterFile is the file ipyparallel 8.8 wrote for
// `ipcluster start --engines=slurm --cluster-id=demo` (spec §13.1).
const pythonClusterFile = `{"cluster": {"cluster_id": "demo", "controller_args": [], "controller_ip": "",
             "controller_location": "", "delay": 1.0, "n": 4,
             "profile_dir": "/home/user/.ipython/profile_demo",
             "class": "ipyparallel.cluster.cluster.Cluster"},
 "controller": {"class": "local",
                "state": {"cluster_id": "demo",
                          "output_file": "/home/user/.ipython/profile_demo/log/ipcontroller-demo-14815.log",
                          "pid": 14841, "profile_dir": "/home/user/.ipython/profile_demo",
                          "state": "running"}},
 "engines": {"class": "slurm",
             "sets": {"1795661000": {
                 "cluster_id": "demo", "job_id": "8", "n": 4, "namespace": {},
                 "profile_dir": "/home/user/.ipython/profile_demo", "queue": "debug",
                 "state": "running"}}}}`

func TestClusterFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "security", "cluster-demo.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte(pythonClusterFile), 0o644)
	f, err := ReadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Cluster.ClusterID != "demo" || f.Cluster.N != 4 || f.Controller.Class != "local" ||
		f.Engines.Class != "slurm" || SetN(f.Engines.Sets["1795661000"]) != 4 || !f.Running() {
		t.Fatalf("parsed %+v", f)
	}
	if err := WriteClusterFile(path, f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	var back, orig map[string]any
	data, _ := os.ReadFile(path)
	json.Unmarshal(data, &back)
	json.Unmarshal([]byte(pythonClusterFile), &orig)
	if fmt.Sprint(back) != fmt.Sprint(orig) {
		t.Errorf("round trip changed the file:\n%v\n%v", orig, back)
	}
}

func TestUpdateClusterFileMergesAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "security", "cluster-x.json")
	const procs, goroutines = 6, 6
	var wg sync.WaitGroup
	errs := make(chan error, procs+goroutines)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(self(t)[0])
			cmd.Env = append(os.Environ(), childEnv+"=add-set", fileEnv+"="+path, fmt.Sprintf("%s=p%d", setIDEnv, i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("%v: %s", err, out)
			}
		}()
	}
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- UpdateClusterFile(context.Background(), path, func(cur *ClusterFile) (*ClusterFile, error) {
				if cur == nil {
					cur = &ClusterFile{Engines: EngineSets{Sets: map[string]json.RawMessage{}}}
				}
				cur.Engines.Sets[fmt.Sprintf("g%d", i)] = json.RawMessage(`{"n":2}`)
				return cur, nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := ReadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Engines.Sets) != procs+goroutines {
		t.Fatalf("%d sets after concurrent updates, want %d: %v", len(f.Engines.Sets), procs+goroutines, f.SetIDs())
	}

	// Removing everything removes the file and its lock.
	err = UpdateClusterFile(context.Background(), path, func(cur *ClusterFile) (*ClusterFile, error) {
		cur.Engines.Sets = nil
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

func TestUpdateClusterFileErrorKeepsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster-.json")
	f := &ClusterFile{Controller: &LauncherRecord{Class: "local", State: json.RawMessage(`{}`)}}
	if err := WriteClusterFile(path, f); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := UpdateClusterFile(context.Background(), path, func(*ClusterFile) (*ClusterFile, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := ReadClusterFile(path); err != nil {
		t.Fatal("file gone after a failed update:", err)
	}
}

func TestSetIDs(t *testing.T) {
	f := &ClusterFile{}
	now := time.Unix(1700000000, 0)
	f.Engines.Sets = map[string]json.RawMessage{}
	for range 3 {
		f.Engines.Sets[f.NewSetID(now)] = nil
	}
	f.Engines.Sets["999999999"] = nil
	f.Engines.Sets["1700000000-10"] = nil
	got := strings.Join(f.SetIDs(), " ")
	want := "999999999 1700000000 1700000000-1 1700000000-2 1700000000-10"
	if got != want {
		t.Errorf("SetIDs = %s, want %s", got, want)
	}
}

func TestAbbreviateProfileDir(t *testing.T) {
	ipy := t.TempDir()
	t.Setenv("IPYTHONDIR", ipy)
	home, _ := os.UserHomeDir()
	for dir, want := range map[string]string{
		filepath.Join(ipy, "profile_default"):   "default",
		filepath.Join(ipy, "profile_x", "sub"):  filepath.Join(ipy, "profile_x", "sub"),
		filepath.Join(home, "somewhere", "pro"): "~/somewhere/pro",
		"/opt/profiles/p":                       "/opt/profiles/p",
	} {
		if home == "/" && strings.HasPrefix(want, "~") {
			continue
		}
		if got := AbbreviateProfileDir(dir); got != want && !(strings.HasPrefix(dir, ipy) && strings.HasPrefix(ipy, home) && got == "~/"+strings.TrimPrefix(dir, home+"/")) {
			t.Errorf("AbbreviateProfileDir(%s) = %s, want %s", dir, got, want)
		}
	}
	if got := ClusterIDFromFile(wire.ClusterFile("/p", "")); got != "" {
		t.Errorf("id of cluster-.json = %q", got)
	}
	if got := ClusterIDFromFile(wire.ClusterFile("/p", "a-b")); got != "a-b" {
		t.Errorf("id = %q", got)
	}
}
