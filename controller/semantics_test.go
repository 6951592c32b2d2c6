package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestPythonSemantics runs testdata/python_semantics.py (the real
// ipyparallel 7.1 client) with three Python engines against our controller:
// retries that fail everywhere end as ipyparallel ends them, coalescing
// broadcast errors come back as the engine's own error, and an engine
// killed during a broadcast is reported once, by the client itself, with
// no stale reply from the controller.
func TestPythonSemantics(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	dir := t.TempDir()
	c, err := controller.New(controller.Config{ProfileDir: dir, HeartbeatPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := 0; i < 3; i++ {
		startPythonEngine(t, ctx, py, c.EngineFile(), dir, fmt.Sprintf("engine%d.log", i), "WARN")
	}
	outFile := filepath.Join(dir, "out.json")
	cmd := exec.CommandContext(ctx, py, "testdata/python_semantics.py", c.ClientFile(), outFile)
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	chatter, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, chatter)
	}
	for _, bad := range []string{"stale result", "unknown result", "Traceback", "InvalidStateError"} {
		if strings.Contains(string(chatter), bad) {
			t.Errorf("the Python client complained (%q):\n%s", bad, chatter)
		}
	}
	raw, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	type exc struct {
		Type  string   `json:"type"`
		EName string   `json:"ename"`
		EList []string `json:"elist"`
	}
	var got struct {
		CoalescedAllRaise  exc     `json:"coalesced_all_raise"`
		CoalescedSomeRaise exc     `json:"coalesced_some_raise"`
		CoalescedOK        []int   `json:"coalesced_ok"`
		RetriesTimeout     exc     `json:"retries_timeout"`
		RetriesWaited      float64 `json:"retries_timeout_waited"`
		RetriesNoTimeout   exc     `json:"retries_no_timeout"`
		RetriesTargets     exc     `json:"retries_targets"`
		BcastDeath         exc     `json:"bcast_death"`
		BcastDeathResults  []any   `json:"bcast_death_results"`
		CoalescedDeath     exc     `json:"coalesced_death"`
		AfterDeath         []int   `json:"after_death"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
	// Every engine raised: the engine's own error type, as for one engine.
	check("coalesced, every engine raised", got.CoalescedAllRaise, exc{Type: "RemoteError", EName: "ZeroDivisionError"})
	// One of two raised: the 7.1 client can only raise one RemoteError from
	// one reply; it is the failing engine's own.
	check("coalesced, one engine raised", got.CoalescedSomeRaise, exc{Type: "RemoteError", EName: "ZeroDivisionError"})
	check("coalesced, ok", got.CoalescedOK, []int{7, 7})
	check("retries with a timeout", got.RetriesTimeout, exc{Type: "RemoteError", EName: "TaskTimeout"})
	if got.RetriesWaited < 1.4 {
		t.Errorf("TaskTimeout after %.2fs, before the task's 1.5 s timeout", got.RetriesWaited)
	}
	check("retries without a timeout", got.RetriesNoTimeout, exc{Type: "RemoteError", EName: "ValueError"})
	check("retries, every target failed", got.RetriesTargets, exc{Type: "RemoteError", EName: "ImpossibleDependency"})
	check("broadcast, an engine died", got.BcastDeath, exc{Type: "CompositeError", EList: []string{"EngineError"}})
	check("broadcast results", got.BcastDeathResults, []any{"RemoteError:EngineError", 3.0})
	check("coalesced, an engine died", got.CoalescedDeath, exc{Type: "RemoteError", EName: "EngineError"})
	check("after the deaths", got.AfterDeath, []int{9})
}
