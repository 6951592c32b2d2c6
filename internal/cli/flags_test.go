package cli

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/launchers"
)

// run executes cmd with args and returns the error, muting cobra's output.
func run(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

func TestStartFlags(t *testing.T) {
	var got *StartOptions
	cmd := NewCmdStart(&Factory{}, func(o *StartOptions) error { got = o; return nil })
	err := run(cmd, "-n", "3", "--profile", "p", "--cluster-id", "c", "--daemonize", "--ip", "*",
		"--engines", "Local", "--engine-cmd", `./sim --x 'a b'`, "--wait-timeout", "2.5", "--", "--scheme=lru", "--hwm=0")
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 3 || got.Profile != "p" || got.ClusterID != "c" || !got.Daemonize || got.IP != "*" ||
		got.Launcher != "Local" || got.Controller != "local" || got.EngineCmd != `./sim --x 'a b'` ||
		got.WaitTimeout != 2500*time.Millisecond || got.StopGrace != 5*time.Second {
		t.Errorf("options %+v", got)
	}
	if !reflect.DeepEqual(got.ControllerArgs, []string{"--scheme=lru", "--hwm=0"}) {
		t.Errorf("controller args %q", got.ControllerArgs)
	}

	cmd = NewCmdStart(&Factory{}, func(o *StartOptions) error { got = o; return nil })
	if err := run(cmd); err != nil || got.N < 1 || got.Daemonize || got.WaitTimeout != 0 {
		t.Errorf("defaults: %+v, %v", got, err)
	}
	// The default wait grows with the engines (1,000 local engines on 2
	// cores register in 135-155 s); a given one is kept.
	for _, c := range []struct {
		given time.Duration
		n     int
		want  time.Duration
	}{{0, 4, 120800 * time.Millisecond}, {0, 1000, 320 * time.Second}, {0, 0, 120 * time.Second}, {5 * time.Second, 1000, 5 * time.Second}} {
		if got := engineWaitTimeout(c.given, c.n); got != c.want {
			t.Errorf("engineWaitTimeout(%v, %d) = %v, want %v", c.given, c.n, got, c.want)
		}
	}
	cmd = NewCmdStart(&Factory{}, func(*StartOptions) error { return nil })
	if err := run(cmd, "stray"); err == nil {
		t.Error("positional argument before -- accepted")
	}
	cmd = NewCmdStart(&Factory{}, func(*StartOptions) error { return nil })
	if err := run(cmd, "--wait-timeout", "soon"); err == nil {
		t.Error("bad --wait-timeout accepted")
	}
}

func TestStopFlags(t *testing.T) {
	var got *StopOptions
	capture := func(o *StopOptions) error { got = o; return nil }
	if err := run(NewCmdStop(&Factory{}, capture), "a", "b", "--profile-dir", "/p"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.ClusterIDs, []string{"a", "b"}) || got.ProfileDir != "/p" || got.All {
		t.Errorf("options %+v", got)
	}
	if err := run(NewCmdStop(&Factory{}, capture), "--all"); err != nil || !got.All {
		t.Errorf("--all: %+v %v", got, err)
	}
	if err := run(NewCmdStop(&Factory{}, capture), "--all", "x"); err == nil {
		t.Error("--all with ids accepted")
	}
}

func TestListFlags(t *testing.T) {
	var got *ListOptions
	capture := func(o *ListOptions) error { got = o; return nil }
	if err := run(NewCmdList(&Factory{}, capture)); err != nil || got.Output != "text" {
		t.Errorf("default: %+v %v", got, err)
	}
	if err := run(NewCmdList(&Factory{}, capture), "-o", "JSON", "--profile", "x"); err != nil || got.Output != "json" || got.Profile != "x" {
		t.Errorf("-o JSON: %+v %v", got, err)
	}
	if err := run(NewCmdList(&Factory{}, capture), "-o", "xml"); err == nil {
		t.Error("-o xml accepted")
	}
}

func TestEnginesFlags(t *testing.T) {
	var got *EnginesOptions
	capture := func(o *EnginesOptions) error { got = o; return nil }
	if err := run(NewCmdEngines(&Factory{}, capture), "-n", "2", "--cluster-id", "c", "--engine-cmd", "./e"); err != nil {
		t.Fatal(err)
	}
	if got.N != 2 || got.ClusterID != "c" || got.EngineCmd != "./e" || !got.Daemonize || got.Launcher != "" {
		t.Errorf("options %+v", got)
	}
	if err := run(NewCmdEngines(&Factory{}, capture), "--daemonize=false"); err != nil || got.Daemonize {
		t.Errorf("--daemonize=false: %+v %v", got, err)
	}
}

func TestCleanFlags(t *testing.T) {
	var got *CleanOptions
	if err := run(NewCmdClean(&Factory{}, func(o *CleanOptions) error { got = o; return nil }), "--force", "--all"); err != nil {
		t.Fatal(err)
	}
	if !got.Force || !got.All || got.OneCluster {
		t.Errorf("options %+v", got)
	}
	capture := func(o *CleanOptions) error { got = o; return nil }
	// The default cluster's id is "": giving it still means one cluster.
	if err := run(NewCmdClean(&Factory{}, capture), "--cluster-id="); err != nil || !got.OneCluster || got.ClusterID != "" {
		t.Errorf("--cluster-id=: %+v %v", got, err)
	}
	if err := run(NewCmdClean(&Factory{}, capture), "--cluster-id=x", "--stop-grace=2"); err != nil || !got.OneCluster || got.ClusterID != "x" || got.StopGrace != 2*time.Second {
		t.Errorf("--cluster-id=x: %+v %v", got, err)
	}
	if err := run(NewCmdClean(&Factory{}, capture), "--cluster-id=x", "--all"); err == nil {
		t.Error("--all with --cluster-id accepted")
	}
}

func TestExecFlags(t *testing.T) {
	var got *ExecOptions
	capture := func(o *ExecOptions) error { got = o; return nil }
	if err := run(NewCmdExec(&Factory{}, capture), "fmt.Println(1)", "--targets", "0,2-3", "--timeout", "1m"); err != nil {
		t.Fatal(err)
	}
	if got.Code != "fmt.Println(1)" || !reflect.DeepEqual(got.Targets, []int{0, 2, 3}) || got.Timeout != time.Minute {
		t.Errorf("options %+v", got)
	}
	if err := run(NewCmdExec(&Factory{}, capture), "x"); err != nil || got.Targets != nil || got.Bare || got.Prefix {
		t.Errorf("defaults: targets %v, bare %v, %v", got.Targets, got.Bare, err)
	}
	if err := run(NewCmdExec(&Factory{}, capture), "x", "--bare"); err != nil || !got.Bare || got.Prefix {
		t.Errorf("--bare: %v %v, %v", got.Bare, got.Prefix, err)
	}
	if err := run(NewCmdExec(&Factory{}, capture), "x", "--prefix"); err != nil || got.Bare || !got.Prefix {
		t.Errorf("--prefix: %v %v, %v", got.Bare, got.Prefix, err)
	}
	if err := run(NewCmdExec(&Factory{}, capture), "x", "--prefix", "--bare"); err == nil {
		t.Error("--prefix with --bare accepted")
	}
	for _, bad := range [][]string{{}, {"a", "b"}, {"x", "--targets", "1-0"}, {"x", "-t", "one"}} {
		if err := run(NewCmdExec(&Factory{}, capture), bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestControllerFlags(t *testing.T) {
	var got *ControllerOptions
	capture := func(o *ControllerOptions) error { got = o; return nil }
	err := run(NewCmdController(&Factory{}, capture), "--ip", "*", "--location", "h", "--scheme", "lru", "--hwm", "0",
		"--ping", "100", "--transport", "gozmq", "--cluster-id", "", "--profile-dir", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if got.IP != "*" || got.Location != "h" || got.Scheme != "lru" || got.HWM != 0 || got.PingMS != 100 ||
		got.Transport != "gozmq" || !got.clusterIDSet || got.ProfileDir != "/p" {
		t.Errorf("options %+v", got)
	}
	if err := run(NewCmdController(&Factory{}, capture)); err != nil || got.clusterIDSet || got.PingMS != 3000 || got.HWM != 1 {
		t.Errorf("defaults %+v %v", got, err)
	}
}

func TestControllerConfigFromEnvironment(t *testing.T) {
	t.Setenv(protocol.EnvProfileDir, "/from/env")
	t.Setenv(protocol.EnvClusterID, "envid")
	t.Setenv(protocol.EnvSessionKey, "secret")
	o := &ControllerOptions{F: &Factory{}, PingMS: 250, HWM: 0, Scheme: "lru"}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProfileDir != "/from/env" || cfg.ClusterID != "envid" || string(cfg.Key) != "secret" ||
		cfg.HeartbeatPeriod != 250*time.Millisecond || cfg.HWM >= 0 || cfg.Transport == nil {
		t.Errorf("config %+v", cfg)
	}
	// Flags win over the environment, even an explicit empty cluster id.
	o.ProfileDir, o.ClusterID, o.clusterIDSet = "/flag", "", true
	if cfg, _ = o.config(); cfg.ProfileDir != "/flag" || cfg.ClusterID != "" {
		t.Errorf("flags did not win: %q %q", cfg.ProfileDir, cfg.ClusterID)
	}
	o.Transport = "nosuch"
	if _, err := o.config(); err == nil {
		t.Error("unknown transport accepted")
	}
}

func TestEngineFlags(t *testing.T) {
	var got *EngineOptions
	capture := func(o *EngineOptions) error { got = o; return nil }
	if err := run(NewCmdEngine(&Factory{}, capture), "--file", "f.json", "--id", "3", "--timeout", "2.5", "--profile", "x"); err != nil {
		t.Fatal(err)
	}
	if got.File != "f.json" || got.ID != 3 || got.Timeout != 2500*time.Millisecond || got.Profile != "x" {
		t.Errorf("options %+v", got)
	}
	if err := run(NewCmdEngine(&Factory{}, capture)); err != nil || got.ID != -1 || got.Timeout != 5*time.Second {
		t.Errorf("defaults %+v %v", got, err)
	}
}

// TestEngineConfig: --controller-timeout reaches engine.Config (30 s by
// default, 0 for never), and a non-MPI engine requests the id its launch
// environment gives unless --id is set.
func TestEngineConfig(t *testing.T) {
	for _, k := range []string{protocol.EnvControllerTimeout, protocol.EnvEngineIDBase, protocol.EnvEngineIndex, "SLURM_STEP_ID",
		"SLURM_PROCID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", protocol.EnvTransport} {
		t.Setenv(k, "")
	}
	f := &Factory{IO: IOStreams{ErrOut: io.Discard}}
	var got *EngineOptions
	capture := func(o *EngineOptions) error { got = o; return nil }
	config := func(args ...string) (engine.Config, error) {
		t.Helper()
		if err := run(NewCmdEngine(f, capture), args...); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return got.config()
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 30 * time.Second},
		{[]string{"--controller-timeout", "4.5"}, 4500 * time.Millisecond},
		{[]string{"--controller-timeout", "2m"}, 2 * time.Minute},
		{[]string{"--controller-timeout", "0"}, -1},
	} {
		cfg, err := config(tc.args...)
		if err != nil || cfg.HeartbeatTimeout != tc.want {
			t.Errorf("%q: HeartbeatTimeout %v, %v; want %v", tc.args, cfg.HeartbeatTimeout, err, tc.want)
		}
	}
	if _, err := config("--controller-timeout", "-1"); err == nil || !strings.Contains(err.Error(), "--controller-timeout") {
		t.Errorf("negative timeout: %v", err)
	}
	if err := run(NewCmdEngine(f, capture), "--controller-timeout", "soon"); err == nil {
		t.Error("--controller-timeout soon accepted")
	}

	t.Setenv(protocol.EnvEngineIDBase, "8")
	t.Setenv(protocol.EnvEngineIndex, "1")
	if cfg, err := config("--mpi=false"); err != nil || cfg.RequestedID != 9 {
		t.Errorf("array task 1 of base 8: requested %d, %v; want 9", cfg.RequestedID, err)
	}
	if cfg, err := config("--mpi=false", "--id", "3"); err != nil || cfg.RequestedID != 3 {
		t.Errorf("--id 3: requested %d, %v", cfg.RequestedID, err)
	}
	t.Setenv(protocol.EnvEngineIndex, "one")
	if _, err := config("--mpi=false"); err == nil || !strings.Contains(err.Error(), protocol.EnvEngineIndex) {
		t.Errorf("bad index: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	for err, want := range map[error]int{
		nil:                         0,
		errors.New("x"):             1,
		launchers.ErrAlreadyStarted: 10,
		fmt.Errorf("wrapped: %w", launchers.ErrAlreadyStarted): 10,
		fmt.Errorf("%w: c", ErrAlreadyStopped):                 11,
		errors.Join(errors.New("a"), ErrAlreadyStopped):        11,
		ErrNoCluster:           12,
		launchers.ErrNoCluster: 12,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestRootCommand(t *testing.T) {
	e := newTestEnv(t)
	root := NewRootCmd(e.f)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.out.String(), "ipcluster version") || !strings.Contains(e.out.String(), " transport") {
		t.Errorf("--version printed %q", e.out.String())
	}
	root = NewRootCmd(e.f)
	root.SetArgs(nil)
	if err := root.Execute(); ExitCode(err) != 1 {
		t.Errorf("no subcommand: %v", err)
	}
	root = NewRootCmd(e.f)
	root.SetArgs([]string{"list", "--log-level", "loud"})
	if err := root.Execute(); err == nil {
		t.Error("bad --log-level accepted")
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`prog`:                  {"prog"},
		`  a  b `:               {"a", "b"},
		`./sim --x 'a b' "c d"`: {"./sim", "--x", "a b", "c d"},
		`a\ b "q\"x" 'it''s'`:   {"a b", `q"x`, "its"},
		`""`:                    {""},
	} {
		got, err := splitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`'open`, `"open`} {
		if _, err := splitCommand(bad); err == nil {
			t.Errorf("splitCommand(%q) accepted", bad)
		}
	}
}
