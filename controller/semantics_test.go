package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestPythonSemantics runs testdata/python_semantics.py (the real
// ipyparallel 7.1 client) with three Python engines against our controller:
// retries that fail everywhere end as ipyparallel ends them, coalescing
// broadcast errors come back as the engine's own error, and an engine
// killed during a broadcast is reported once, by the client itself, with
// no stale reply from the controller.
func TestPythonSemantics(t *testing.T) {
	py, dir, c, ctx := pythonPeers(t, 3)
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

// TestNoAnswerForDepartedEngine: once an engine has died, a request that
// was on its way to it (the client had not seen the notification yet) gets
// no answer from the controller, which would race the client's own
// EngineError; an engine nobody was ever told about still gets one.
// Requests are served in order, so a later request's answer arriving
// proves the earlier one got none: no waiting for silence.
func TestNoAnswerForDepartedEngine(t *testing.T) {
	c, logs := startController(t, controller.Config{})
	cl := &cluster{t: t, c: c, logs: logs, ci: c.ClientInfo(), ei: c.EngineInfo()}
	cl.key = []byte(cl.ci.Key)
	reg := attackRegistry(t)
	var cancels []context.CancelFunc
	var wg sync.WaitGroup
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			engine.Run(ctx, engine.Config{Info: c.EngineInfo(), RequestedID: -1, Functions: reg, Logger: discardLogger()})
		}()
		testutil.Eventually(t, 30*time.Second, func() bool { return len(cl.engines()) == len(cancels) }, "engine registered")
	}
	t.Cleanup(func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	})
	uuids := cl.engines()
	dead, live := uuids[0], uuids[1]
	cancels[0]()
	testutil.Eventually(t, 30*time.Second, func() bool { return len(cl.engines()) == 1 }, "engine 0 unregistered")

	never := wire.NewID()
	mux := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
	hDead := mux.send([][]byte{[]byte(dead)}, "execute_request", map[string]any{"code": "1", "silent": false})
	hNever := mux.send([][]byte{[]byte(never)}, "execute_request", map[string]any{"code": "1", "silent": false})
	if m := cl.recvOrDead(mux, 10*time.Second); m.Parent.MsgID != hNever.MsgID || !strings.Contains(string(m.Content), "EngineError") {
		t.Fatalf("mux: first answer is to %s (dead %s, never %s): %s", m.Parent.MsgID, hDead.MsgID, hNever.MsgID, m.Content)
	}

	bc := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Broadcast), cl.key, "")
	send := func(targets [][]any, coalescing, afterDeath bool) string {
		t.Helper()
		content, bufs := applyContent(t, "echo", true, 5)
		md := map[string]any{"targets": targets, "is_broadcast": true, "is_coalescing": coalescing}
		if afterDeath {
			md[protocol.MetaCoalesceAfterDeath] = true
		}
		frames, h, err := bc.sess.Build(wire.Out{MsgType: "apply_request", Metadata: md, Content: content, Buffers: bufs})
		if err != nil {
			t.Fatal(err)
		}
		bc.sock.Send(frames)
		return h.MsgID
	}
	type answer struct {
		parent, orig string
		md           map[string]any
		content      string
	}
	next := func() answer {
		t.Helper()
		m := cl.recvOrDead(bc, 10*time.Second)
		a := answer{parent: m.Parent.MsgID, content: string(m.Content)}
		m.DecodeMetadata(&a.md)
		a.orig, _ = a.md["original_msg_id"].(string)
		return a
	}
	// Non-coalescing: the live engine answers, the dead one is left to the
	// client, the never-registered one gets EngineError.
	first := send([][]any{{dead, 0}, {live, 1}}, false, false)
	second := send([][]any{{never, 7}}, false, false)
	seen := map[string]bool{}
	for !seen[second+"_"+never] || !seen[first+"_"+live] {
		a := next()
		if a.parent == first+"_"+dead {
			t.Fatalf("the controller answered for the dead engine: %s", a.content)
		}
		seen[a.parent] = true
	}
	// Coalescing from a client that fails dead parts on the notification
	// (Python's): abandoned. The live engine answers in order, so the
	// second request's combined reply comes after the first's would have.
	first = send([][]any{{dead, 0}, {live, 1}}, true, false)
	second = send([][]any{{live, 1}}, true, false)
	if a := next(); a.orig != second || !strings.Contains(a.content, `"ok"`) {
		t.Fatalf("coalescing: first answer %+v, want the ok reply to %s (the abandoned one is %s)", a, second, first)
	}
	// Coalescing with coalesce_after_engine_death: the combined reply
	// comes, the dead engine's part an EngineError.
	first = send([][]any{{dead, 0}, {live, 1}}, true, true)
	a := next()
	parts, _ := json.Marshal(a.md[protocol.MetaCoalesced])
	var ps []protocol.CoalescedPart
	json.Unmarshal(parts, &ps)
	if a.orig != first || len(ps) != 2 || !ps[0].Died || ps[1].Status != "ok" || !strings.Contains(a.content, "EngineError") {
		t.Fatalf("coalescing after death: %+v, parts %s", a, parts)
	}
}
