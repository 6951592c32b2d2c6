package controller_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// dbChildEnv makes the test binary a controller process with a sqlite task
// database in the profile the variable names, and two engines, for the
// test that SIGKILLs it.
const dbChildEnv = "CONTROLLER_TEST_DB_DIR"

// dbChild runs that controller; ok is false in the test process itself.
func dbChild() (code int, ok bool) {
	dir := os.Getenv(dbChildEnv)
	if dir == "" {
		return 0, false
	}
	c, err := controller.New(controller.Config{ProfileDir: dir, DB: controller.DBSQLite, Logger: discardLogger()})
	if err == nil {
		err = c.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child controller:", err)
		return 1, true
	}
	// Bounded, so that a test that dies before killing us leaves nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := engine.NewRegistry()
	if err := reg.Register("echo", func(x int) int { return x }); err != nil {
		fmt.Fprintln(os.Stderr, "child controller:", err)
		return 1, true
	}
	for range 2 {
		go engine.Run(ctx, engine.Config{Info: c.EngineInfo(), RequestedID: -1, Functions: reg, Logger: discardLogger()})
	}
	<-ctx.Done()
	c.Close()
	return 0, true
}

// hubQuery sends one hub query to c with its key and returns the reply.
func hubQuery(t *testing.T, c *controller.Controller, msgType string, content any) *wire.Message {
	t.Helper()
	ci := c.ClientInfo()
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	h := q.send(nil, msgType, content)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := q.recv(time.Until(deadline)); m.Parent.MsgID == h.MsgID {
			return m
		}
	}
	t.Fatalf("no %s reply", msgType)
	return nil
}

func decodeContent(t *testing.T, m *wire.Message) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(m.Content, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// openDB opens the controller's task file beside it, to watch what the
// writer has committed.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM tasks WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDBRestore: a controller with the sqlite task database is closed
// and a new one restores its records: result_request returns the same
// results and buffers, db_request the request and result buffers, and the
// task that was running is failed with TaskLost saying why (the first
// controller stopped normally: its engines cannot come back to this one).
func TestDBRestore(t *testing.T) {
	dir := t.TempDir()
	cl := startCluster(t, controller.Config{DB: controller.DBSQLite, ProfileDir: dir})
	ctx := ctxFor(t, 60*time.Second)
	items := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}
	ar, err := cl.client.LoadBalanced().Map(ctx, "echo", items, ipp.MapOptions{ChunkSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ipp.GetAll[int](ctx, ar); err != nil || !slices.Equal(got, items) {
		t.Fatalf("map: %v %v", got, err)
	}
	direct, err := cl.client.View(cl.ids[0]).Apply(ctx, "echo", 42)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ipp.Get[int](ctx, direct); err != nil || v != 42 {
		t.Fatalf("direct: %v %v", v, err)
	}
	ids := append(ar.MsgIDs(), direct.MsgIDs()...)
	before, bufsBefore := cl.results(ids)
	running, err := cl.client.LoadBalanced().Apply(ctx, "sleep", 60_000)
	if err != nil {
		t.Fatal(err)
	}
	runningID := running.MsgIDs()[0]
	testutil.Eventually(t, 20*time.Second, func() bool { return slices.Contains(cl.history(), runningID) }, "the running task recorded")
	cl.c.Close()

	c2, _ := startController(t, controller.Config{DB: controller.DBSQLite, ProfileDir: dir, Restore: true})
	if finished, failed := c2.Restored(); finished != len(ids) || failed != 1 {
		t.Fatalf("restored %d finished, %d failed; want %d, 1", finished, failed, len(ids))
	}
	m := hubQuery(t, c2, "result_request", map[string]any{"msg_ids": ids, "status_only": false})
	after := decodeContent(t, m)
	if after["status"] != "ok" {
		t.Fatalf("result_request after restore: %s", m.Content)
	}
	for _, id := range ids {
		b, a := before[id].(map[string]any), after[id].(map[string]any)
		for _, k := range []string{"header", "result_header", "result_content", "result_metadata"} {
			if !reflect.DeepEqual(b[k], a[k]) {
				t.Errorf("%s %s: %v, was %v", id, k, a[k], b[k])
			}
		}
	}
	if !reflect.DeepEqual(m.Buffers, bufsBefore) {
		t.Fatalf("result buffers differ after restore: %d frames, was %d", len(m.Buffers), len(bufsBefore))
	}
	m = hubQuery(t, c2, "result_request", map[string]any{"msg_ids": []string{runningID}, "status_only": false})
	rc := decodeContent(t, m)[runningID].(map[string]any)["result_content"].(map[string]any)
	if rc["ename"] != "TaskLost" || !strings.Contains(rc["evalue"].(string), "controller restarted while task '"+runningID+"' was in flight") {
		t.Fatalf("the task in flight after restore: %v", rc)
	}

	// db_request serves the restored records with their buffers.
	m = hubQuery(t, c2, "db_request", map[string]any{"query": map[string]any{"msg_id": direct.MsgIDs()[0]},
		"keys": []string{"buffers", "result_buffers", "completed", "engine_uuid"}})
	var db struct {
		Status           string           `json:"status"`
		Records          []map[string]any `json:"records"`
		BufferLens       []int            `json:"buffer_lens"`
		ResultBufferLens []int            `json:"result_buffer_lens"`
	}
	if err := json.Unmarshal(m.Content, &db); err != nil || db.Status != "ok" || len(db.Records) != 1 {
		t.Fatalf("db_request: %v %s", err, m.Content)
	}
	rec := db.Records[0]
	if rec["msg_id"] != direct.MsgIDs()[0] || rec["completed"] == nil || rec["engine_uuid"] != cl.uuids[cl.ids[0]] {
		t.Fatalf("db record: %v", rec)
	}
	if len(db.BufferLens) != 1 || db.BufferLens[0] == 0 || len(db.ResultBufferLens) != 1 ||
		len(m.Buffers) != db.BufferLens[0]+db.ResultBufferLens[0] {
		t.Fatalf("buffer lens %v %v for %d frames", db.BufferLens, db.ResultBufferLens, len(m.Buffers))
	}
	if v, err := codec.Decode(m.Buffers[db.BufferLens[0]:]); err != nil || fmt.Sprint(v) != "42" {
		t.Fatalf("result from db_request: %v %v", v, err)
	}
}

// TestDBSurvivesSIGKILL: a controller process runs a burst of 2,000
// load-balanced tasks and is SIGKILLed once its writer has committed them
// (about flushEvery plus a transaction after the last reply); a
// controller restored from the file serves every result.
func TestDBSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), dbChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-waited })
	ctx := ctxFor(t, 120*time.Second)
	cl, err := ipp.ConnectProfile(ctx, dir, "", ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.WaitForEngines(ctx, 2, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	lb := cl.LoadBalanced()
	ars := make([]*ipp.AsyncResult, n)
	for i := range ars {
		if ars[i], err = lb.Apply(ctx, "echo", i); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, n)
	for i, ar := range ars {
		if v, err := ipp.Get[int](ctx, ar); err != nil || v != i {
			t.Fatalf("task %d: %v %v", i, v, err)
		}
		ids[i] = ar.MsgIDs()[0]
	}
	replied := time.Now()
	path := controller.DBFile(dir, "")
	db := openDB(t, path)
	testutil.Eventually(t, 30*time.Second, func() bool { return count(t, db, "done = 1") >= n }, "the writer committing every task")
	t.Logf("all %d tasks on disk %v after the last reply", n, time.Since(replied).Round(time.Millisecond))
	db.Close()
	cmd.Process.Signal(syscall.SIGKILL)
	<-waited

	c2, _ := startController(t, controller.Config{DB: controller.DBSQLite, ProfileDir: dir, Restore: true})
	if finished, failed := c2.Restored(); finished != n || failed != 0 {
		t.Fatalf("restored %d finished, %d failed; want %d, 0", finished, failed, n)
	}
	m := hubQuery(t, c2, "result_request", map[string]any{"msg_ids": ids, "status_only": true})
	if c := decodeContent(t, m); len(c["completed"].([]any)) != n {
		t.Fatalf("%d completed after the restore, want %d", len(c["completed"].([]any)), n)
	}
	for i := 0; i < n; i += 97 {
		m := hubQuery(t, c2, "result_request", map[string]any{"msg_ids": []string{ids[i]}})
		if v, err := codec.Decode(m.Buffers); err != nil || fmt.Sprint(v) != strconv.Itoa(i) {
			t.Fatalf("result %d after the restore: %v %v (%s)", i, v, err, m.Content)
		}
	}
}

// TestDBRetentionAndPurge: the retention limit deletes the oldest
// finished records from memory and from the file; purge_request deletes
// from the file too, by msg_id, by engine and "all".
func TestDBRetentionAndPurge(t *testing.T) {
	dir := t.TempDir()
	cl := startCluster(t, controller.Config{DB: controller.DBSQLite, ProfileDir: dir, DBMaxRecords: 50})
	ctx := ctxFor(t, 60*time.Second)
	items := make([]int, 100)
	for i := range items {
		items[i] = i
	}
	ar, err := cl.client.LoadBalanced().Map(ctx, "echo", items, ipp.MapOptions{ChunkSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ipp.GetAll[int](ctx, ar); err != nil {
		t.Fatal(err)
	}
	ids := ar.MsgIDs()
	db := openDB(t, controller.DBFile(dir, ""))
	newest := ids[len(ids)-1]
	testutil.Eventually(t, 20*time.Second, func() bool {
		return count(t, db, "done = 1 AND msg_id = ?", newest) == 1 && count(t, db, "1") <= 50
	}, "the file holding the newest records only")
	if h := cl.history(); len(h) > 50 || !slices.Contains(h, newest) || slices.Contains(h, ids[0]) {
		t.Fatalf("history of %d records (newest kept %v, oldest kept %v)", len(h), slices.Contains(h, newest), slices.Contains(h, ids[0]))
	}
	if n := count(t, db, "msg_id = ?", ids[0]); n != 0 {
		t.Fatal("the oldest record is still on disk")
	}
	m := cl.query("result_request", map[string]any{"msg_ids": []string{ids[0]}})
	if c := decodeContent(t, m); c["status"] != "error" || !strings.Contains(fmt.Sprint(c["evalue"]), "No such message") {
		t.Fatalf("result of a record beyond the limit: %s", m.Content)
	}

	last := ids[len(ids)-3:]
	if err := cl.client.Purge(ctx, last); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		return count(t, db, "msg_id IN (?, ?, ?)", last[0], last[1], last[2]) == 0
	}, "purged records deleted from the file")
	if err := cl.client.Purge(ctx, nil, cl.ids[0]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		return count(t, db, "engine_uuid = ?", cl.uuids[cl.ids[0]]) == 0
	}, "an engine's records deleted from the file")
	if err := cl.client.PurgeAll(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return count(t, db, "done = 1") == 0 }, "every finished record deleted")
}

// TestDBNone: with --db none, finished tasks' results are not kept:
// result_request still tells pending from completed, but asking for the
// result, or db_request, gets an error naming --db.
func TestDBNone(t *testing.T) {
	cl := startCluster(t, controller.Config{DB: controller.DBNone})
	ctx := ctxFor(t, 60*time.Second)
	ar, err := cl.client.LoadBalanced().Apply(ctx, "echo", 7)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ipp.Get[int](ctx, ar); err != nil || v != 7 {
		t.Fatalf("echo: %v %v", v, err)
	}
	id := ar.MsgIDs()[0]
	m := cl.query("result_request", map[string]any{"msg_ids": []string{id}, "status_only": true})
	if c := decodeContent(t, m); c["status"] != "ok" || !slices.Contains(c["completed"].([]any), any(id)) {
		t.Fatalf("status of a finished task: %s", m.Content)
	}
	for _, q := range []struct {
		typ     string
		content map[string]any
	}{
		{"result_request", map[string]any{"msg_ids": []string{id}}},
		{"db_request", map[string]any{"query": map[string]any{"msg_id": id}}},
	} {
		m := cl.query(q.typ, q.content)
		c := decodeContent(t, m)
		if c["status"] != "error" || !strings.Contains(fmt.Sprint(c["evalue"]), "--db none") {
			t.Fatalf("%s with --db none: %s", q.typ, m.Content)
		}
	}
}

// TestDBConfigErrors: a sqlite database needs a place, an unknown backend
// and restoring without a profile are refused by name.
func TestDBConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  controller.Config
		want string
	}{
		{controller.Config{DB: controller.DBSQLite}, "DBPath or ProfileDir"},
		{controller.Config{DB: "mongodb"}, `unknown task database "mongodb"`},
		{controller.Config{Restore: true}, "needs the profile directory"},
	} {
		if _, err := controller.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg.DB, err, tc.want)
		}
	}
	// A file that is not a database is refused with its name, not
	// overwritten.
	path := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 100)), 0o600)
	c, err := controller.New(controller.Config{DB: controller.DBSQLite, DBPath: path, Restore: true, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err == nil || !strings.Contains(err.Error(), path) {
		c.Close()
		t.Fatalf("start on a corrupt file: %v", err)
	}
}
