package engine

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// clearIDEnv empties every variable RequestedIDFromEnv reads.
func clearIDEnv(t *testing.T) {
	t.Helper()
	clearLauncherEnv(t)
	for _, k := range []string{protocol.EnvEngineIndex, "SLURM_PROCID"} {
		t.Setenv(k, "")
	}
}

func TestRequestedIDFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"nothing: the controller picks", nil, -1},
		{"base alone", map[string]string{protocol.EnvEngineIDBase: "5"}, 5},
		{"index alone", map[string]string{protocol.EnvEngineIndex: "3"}, 3},
		{"base + index", map[string]string{protocol.EnvEngineIDBase: "5", protocol.EnvEngineIndex: "3"}, 8},
		{"srun step: base + procid", map[string]string{protocol.EnvEngineIDBase: "10", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}, 12},
		{"srun step without base", map[string]string{"SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}, 2},
		{"batch script: procid without step", map[string]string{"SLURM_PROCID": "0"}, -1},
		{"batch script with base", map[string]string{"SLURM_PROCID": "0", protocol.EnvEngineIDBase: "7"}, 7},
		{"index wins over the step's procid", map[string]string{protocol.EnvEngineIndex: "1", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}, 1},
		{"largest id", map[string]string{protocol.EnvEngineIDBase: "2147483646", protocol.EnvEngineIndex: "1"}, 1<<31 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearIDEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := RequestedIDFromEnv()
			if err != nil || got != tc.want {
				t.Errorf("RequestedIDFromEnv() = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestRequestedIDFromEnvBadValues(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // in the error
	}{
		{map[string]string{protocol.EnvEngineIndex: "-1"}, `$IPP_ENGINE_INDEX="-1" is not a non-negative integer`},
		{map[string]string{protocol.EnvEngineIndex: "two"}, `$IPP_ENGINE_INDEX="two"`},
		{map[string]string{protocol.EnvEngineIndex: "1.5"}, `$IPP_ENGINE_INDEX="1.5"`},
		{map[string]string{protocol.EnvEngineIDBase: "x", protocol.EnvEngineIndex: "1"}, `$IPP_ENGINE_ID_BASE="x"`},
		{map[string]string{protocol.EnvEngineIDBase: "99999999999999999999"}, `$IPP_ENGINE_ID_BASE="99999999999999999999"`},
		{map[string]string{"SLURM_STEP_ID": "0", "SLURM_PROCID": "first"}, `$SLURM_PROCID="first"`},
		{map[string]string{protocol.EnvEngineIDBase: "2147483647", protocol.EnvEngineIndex: "1"}, "2147483647 + 1 is beyond the largest engine id"},
		{map[string]string{protocol.EnvEngineIDBase: "4294967296"}, "$IPP_ENGINE_ID_BASE=4294967296 is beyond the largest engine id"},
	} {
		clearIDEnv(t)
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		got, err := RequestedIDFromEnv()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %d, %v; want an error with %q", tc.env, got, err, tc.want)
		}
	}
}

func TestApplyRequestedID(t *testing.T) {
	clearIDEnv(t)
	t.Setenv(protocol.EnvEngineIDBase, "20")
	t.Setenv(protocol.EnvEngineIndex, "4")

	cfg := Config{RequestedID: -1}
	if err := ApplyRequestedID(&cfg); err != nil || cfg.RequestedID != 24 {
		t.Errorf("non-MPI engine: id %d, %v; want 24", cfg.RequestedID, err)
	}
	// --id wins.
	cfg = Config{RequestedID: 2}
	if err := ApplyRequestedID(&cfg); err != nil || cfg.RequestedID != 2 {
		t.Errorf("--id 2: id %d, %v", cfg.RequestedID, err)
	}
	// An MPI engine asks for base + rank once MPI is up, not base + index.
	cfg = Config{RequestedID: -1, MPI: true}
	if err := ApplyRequestedID(&cfg); err != nil || cfg.RequestedID != -1 {
		t.Errorf("MPI engine: id %d, %v; want -1 until MPI gives the rank", cfg.RequestedID, err)
	}
	t.Setenv(protocol.EnvEngineIndex, "-4")
	cfg = Config{RequestedID: -1}
	if err := ApplyRequestedID(&cfg); err == nil {
		t.Errorf("bad index accepted: id %d", cfg.RequestedID)
	}
}

// TestMainBadEngineIndex: a bad index ends Main with status 2 at once,
// before it waits for a connection file that does not exist.
func TestMainBadEngineIndex(t *testing.T) {
	clearIDEnv(t)
	t.Setenv(protocol.EnvConnectionInfo, "")
	defer func(d time.Duration) { connectionWait = d }(connectionWait)
	connectionWait = time.Hour // a wait would show as a test timeout
	missing := filepath.Join(t.TempDir(), "none.json")
	t.Setenv(protocol.EnvEngineIndex, "x")
	if code := mainWithArgs("engine", []string{"--file", missing}); code != 2 {
		t.Errorf("IPP_ENGINE_INDEX=x: exit %d, want 2", code)
	}
}

// TestMainRequestsIndexedID: an engine of an array job (IPP_ENGINE_INDEX)
// asks the controller for IPP_ENGINE_ID_BASE + index.
func TestMainRequestsIndexedID(t *testing.T) {
	clearIDEnv(t)
	t.Setenv(protocol.EnvEngineIDBase, "10")
	t.Setenv(protocol.EnvEngineIndex, "3")
	f := newFake(t, fakeOptions{assignID: 13})
	file := filepath.Join(t.TempDir(), "engine.json")
	if err := wire.WritePrivateJSON(file, f.info); err != nil {
		t.Fatal(err)
	}
	code := make(chan int, 1)
	go func() { code <- mainWithArgs("engine", []string{"--file", file, "--mpi=false"}) }()
	select {
	case <-f.completed:
	case c := <-code:
		t.Fatalf("Main exited with %d before registering", c)
	case <-time.After(waitTimeout):
		t.Fatal("Main did not register")
	}
	var id *int
	f.mu.Lock()
	json.Unmarshal(f.regReq["id"], &id)
	f.mu.Unlock()
	if id == nil || *id != 13 {
		t.Errorf("requested id %v, want 13 (base 10 + index 3)", id)
	}
	shutdownMain(t, f, code)
}
