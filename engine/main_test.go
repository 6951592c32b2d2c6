package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func sampleInfo(port int) *wire.EngineInfo {
	info := &wire.EngineInfo{HBPing: port + 6, HBPong: port + 7, Broadcast: []int{port + 8}}
	info.Interface = "tcp://127.0.0.1"
	info.Registration = port
	info.Control, info.Mux, info.Task, info.IOPub = port+1, port+2, port+3, port+4
	info.Key = "k"
	info.Defaults()
	return info
}

func TestLoadConnectionOrder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(protocol.EnvConnectionInfo, "")
	t.Setenv(protocol.EnvProfileDir, "")
	t.Setenv(protocol.EnvClusterID, "")

	// --file wins over everything.
	file := filepath.Join(dir, "explicit.json")
	if err := wire.WritePrivateJSON(file, sampleInfo(1000)); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(sampleInfo(2000))
	t.Setenv(protocol.EnvConnectionInfo, string(js))
	if info, err := LoadConnection(file, "", "", 0); err != nil || info.Registration != 1000 {
		t.Fatalf("file: %+v, %v", info, err)
	}
	// Then the environment's JSON.
	if info, err := LoadConnection("", dir, "", 0); err != nil || info.Registration != 2000 {
		t.Fatalf("env: %+v, %v", info, err)
	}
	t.Setenv(protocol.EnvConnectionInfo, "")

	// Then the profile, with the cluster id from the environment.
	profile := filepath.Join(dir, "profile_x")
	if err := wire.WritePrivateJSON(wire.EngineFile(profile, "c1"), sampleInfo(3000)); err != nil {
		t.Fatal(err)
	}
	t.Setenv(protocol.EnvProfileDir, profile)
	t.Setenv(protocol.EnvClusterID, "c1")
	if info, err := LoadConnection("", "", "", 0); err != nil || info.Registration != 3000 {
		t.Fatalf("profile from env: %+v, %v", info, err)
	}
	// Explicit arguments beat the environment.
	if _, err := LoadConnection("", profile, "other", 0); err == nil || !strings.Contains(err.Error(), "ipcontroller-other-engine.json") {
		t.Fatalf("explicit cluster id: %v", err)
	}
}

// TestLoadConnectionWaits: engines started beside their controller find
// the file once it is written.
func TestLoadConnectionWaits(t *testing.T) {
	t.Setenv(protocol.EnvConnectionInfo, "")
	profile := t.TempDir()
	path := wire.EngineFile(profile, "")
	// A half-written file (as Python writes it in place) is retried too.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"registration": `), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var info *wire.EngineInfo
	var err error
	go func() {
		defer close(done)
		info, err = LoadConnection("", profile, "", 10*time.Second)
	}()
	if werr := wire.WritePrivateJSON(path, sampleInfo(4000)); werr != nil {
		t.Fatal(werr)
	}
	<-done
	if err != nil || info.Registration != 4000 {
		t.Fatalf("%+v, %v", info, err)
	}

	_, err = LoadConnection("", t.TempDir(), "", 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no connection file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestMainUsage(t *testing.T) {
	if code := mainWithArgs("engine", []string{"--no-such-flag"}); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	if code := mainWithArgs("engine", []string{"--log-level", "loud"}); code != 2 {
		t.Errorf("bad level: exit %d", code)
	}
	t.Setenv(protocol.EnvConnectionInfo, "")
	defer func(d time.Duration) { connectionWait = d }(connectionWait)
	connectionWait = 10 * time.Millisecond
	if code := mainWithArgs("engine", []string{"--file", filepath.Join(t.TempDir(), "none.json"), "--timeout", "0.1"}); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestSecondsOrDuration(t *testing.T) {
	var d time.Duration
	v := secondsOrDuration{&d}
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "2.5": 2500 * time.Millisecond, "300ms": 300 * time.Millisecond} {
		if err := v.Set(in); err != nil || d != want {
			t.Errorf("%q: %v, %v", in, d, err)
		}
	}
	if err := v.Set("soon"); err == nil {
		t.Errorf("accepted garbage")
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{`2`: 2, `"SIGINT"`: 2, `"int"`: 2, `"SIGTERM"`: 15, `"15"`: 15} {
		s, err := parseSignal(json.RawMessage(in))
		if err != nil || int(s) != want {
			t.Errorf("%s: %v, %v", in, s, err)
		}
	}
	for _, in := range []string{`"SIGNOPE"`, `-1`, `{}`, `null`} {
		if _, err := parseSignal(json.RawMessage(in)); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestCompleteUTF8(t *testing.T) {
	s := []byte("aé€😀")
	for cut := 0; cut <= len(s); cut++ {
		n := completeUTF8(s[:cut])
		if !strings.HasPrefix(string(s), string(s[:n])) || !isValidPrefix(s[:n]) {
			t.Errorf("cut %d: kept %q", cut, s[:n])
		}
		if cut-n >= 4 {
			t.Errorf("cut %d: held back %d bytes", cut, cut-n)
		}
	}
}

func isValidPrefix(b []byte) bool { return strings.ToValidUTF8(string(b), "?") == string(b) }

// TestMainRuns drives Main's code path end to end: connection file from
// --file, registration, and a clean exit status after shutdown_request.
func TestMainRuns(t *testing.T) {
	f := newFake(t, fakeOptions{assignID: 2})
	file := filepath.Join(t.TempDir(), "engine.json")
	if err := wire.WritePrivateJSON(file, f.info); err != nil {
		t.Fatal(err)
	}
	code := make(chan int, 1)
	go func() {
		code <- mainWithArgs("engine", []string{"--file", file, "--id", "2", "--log-level", "debug", "--timeout", "5"})
	}()
	select {
	case <-f.completed:
	case <-time.After(waitTimeout):
		t.Fatal("Main did not register")
	}
	var id int
	f.mu.Lock()
	json.Unmarshal(f.regReq["id"], &id)
	f.mu.Unlock()
	if id != 2 {
		t.Errorf("--id 2 requested id %d", id)
	}
	shutdownMain(t, f, code)
}

// shutdownMain asks the engine Main runs to shut down and checks that
// Main returns 0.
func shutdownMain(t *testing.T, f *fake, code <-chan int) {
	t.Helper()
	f.send(f.control, "shutdown_request", map[string]any{"restart": false}, nil, nil)
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit status %d after shutdown_request", c)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Main did not return after shutdown_request")
	}
}
