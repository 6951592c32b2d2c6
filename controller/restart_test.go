package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The restart tests run their controller in a child process (the test
// binary again) so that it can be SIGKILLed: restartChildEnv names its
// profile directory, restartRestoreEnv=1 makes it a restore. The child
// also plays the task database (the db helper's part): every 20 ms it
// writes the records without a result to restartDBFile, and a restored
// child loads them from there.
const (
	restartChildEnv   = "CONTROLLER_TEST_RESTART_DIR"
	restartRestoreEnv = "CONTROLLER_TEST_RESTART_RESTORE"
	restartDBFile     = "inflight.json"
	// lostTaskID is a task the restored child adds as in flight on an
	// engine that never had it: it must fail with TaskLost.
	lostTaskID = "lost-with-the-controller"
)

func init() {
	// For the engine processes of these tests (engine.Main, default
	// registry).
	engine.Register("restart.sleep", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
}

// restartChild runs the controller role of the restart tests; ok is false
// in the test process itself.
func restartChild() (code int, ok bool) {
	dir := os.Getenv(restartChildEnv)
	if dir == "" {
		return 0, false
	}
	time.AfterFunc(3*time.Minute, func() { os.Exit(3) }) // an abandoned child
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := controller.Config{ProfileDir: dir, HeartbeatPeriod: 200 * time.Millisecond, HeartbeatMisses: 10,
		Restore: os.Getenv(restartRestoreEnv) == "1", RestoreGrace: 30 * time.Second, Logger: log}
	db := filepath.Join(dir, restartDBFile)
	if cfg.Restore {
		controller.SetRestoredTasks(&cfg, func() []*controller.TaskRecord {
			var recs []*controller.TaskRecord
			data, err := os.ReadFile(db)
			if err == nil {
				err = json.Unmarshal(data, &recs)
			}
			if err != nil {
				log.Error("test db", "err", err)
			}
			for _, r := range recs {
				if r.EngineUUID != "" {
					recs = append(recs, &controller.TaskRecord{MsgID: lostTaskID, Header: json.RawMessage(`{}`), EngineUUID: r.EngineUUID, Queue: "task"})
					break
				}
			}
			return recs
		})
	}
	c, err := controller.New(cfg)
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart child:", err)
		transport.Shutdown()
		return 1, true
	}
	for range time.Tick(20 * time.Millisecond) {
		if data, err := json.Marshal(controller.IncompleteRecords(c)); err == nil {
			_ = wire.WritePrivateFile(db, data)
		}
	}
	return 0, true
}

// restartProc is a child process of a restart test.
type restartProc struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan error
}

func startProc(t *testing.T, env []string, args ...string) *restartProc {
	t.Helper()
	p := &restartProc{cmd: exec.Command(os.Args[0], args...), out: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	return p
}

func (p *restartProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
}

func startRestartController(t *testing.T, dir string, restore bool) *restartProc {
	env := []string{restartChildEnv + "=" + dir, restartRestoreEnv + "=0"}
	if restore {
		env[1] = restartRestoreEnv + "=1"
	}
	return startProc(t, env, "-test.run=^$")
}

// TestRestartKill9: a controller with two Go engine processes and a Go
// client with tasks in flight is SIGKILLed and restored on the same
// ports. The engines register again with their ids, the replies they
// finished meanwhile reach the restored hub, the client gets every result,
// and a task the engines never had fails with TaskLost instead of staying
// pending.
func TestRestartKill9(t *testing.T) {
	dir := t.TempDir()
	ctlA := startRestartController(t, dir, false)
	engineFile := wire.EngineFile(dir, "")
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(engineFile)
		return err == nil
	}, "the controller wrote no connection file:\n%s", ctlA.out)
	var engines []*restartProc
	for range 2 {
		engines = append(engines, startProc(t, []string{engineChildEnv + "=1"},
			"--file", engineFile, "--controller-timeout", "60", "--log-level", "info", "--mpi=false"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	clientLog := &testutil.SyncBuffer{}
	client, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(newLogger(clientLog)), ipp.WithReconnectTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WaitForEngines(ctx, 2, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatalf("%v\ncontroller:\n%s", err, ctlA.out)
	}
	before := engineMap(t, ctx, client)

	// One load-balanced task and one direct task per engine, all still
	// running when the controller dies; they end while it is away.
	lb, err := client.LoadBalanced().Apply(ctx, "restart.sleep", 1500)
	if err != nil {
		t.Fatal(err)
	}
	d0, err := client.View(0).Apply(ctx, "restart.sleep", 2500)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := client.View(1).Apply(ctx, "restart.sleep", 800)
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Concat(lb.MsgIDs(), d0.MsgIDs(), d1.MsgIDs())
	// The stand-in database has them all, each on its engine.
	db := filepath.Join(dir, restartDBFile)
	testutil.Eventually(t, 30*time.Second, func() bool {
		var recs []controller.TaskRecord
		data, err := os.ReadFile(db)
		if err != nil || json.Unmarshal(data, &recs) != nil {
			return false
		}
		on := map[string]bool{}
		for _, r := range recs {
			if r.EngineUUID != "" {
				on[r.MsgID] = true
			}
		}
		return on[ids[0]] && on[ids[1]] && on[ids[2]]
	}, "the tasks never showed as assigned in %s", db)

	ctlA.kill9(t)
	// The engines notice the silence (3 heartbeats of 200 ms) before the
	// controller comes back, so that they register again by themselves.
	for i, e := range engines {
		testutil.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(e.out.String(), "controller silent")
		}, "engine %d did not notice its controller's death:\n%s", i, e.out)
	}
	ctlB := startRestartController(t, dir, true)

	for i, ar := range []*ipp.AsyncResult{lb, d0, d1} {
		v, err := ar.Get(ctx)
		if err != nil {
			t.Fatalf("task %d after the restart: %v\nrestored controller:\n%s\nengine 0:\n%s\nengine 1:\n%s\nclient:\n%s", i, err, ctlB.out, engines[0].out, engines[1].out, clientLog)
		}
		want := []int{1500, 2500, 800}[i]
		if fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("task %d: %v, want %d", i, v, want)
		}
	}
	if err := client.Err(); err != nil {
		t.Fatalf("client after the restart: %v", err)
	}
	// Same ids, same uuids, seen by a client that connects afresh.
	fresh, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var after map[int]string
	testutil.Eventually(t, 60*time.Second, func() bool {
		after = engineMap(t, ctx, fresh)
		return fmt.Sprint(after) == fmt.Sprint(before)
	}, "engines after the restart differ from before %v\n%s", before, ctlB.out)
	for _, id := range []int{0, 1} {
		v, err := fresh.View(id).Apply(ctx, "restart.sleep", 1)
		if err == nil {
			_, err = v.Get(ctx)
		}
		if err != nil {
			t.Errorf("engine %d after the restart: %v", id, err)
		}
	}
	// The task the engines never had is failed, not left pending.
	testutil.Eventually(t, 30*time.Second, func() bool {
		rs, err := fresh.ResultStatus(ctx, lostTaskID)
		return err == nil && slices.Contains(rs.Completed, lostTaskID)
	}, "%s never completed (TaskLost) on the restored controller:\n%s", lostTaskID, ctlB.out)
	for i, e := range engines {
		if !strings.Contains(e.out.String(), "registering again with the controller") {
			t.Errorf("engine %d log does not show a registration again:\n%s", i, e.out)
		}
	}
}

// engineMap is id -> uuid as a client sees it.
func engineMap(t *testing.T, ctx context.Context, c *ipp.Client) map[int]string {
	t.Helper()
	infos, err := c.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]string{}
	for _, e := range infos {
		m[e.ID] = e.UUID
	}
	return m
}

// TestRestoreOntoRunningController: a restore while the cluster's
// controller still holds its ports fails clearly and leaves that
// controller and its connection files alone.
func TestRestoreOntoRunningController(t *testing.T) {
	dir := t.TempDir()
	running := startRestartController(t, dir, false)
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(wire.ClientFile(dir, ""))
		return err == nil
	}, "no connection file:\n%s", running.out)
	before, err := os.ReadFile(wire.EngineFile(dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{ProfileDir: dir, Restore: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start()
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "cannot restore") || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("restore onto a running controller: %v, want a refusal saying the controller may still run", err)
	}
	after, err := os.ReadFile(wire.EngineFile(dir, ""))
	if err != nil || string(after) != string(before) {
		t.Fatalf("the running controller's engine file was touched: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("the running controller stopped answering: %v", err)
	}
	cl.Close()
}

// TestRestoreNothing: a restore without connection files says there is
// nothing to restore.
func TestRestoreNothing(t *testing.T) {
	_, err := controller.New(controller.Config{ProfileDir: t.TempDir(), Restore: true})
	if err == nil || !strings.Contains(err.Error(), "nothing to restore") {
		t.Fatalf("restore of an empty profile: %v", err)
	}
	_, err = controller.New(controller.Config{Restore: true})
	if err == nil {
		t.Fatal("restore without a profile succeeded")
	}
}

// crashFiles leaves behind what a killed controller leaves: its
// connection files (Close removes them, so they are written back).
func crashFiles(t *testing.T, dir string, c *controller.Controller) {
	t.Helper()
	ei, ci := c.EngineInfo(), c.ClientInfo()
	c.Close()
	if err := wire.WritePrivateJSON(wire.EngineFile(dir, ""), ei); err != nil {
		t.Fatal(err)
	}
	if err := wire.WritePrivateJSON(wire.ClientFile(dir, ""), ci); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreStaleTableOtherKey: an engine table written for another key
// (another cluster's, left in the profile) is ignored: its uuids hold no
// ids, and an engine signing with that other key is not let in.
func TestRestoreStaleTableOtherKey(t *testing.T) {
	dir := t.TempDir()
	first, _ := startController(t, controller.Config{ProfileDir: dir})
	crashFiles(t, dir, first)
	const intruder = "11111111-2222222222222222222222222"
	stale := fmt.Sprintf(`{"engines": {"0": %q}, "next_id": 1, "key_sha256": "%064x", "go_engines": [%q]}`, intruder, 7, intruder)
	if err := wire.WritePrivateFile(controller.EngineStateFile(dir, ""), []byte(stale)); err != nil {
		t.Fatal(err)
	}
	restored, logs := startController(t, controller.Config{ProfileDir: dir, Restore: true, HeartbeatPeriod: 200 * time.Millisecond})
	if !strings.Contains(logs.String(), "another key") {
		t.Errorf("the restore did not say it ignored the stale table:\n%s", logs)
	}
	// An engine of the other cluster (signing with its key) asking for
	// id 0 gets no answer at all.
	other := restored.EngineInfo()
	other.Key = "not-this-cluster"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := engine.Run(ctx, engine.Config{Info: other, RequestedID: 0, RegistrationTimeout: time.Second, Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "no registration_reply") {
		t.Fatalf("engine with another key: %v, want no registration_reply", err)
	}
	// Id 0 was not held for the stale uuid: this cluster's engine gets it.
	ectx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- engine.Run(ectx, engine.Config{Info: restored.EngineInfo(), RequestedID: 0, Logger: discardLogger()})
	}()
	defer func() { stop(); <-done }()
	testutil.Eventually(t, 30*time.Second, func() bool {
		es := restored.Engines()
		return len(es) == 1 && es[0].ID == 0
	}, "this cluster's engine did not get id 0")
	// The table now names that engine, under this cluster's key.
	var data []byte
	testutil.Eventually(t, 30*time.Second, func() bool {
		data, _ = os.ReadFile(controller.EngineStateFile(dir, ""))
		return strings.Contains(string(data), restored.Engines()[0].UUID)
	}, "the engine table does not name the registered engine")
	if strings.Contains(string(data), intruder) {
		t.Errorf("engine table after the restore still names the stale uuid: %s", data)
	}
	if fi, err := os.Stat(controller.EngineStateFile(dir, "")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("engine table mode: %v %v, want 0600", fi.Mode(), err)
	}
}

// TestRestartPythonEngine: a Python ipyparallel engine never registers
// again, but it keeps answering heartbeats (it gives up only after 50
// missed checks) and its sockets reconnect: the restored controller takes
// it back from the engine table at its first pong, with its id, and it
// runs code again.
func TestRestartPythonEngine(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	dir := t.TempDir()
	ctlA := startRestartController(t, dir, false)
	engineFile := wire.EngineFile(dir, "")
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(engineFile)
		return err == nil
	}, "the controller wrote no connection file:\n%s", ctlA.out)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	startPythonEngine(t, ctx, py, engineFile, dir, "engine.log", "INFO")
	client, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.WaitForEngines(ctx, 1, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatalf("%v\n%s", err, ctlA.out)
	}
	before := engineMap(t, ctx, client)
	client.Close()
	// The controller writes its engine table after a registration, not
	// during it (and less often as the table grows): a kill -9 right
	// after the client saw the engine could come before the write, and
	// the restored controller would not know this engine (CI, loaded,
	// 2026-12-07). Restoring from the table is what is tested here.
	testutil.Eventually(t, 30*time.Second, func() bool {
		data, _ := os.ReadFile(controller.EngineStateFile(dir, ""))
		return strings.Contains(string(data), before[0])
	}, "the engine table does not name the registered engine %v", before)

	ctlA.kill9(t)
	ctlB := startRestartController(t, dir, true)
	fresh, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var after map[int]string
	testutil.Eventually(t, 60*time.Second, func() bool {
		after = engineMap(t, ctx, fresh)
		return fmt.Sprint(after) == fmt.Sprint(before)
	}, "the Python engine did not come back as %v:\n%s", before, ctlB.out)
	ar, err := fresh.View(0).Execute(ctx, "x = 6 * 7")
	if err == nil {
		err = ar.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("execute on the Python engine after the restart: %v\n%s", err, ctlB.out)
	}
}

// TestRestoreFromTableWithoutFiles: after ipcluster removed a dead
// controller's connection files, a restore takes the ports and key from
// the engine table; tasks the database had in flight fail with TaskLost:
// at once when they never reached an engine, after RestoreGrace when
// their engine is unknown.
func TestRestoreFromTableWithoutFiles(t *testing.T) {
	dir := t.TempDir()
	first, _ := startController(t, controller.Config{ProfileDir: dir})
	table, err := os.ReadFile(controller.EngineStateFile(dir, ""))
	if err != nil {
		t.Fatalf("no engine table after Start: %v", err)
	}
	ei, ci := first.EngineInfo(), first.ClientInfo()
	first.Close()
	if _, err := os.Stat(wire.EngineFile(dir, "")); err == nil {
		t.Fatal("Close left the engine file")
	}
	if err := wire.WritePrivateFile(controller.EngineStateFile(dir, ""), table); err != nil {
		t.Fatal(err)
	}
	cfg := controller.Config{ProfileDir: dir, Restore: true, RestoreGrace: time.Second}
	hdr := json.RawMessage(`{"msg_id": "x", "msg_type": "apply_request"}`)
	controller.SetRestoredTasks(&cfg, func() []*controller.TaskRecord {
		return []*controller.TaskRecord{
			{MsgID: "queued", Header: hdr, Queue: "task"},
			{MsgID: "on-a-ghost", Header: hdr, Queue: "task", EngineUUID: "ghost"},
		}
	})
	restored, _ := startController(t, cfg)
	if got := restored.EngineInfo(); fmt.Sprint(*got) != fmt.Sprint(*ei) {
		t.Errorf("engine side after the restore:\n%+v\nwant\n%+v", *got, *ei)
	}
	if got := restored.ClientInfo(); fmt.Sprint(*got) != fmt.Sprint(*ci) {
		t.Errorf("client side after the restore:\n%+v\nwant\n%+v", *got, *ci)
	}
	if _, err := wire.LoadClientInfo(wire.ClientFile(dir, "")); err != nil {
		t.Errorf("the restore did not write the client file again: %v", err)
	}
	if got := controller.ResultContent(restored, "queued"); !strings.Contains(got, "TaskLost") || !strings.Contains(got, "resubmit") {
		t.Errorf("queued task after the restore: %s", got)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(controller.ResultContent(restored, "on-a-ghost"), "TaskLost")
	}, "the task on an unknown engine did not fail after RestoreGrace")
	t.Logf("on-a-ghost: %s", controller.ResultContent(restored, "on-a-ghost"))
}

// TestRestoreCurve: a CURVE cluster whose controller made its own key
// pair is restored with the same key (from the engine table), so that its
// peers, which trust only that key, can connect.
func TestRestoreCurve(t *testing.T) {
	needCurve(t)
	dir := t.TempDir()
	first, _ := startController(t, controller.Config{ProfileDir: dir, Curve: controller.CurveOn})
	table, err := os.ReadFile(controller.EngineStateFile(dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := first.EngineInfo().ServerKey()
	crashFiles(t, dir, first)
	if err := wire.WritePrivateFile(controller.EngineStateFile(dir, ""), table); err != nil {
		t.Fatal(err)
	}
	restored, _ := startController(t, controller.Config{ProfileDir: dir, Restore: true, Curve: controller.CurveOn})
	if got := restored.EngineInfo().ServerKey(); got != want || !restored.CurveEnabled() {
		t.Fatalf("restored curve_serverkey %q (curve %v), want %q", got, restored.CurveEnabled(), want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatalf("client with the old curve_serverkey: %v", err)
	}
	cl.Close()
	// Without the table, and without the key, the restore says what it needs.
	crashFiles(t, dir, restored)
	_, err = controller.New(controller.Config{ProfileDir: dir, Restore: true, Curve: controller.CurveOn})
	if err == nil || !strings.Contains(err.Error(), protocol.EnvCurveSecretKey) {
		t.Fatalf("restore of a CURVE cluster without its key: %v", err)
	}
}

// TestRestartPythonClient: the real ipyparallel client submits to Go
// engines and goes away; the controller is SIGKILLed while the tasks run
// and restored; a new Python client gets both results with get_result
// (the tasks were in the stand-in database as in flight, and their
// engines delivered the replies to the restored hub).
func TestRestartPythonClient(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	dir := t.TempDir()
	ctlA := startRestartController(t, dir, false)
	engineFile, clientFile := wire.EngineFile(dir, ""), wire.ClientFile(dir, "")
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(clientFile)
		return err == nil
	}, "the controller wrote no connection file:\n%s", ctlA.out)
	var engines []*restartProc
	for range 2 {
		engines = append(engines, startProc(t, []string{engineChildEnv + "=1"},
			"--file", engineFile, "--controller-timeout", "60", "--log-level", "info", "--mpi=false"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	python := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, py, append([]string{"testdata/python_restart_client.py"}, args...)...)
		cmd.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
		var stderr testutil.SyncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python client %v: %v\n%s\ncontroller:\n%s", args, err, &stderr, ctlA.out)
		}
		return out
	}
	var ids []string
	if err := json.Unmarshal(python("submit", clientFile), &ids); err != nil || len(ids) != 2 {
		t.Fatalf("submitted %v: %v", ids, err)
	}
	db := filepath.Join(dir, restartDBFile)
	testutil.Eventually(t, 30*time.Second, func() bool {
		var recs []controller.TaskRecord
		data, err := os.ReadFile(db)
		if err != nil || json.Unmarshal(data, &recs) != nil {
			return false
		}
		n := 0
		for _, r := range recs {
			if slices.Contains(ids, r.MsgID) && r.EngineUUID != "" {
				n++
			}
		}
		return n == 2
	}, "the tasks never showed as in flight in %s", db)
	ctlA.kill9(t)
	ctlB := startRestartController(t, dir, true)
	var got map[string]string
	raw := python(append([]string{"fetch", clientFile}, ids...)...)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("python fetch printed %q: %v", raw, err)
	}
	t.Logf("python fetch: %s", raw)
	for _, id := range ids {
		if got[id] != "ok" {
			t.Errorf("get_result(%s) after the restart: %q\nrestored controller:\n%s\nengine 0:\n%s\nengine 1:\n%s", id, got[id], ctlB.out, engines[0].out, engines[1].out)
		}
	}
}
