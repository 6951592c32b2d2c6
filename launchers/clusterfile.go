package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// PythonClusterClass is the "class" ipyparallel writes for its Cluster;
// writing it too lets Python's Cluster.from_file and ipcluster read our
// files.
const PythonClusterClass = "ipyparallel.cluster.cluster.Cluster"

// ClusterFile is security/cluster-<id>.json in ipyparallel's layout:
//
//	{"cluster": {...}, "controller": {"class": "local", "state": {...}},
//	 "engines": {"class": "local", "sets": {"<set id>": {...}}}}
//
// Each launcher's handle (Stateful.MarshalState) is the controller's
// "state" and the value of each engine set.
type ClusterFile struct {
	Cluster    ClusterInfo     `json:"cluster"`
	Controller *LauncherRecord `json:"controller,omitempty"`
	Engines    EngineSets      `json:"engines"`
}

// ClusterInfo is the "cluster" object: ipyparallel's Cluster traits,
// plus the engine command this cluster starts engines with.
type ClusterInfo struct {
	ClusterID          string   `json:"cluster_id"`
	ControllerArgs     []string `json:"controller_args"`
	ControllerIP       string   `json:"controller_ip"`
	ControllerLocation string   `json:"controller_location"`
	Delay              float64  `json:"delay"`
	N                  int      `json:"n"`
	ProfileDir         string   `json:"profile_dir"`
	Class              string   `json:"class"`
	// EngineCmd is ours (ipyparallel ignores unknown keys): the engine
	// command, so `ipcluster engines` starts the same kind of engine.
	EngineCmd []string `json:"engine_cmd,omitempty"`
}

// LauncherRecord is a saved controller: launcher name and handle.
type LauncherRecord struct {
	Class string          `json:"class"`
	State json.RawMessage `json:"state"`
}

// EngineSets are the saved engine sets: one launcher name for all, and
// each set's handle by set id.
type EngineSets struct {
	Class string                     `json:"class"`
	Sets  map[string]json.RawMessage `json:"sets"`
}

// LastSet returns the launcher and recorded settings of the newest engine
// set ("" when there is none): what `ipcluster engines` repeats when not
// told otherwise.
func (f *ClusterFile) LastSet() (launcher string, options json.RawMessage) {
	ids := f.SetIDs()
	if len(ids) == 0 {
		return "", nil
	}
	m := readSetMeta(f.Engines.Sets[ids[len(ids)-1]], f.Engines.Class)
	return m.Launcher, m.Options
}

// SetLauncher is the launcher that started engine set id.
func SetLauncher(f *ClusterFile, id string) string {
	return readSetMeta(f.Engines.Sets[id], f.Engines.Class).Launcher
}

// Running reports whether the file records anything running.
func (f *ClusterFile) Running() bool {
	return f.Controller != nil || len(f.Engines.Sets) > 0
}

// SetIDs lists the engine-set ids in start order (ids are Unix times with
// an optional -k suffix, so numeric order is start order).
func (f *ClusterFile) SetIDs() []string {
	ids := make([]string, 0, len(f.Engines.Sets))
	for id := range f.Engines.Sets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return setIDLess(ids[i], ids[j]) })
	return ids
}

func setIDLess(a, b string) bool {
	ab, as, _ := strings.Cut(a, "-")
	bb, bs, _ := strings.Cut(b, "-")
	ai, aerr := strconv.Atoi(ab)
	bi, berr := strconv.Atoi(bb)
	if aerr != nil || berr != nil || ai == bi {
		as2, _ := strconv.Atoi(as)
		bs2, _ := strconv.Atoi(bs)
		if aerr == nil && berr == nil && as2 != bs2 {
			return as2 < bs2
		}
		return a < b
	}
	return ai < bi
}

// NewSetID returns an engine-set id not used in the file: the Unix time,
// with -1, -2, ... appended on collision (as ipyparallel does).
func (f *ClusterFile) NewSetID(now time.Time) string {
	base := fmt.Sprint(now.Unix())
	id := base
	for k := 1; ; k++ {
		if _, taken := f.Engines.Sets[id]; !taken {
			return id
		}
		id = fmt.Sprintf("%s-%d", base, k)
	}
}

// SetN reads the requested engine count "n" of a saved engine set.
func SetN(state json.RawMessage) int {
	var s struct {
		N int `json:"n"`
	}
	_ = json.Unmarshal(state, &s)
	return s.N
}

// ReadClusterFile reads a cluster file. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadClusterFile(path string) (*ClusterFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f ClusterFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// WriteClusterFile writes f atomically with mode 0600. Prefer
// UpdateClusterFile, which merges with concurrent writers.
func WriteClusterFile(path string, f *ClusterFile) error {
	if f.Engines.Sets == nil {
		f.Engines.Sets = map[string]json.RawMessage{}
	}
	if f.Cluster.ControllerArgs == nil {
		f.Cluster.ControllerArgs = []string{}
	}
	if f.Cluster.Class == "" {
		f.Cluster.Class = PythonClusterClass
	}
	return wire.WritePrivateJSON(path, f)
}

// UpdateClusterFile applies fn to the cluster file under an exclusive
// lock: fn gets the current content (nil when there is no file) and
// returns the new content. Returning nil, or a file with nothing running,
// removes the file. An error from fn leaves the file as it was.
func UpdateClusterFile(ctx context.Context, path string, fn func(cur *ClusterFile) (*ClusterFile, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	lock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	removeLock := false
	defer func() { lock.unlock(removeLock) }()

	cur, err := ReadClusterFile(path)
	if errors.Is(err, os.ErrNotExist) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if next == nil || !next.Running() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		removeLock = true
		return nil
	}
	return WriteClusterFile(path, next)
}

// ClusterFiles lists the cluster files of one profile directory, or of
// every profile under the IPython directory when profileDir is "".
func ClusterFiles(profileDir string) ([]string, error) {
	var pattern string
	if profileDir != "" {
		pattern = filepath.Join(wire.SecurityDir(profileDir), "cluster-*.json")
	} else {
		pattern = filepath.Join(wire.IPythonDir(), "profile_*", "security", "cluster-*.json")
	}
	files, err := filepath.Glob(pattern)
	sort.Strings(files)
	return files, err
}

// ClusterIDFromFile is the cluster id encoded in a cluster file's name.
func ClusterIDFromFile(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(strings.TrimPrefix(base, "cluster-"), ".json")
}

// AbbreviateProfileDir shortens a profile directory as ipcluster list
// does: the profile name when it is $IPYTHONDIR/profile_<name>, ~/... under
// the home directory, else the full path.
func AbbreviateProfileDir(dir string) string {
	if parent, base := filepath.Split(filepath.Clean(dir)); strings.HasPrefix(base, "profile_") &&
		filepath.Clean(parent) == filepath.Clean(wire.IPythonDir()) {
		return strings.TrimPrefix(base, "profile_")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		if rel, err := filepath.Rel(home, dir); err == nil && !strings.HasPrefix(rel, "..") {
			return "~" + string(filepath.Separator) + rel
		}
	}
	return dir
}

// ClusterLogFiles lists the log files the local and mpiexec launchers
// wrote for one cluster in a profile's log folder: ipcontroller-<id>-<pid>.log
// and ipengine-<id>-<set>[-<i>].log (without "<id>-" for the default
// cluster; set ids are Unix times, so the default cluster's names are told
// from a numeric cluster id's by their length).
func ClusterLogFiles(profileDir, clusterID string) ([]string, error) {
	prefix := ""
	if clusterID != "" {
		prefix = regexp.QuoteMeta(clusterID) + "-"
	}
	re := regexp.MustCompile(`^(ipcontroller-` + prefix + `\d+|ipengine-` + prefix + `\d{9,}(-\d+)?(-\d+)?)\.log$`)
	entries, err := os.ReadDir(wire.LogDir(profileDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && re.MatchString(e.Name()) {
			out = append(out, filepath.Join(wire.LogDir(profileDir), e.Name()))
		}
	}
	return out, nil
}
