package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func content(t testing.TB, m *wire.Message) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(m.Content, &c); err != nil {
		t.Fatalf("%s content: %v", m.Header.MsgType, err)
	}
	return c
}

func metadata(t testing.TB, m *wire.Message) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(m.Metadata, &c); err != nil {
		t.Fatalf("%s metadata: %v", m.Header.MsgType, err)
	}
	return c
}

// execute sends an execute_request through mux and returns the reply and
// the request's IOPub messages (through idle).
func execute(t testing.TB, f *fake, code string, silent bool) (*wire.Message, []*wire.Message) {
	t.Helper()
	h := f.send(f.mux, "execute_request", map[string]any{"code": code, "silent": silent, "user_expressions": map[string]any{}}, nil, nil)
	reply := f.muxIn.wait(t, waitTimeout, "execute_reply", replyTo(h.MsgID))
	return reply, f.until(h.MsgID)
}

func streamText(iopub []*wire.Message, name string) string {
	var b strings.Builder
	for _, m := range iopub {
		if m.Header.MsgType != "stream" {
			continue
		}
		var c streamContent
		if json.Unmarshal(m.Content, &c) == nil && c.Name == name {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func types(iopub []*wire.Message) []string {
	var out []string
	for _, m := range iopub {
		t := m.Header.MsgType
		if t == "status" {
			var c struct {
				State string `json:"execution_state"`
			}
			json.Unmarshal(m.Content, &c)
			t += ":" + c.State
		}
		out = append(out, t)
	}
	return out
}

// checkReplyMeta checks the metadata keys every reply must carry (§5.1).
func checkReplyMeta(t testing.TB, f *fake, m *wire.Message, status string) map[string]any {
	t.Helper()
	md := metadata(t, m)
	for _, k := range []string{"started", "dependencies_met", "engine", "is_broadcast", "is_coalescing", "original_msg_id", "status"} {
		if _, ok := md[k]; !ok {
			t.Errorf("%s metadata lacks %q: %s", m.Header.MsgType, k, m.Metadata)
		}
	}
	if md["status"] != status || md["engine"] != f.engineUUID() || md["dependencies_met"] != true {
		t.Errorf("%s metadata = %s, want status %q and engine %s", m.Header.MsgType, m.Metadata, status, f.engineUUID())
	}
	if s, _ := md["started"].(string); s != "" {
		if _, err := wire.ParseDate(s); err != nil {
			t.Errorf("started: %v", err)
		}
	}
	if m.Header.Session != f.engineUUID() {
		t.Errorf("reply session %q, want the engine uuid", m.Header.Session)
	}
	return md
}

func TestRegistrationContent(t *testing.T) {
	f, _, _ := start(t, fakeOptions{assignID: 3}, func(c *Config) { c.RequestedID = 3 })
	f.mu.Lock()
	req := f.regReq
	f.mu.Unlock()
	var uuid string
	var id int
	var probe bool
	var info protocol.EngineInfo
	json.Unmarshal(req["uuid"], &uuid)
	json.Unmarshal(req["id"], &id)
	json.Unmarshal(req["ready_probe"], &probe)
	if err := json.Unmarshal(req["info"], &info); err != nil {
		t.Fatal(err)
	}
	if uuid != f.engineUUID() || id != 3 || !probe {
		t.Errorf("registration_request = uuid %q id %d ready_probe %v", uuid, id, probe)
	}
	if info.Language != "go" || info.UUID != uuid || info.PID == 0 || info.Host == "" {
		t.Errorf("info = %+v", info)
	}
	// Engine 3 of 2 leaves connects to leaf 1, and probed it.
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, route := range []string{"mux_out", "task_out", "sub_scheduler_01", "control_out"} {
		if f.probes[route] == 0 {
			t.Errorf("no engine_ready through %s (probes %v)", route, f.probes)
		}
	}
}

func TestLeafIdentity(t *testing.T) {
	for _, c := range []struct {
		id, leaves int
		want       string
	}{{0, 1, "sub_scheduler_0"}, {0, 2, "sub_scheduler_00"}, {3, 2, "sub_scheduler_01"}, {6, 4, "sub_scheduler_010"}, {7, 8, "sub_scheduler_0111"}} {
		if got := leafIdentity(c.id, c.leaves); got != c.want {
			t.Errorf("leafIdentity(%d, %d) = %q, want %q", c.id, c.leaves, got, c.want)
		}
	}
}

func TestExecuteStdout(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	reply, _ := execute(t, f, "x := 6*7", true)
	if c := content(t, reply); c["status"] != "ok" {
		t.Fatalf("x := 6*7: %s", reply.Content)
	}
	reply, iopub := execute(t, f, `fmt.Println(x)`, false)
	c := content(t, reply)
	if c["status"] != "ok" || c["execution_count"] != 2.0 {
		t.Errorf("execute_reply content %s", reply.Content)
	}
	checkReplyMeta(t, f, reply, "ok")
	if got := streamText(iopub, "stdout"); got != "42\n" {
		t.Errorf("stdout = %q, want 42", got)
	}
	got := types(iopub)
	want := []string{"status:busy", "execute_input", "stream", "status:idle"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IOPub sequence %v, want %v", got, want)
	}
	for _, m := range iopub {
		topic := string(m.Idents[0])
		if !strings.HasPrefix(topic, "engine.0.") {
			t.Errorf("topic %q", topic)
		}
		if m.Header.MsgType == "stream" && topic != "engine.0.stdout" {
			t.Errorf("stream topic %q", topic)
		}
	}
	if !reflect.DeepEqual(reply.Idents, [][]byte{[]byte(f.engineUUID()), clientID}) {
		t.Errorf("reply idents %q", reply.Idents)
	}
}

func TestExecuteResult(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	execute(t, f, "y := 40", true)
	reply, iopub := execute(t, f, "y + 2", false)
	if c := content(t, reply); c["status"] != "ok" {
		t.Fatalf("reply %s", reply.Content)
	}
	want := []string{"status:busy", "execute_input", "execute_result", "status:idle"}
	if got := types(iopub); !reflect.DeepEqual(got, want) {
		t.Fatalf("IOPub %v, want %v", got, want)
	}
	res := iopub[2]
	if string(res.Idents[0]) != "engine.0.execute_result" {
		t.Errorf("topic %q", res.Idents[0])
	}
	var c struct {
		Data     map[string]string `json:"data"`
		Metadata map[string]any    `json:"metadata"`
		Count    int               `json:"execution_count"`
	}
	json.Unmarshal(res.Content, &c)
	if c.Data["text/plain"] != "42" || c.Metadata == nil || c.Count != 2 {
		t.Errorf("execute_result %s", res.Content)
	}
}

func TestExecuteError(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	reply, iopub := execute(t, f, "undefinedThing + 1", false)
	var c protocol.ErrorContent
	if err := json.Unmarshal(reply.Content, &c); err != nil {
		t.Fatal(err)
	}
	if c.Status != "error" || c.EName == "" || c.EValue == "" || len(c.Traceback) == 0 {
		t.Errorf("error reply %s", reply.Content)
	}
	if c.EngineInfo != (protocol.ErrorEngineInfo{EngineUUID: f.engineUUID(), EngineID: 0, Method: "execute"}) {
		t.Errorf("engine_info %+v", c.EngineInfo)
	}
	if c.ExecutionCount == nil {
		t.Errorf("error reply lacks execution_count: %s", reply.Content)
	}
	md := checkReplyMeta(t, f, reply, "error")
	if md["engine_info"] == nil {
		t.Errorf("error metadata lacks engine_info")
	}
	want := []string{"status:busy", "execute_input", "error", "status:idle"}
	if got := types(iopub); !reflect.DeepEqual(got, want) {
		t.Errorf("IOPub %v, want %v", got, want)
	}
	// The engine keeps serving.
	reply, _ = execute(t, f, "1", true)
	if content(t, reply)["status"] != "ok" {
		t.Errorf("after an error: %s", reply.Content)
	}
}

// apply sends a Go apply_request through sock and returns the reply.
func apply(t testing.TB, f *fake, fn string, args ...any) *wire.Message {
	t.Helper()
	return applyCall(t, f, false, fn, args...)
}

// applyQuiet sends a quiet Go apply (protocol.Call.Quiet).
func applyQuiet(t testing.TB, f *fake, fn string, args ...any) *wire.Message {
	t.Helper()
	return applyCall(t, f, true, fn, args...)
}

func applyCall(t testing.TB, f *fake, quiet bool, fn string, args ...any) *wire.Message {
	t.Helper()
	call := &protocol.Call{Func: fn, Quiet: quiet}
	var bufs [][]byte
	for _, a := range args {
		frames, err := codec.Encode(a)
		if err != nil {
			t.Fatalf("encode %T: %v", a, err)
		}
		call.ArgFrames = append(call.ArgFrames, len(frames))
		bufs = append(bufs, frames...)
	}
	h := f.send(f.mux, "apply_request", protocol.ApplyContent{Go: call}, nil, bufs)
	reply := f.muxIn.wait(t, waitTimeout, "apply_reply to "+fn, replyTo(h.MsgID))
	if reply.Header.MsgType != "apply_reply" {
		t.Errorf("reply type %q", reply.Header.MsgType)
	}
	idle, has := metadata(t, reply)["iopub_idle"]
	switch {
	case !quiet && has:
		t.Errorf("iopub_idle on a request that did not ask to be quiet: %s", reply.Metadata)
	case !quiet, idle == true:
		f.until(h.MsgID) // status idle follows
	case idle != false:
		t.Errorf("quiet Go apply reply without iopub_idle: %s", reply.Metadata)
	}
	return reply
}

// result decodes an ok apply_reply's value into ptr.
func result(t testing.TB, reply *wire.Message, ptr any) {
	t.Helper()
	var c struct {
		Status string `json:"status"`
		Go     struct {
			Frames int `json:"frames"`
		} `json:"go"`
	}
	if err := json.Unmarshal(reply.Content, &c); err != nil || c.Status != "ok" {
		t.Fatalf("apply_reply %s (%v)", reply.Content, err)
	}
	if c.Go.Frames != len(reply.Buffers) {
		t.Fatalf("go.frames %d but %d buffers", c.Go.Frames, len(reply.Buffers))
	}
	if err := codec.DecodeInto(reply.Buffers, ptr); err != nil {
		t.Fatalf("decode result: %v", err)
	}
}

func applyError(t testing.TB, reply *wire.Message) protocol.ErrorContent {
	t.Helper()
	var c protocol.ErrorContent
	if err := json.Unmarshal(reply.Content, &c); err != nil {
		t.Fatal(err)
	}
	if c.Status != "error" || len(c.Traceback) == 0 || c.EngineInfo.Method != "apply" {
		t.Errorf("apply error reply %s", reply.Content)
	}
	if md := metadata(t, reply); md["status"] != "error" {
		t.Errorf("metadata %s", reply.Metadata)
	}
	return c
}

func TestApplyBuiltins(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	data := []float64{1.5, 2.5, -3}
	reply := apply(t, f, protocol.Push, []string{"a", "n"}, data, int64(7))
	if content(t, reply)["status"] != "ok" {
		t.Fatalf("push: %s", reply.Content)
	}
	checkReplyMeta(t, f, reply, "ok")

	var back []float64
	result(t, apply(t, f, protocol.PullOne, "a"), &back)
	if !reflect.DeepEqual(back, data) {
		t.Errorf("pull_one a = %v, want %v", back, data)
	}
	var both []any
	result(t, apply(t, f, protocol.Pull, []string{"a", "n"}), &both)
	if len(both) != 2 {
		t.Fatalf("pull = %v", both)
	}

	// The pushed values are ordinary variables for executed code.
	reply, iopub := execute(t, f, `fmt.Println(len(a), n*6)`, true)
	if got := streamText(iopub, "stdout"); got != "3 42\n" {
		t.Errorf("stdout %q (%s)", got, reply.Content)
	}

	var n int64
	result(t, apply(t, f, protocol.Noop, int64(7)), &n)
	if n != 7 {
		t.Errorf("noop(7) = %d", n)
	}
	var none any
	result(t, apply(t, f, protocol.Noop), &none)
	if none != nil {
		t.Errorf("noop() = %v", none)
	}

	var sh protocol.ShellResult
	result(t, apply(t, f, protocol.Shell, "echo hi; echo err >&2; exit 3"), &sh)
	if sh.Stdout != "hi\n" || sh.Stderr != "err\n" || sh.ExitCode != 3 {
		t.Errorf("shell = %+v", sh)
	}

	var v int64
	result(t, apply(t, f, protocol.Eval, "n * 6"), &v)
	if v != 42 {
		t.Errorf("eval = %d", v)
	}

	var info protocol.EngineInfo
	result(t, apply(t, f, protocol.Info), &info)
	if info.UUID != f.engineUUID() || info.Language != "go" {
		t.Errorf("info = %+v", info)
	}

	c := applyError(t, apply(t, f, protocol.PullOne, "missing"))
	if c.EName == "" {
		t.Errorf("pull of a missing name: %+v", c)
	}
	c = applyError(t, apply(t, f, "ipp.nonesuch"))
	if c.EName != "NameError" {
		t.Errorf("unknown built-in: %+v", c)
	}
}

func TestApplyRegistered(t *testing.T) {
	reg := NewRegistry()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register("add", func(a, b int) int { return a + b }))
	must(reg.Register("scale", func(ctx context.Context, xs []float64, k float64) ([]float64, error) {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = x * k
		}
		return out, ctx.Err()
	}))
	must(reg.Register("fail", func() error { return errors.New("it failed") }))
	must(reg.Register("boom", func() { panic("kaboom") }))
	f, _, _ := start(t, fakeOptions{}, func(c *Config) { c.Functions = reg })

	var sum int64
	result(t, apply(t, f, "add", int64(2), int64(40)), &sum)
	if sum != 42 {
		t.Errorf("add = %d", sum)
	}
	var scaled []float64
	result(t, apply(t, f, "scale", []float64{1, 2}, 1.5), &scaled)
	if !reflect.DeepEqual(scaled, []float64{1.5, 3}) {
		t.Errorf("scale = %v", scaled)
	}
	if c := applyError(t, apply(t, f, "fail")); c.EName != "Error" || c.EValue != "it failed" {
		t.Errorf("fail: %+v", c)
	}
	c := applyError(t, apply(t, f, "boom"))
	if c.EName != interp.NamePanic || !strings.Contains(strings.Join(c.Traceback, "\n"), "kaboom") {
		t.Errorf("boom: %+v", c)
	}
	if c := applyError(t, apply(t, f, "add", "x", int64(1))); c.EName != "TypeError" {
		t.Errorf("bad argument: %+v", c)
	}
	if c := applyError(t, apply(t, f, "nope")); c.EName != "NameError" {
		t.Errorf("unregistered: %+v", c)
	}
}

// TestApplyPickled sends a pickled apply_request whose pickle is junk:
// the engine answers with a ValueError naming the pickle problem.
func TestApplyPickled(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	pickle := [][]byte{[]byte("\x80\x04\x95\x10\x00fake-function"), []byte("\x80\x04}\x94.")}
	h := f.send(f.mux, "apply_request", map[string]any{}, nil, pickle)
	reply := f.muxIn.wait(t, waitTimeout, "apply_reply", replyTo(h.MsgID))
	c := applyError(t, reply)
	if c.EName != "ValueError" || !strings.Contains(c.EValue, "pickle") {
		t.Errorf("pickled apply: %+v", c)
	}
	if c.EngineInfo.EngineUUID != f.engineUUID() {
		t.Errorf("engine_info %+v", c.EngineInfo)
	}
	if len(reply.Buffers) != 0 {
		t.Errorf("error reply has buffers")
	}
	iopub := f.until(h.MsgID)
	if got, want := types(iopub), []string{"status:busy", "error", "status:idle"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IOPub %v, want %v", got, want)
	}
}

// TestBroadcastReply checks what the broadcast scheduler needs: the
// three-frame routing prefix echoed, and the broadcast keys copied.
func TestBroadcastReply(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	md := map[string]any{"is_broadcast": true, "is_coalescing": false, "original_msg_id": "orig-1", "targets": [][]any{{f.engineUUID(), 0}}}
	h := f.send(f.leaves[0], "execute_request", map[string]any{"code": "1", "silent": true}, md, nil, []byte("sub_scheduler_0"))
	reply := f.leafIn[0].wait(t, waitTimeout, "execute_reply via the leaf", replyTo(h.MsgID))
	want := [][]byte{[]byte(f.engineUUID()), []byte("sub_scheduler_0"), clientID}
	if !reflect.DeepEqual(reply.Idents, want) {
		t.Errorf("idents %q, want %q", reply.Idents, want)
	}
	got := checkReplyMeta(t, f, reply, "ok")
	if got["is_broadcast"] != true || got["is_coalescing"] != false || got["original_msg_id"] != "orig-1" {
		t.Errorf("metadata %s", reply.Metadata)
	}
}

func TestTaskChannel(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	h := f.send(f.task, "execute_request", map[string]any{"code": "2", "silent": true}, map[string]any{"after": []string{}, "follow": []string{}, "timeout": 0.0, "targets": []string{}, "retries": 0}, nil)
	reply := f.taskIn.wait(t, waitTimeout, "execute_reply via task", replyTo(h.MsgID))
	checkReplyMeta(t, f, reply, "ok")
}

func TestKernelInfoAndUnknown(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	h := f.send(f.mux, "kernel_info_request", nil, nil, nil)
	reply := f.muxIn.wait(t, waitTimeout, "kernel_info_reply", replyTo(h.MsgID))
	c := content(t, reply)
	if reply.Header.MsgType != "kernel_info_reply" || c["language_info"].(map[string]any)["name"] != "go" {
		t.Errorf("kernel_info_reply %s", reply.Content)
	}

	h = f.send(f.mux, "bogus_request", nil, nil, nil)
	reply = f.muxIn.wait(t, waitTimeout, "bogus_reply", replyTo(h.MsgID))
	var ec protocol.ErrorContent
	json.Unmarshal(reply.Content, &ec)
	if reply.Header.MsgType != "bogus_reply" || ec.Status != "error" || ec.EName != "NotImplementedError" {
		t.Errorf("unknown type: %s %s", reply.Header.MsgType, reply.Content)
	}
	f.until(h.MsgID)

	// A type that is not a request has no Jupyter reply name: the error
	// goes back as apply_reply, which every client handles
	// (protocol.ReplyType).
	h = f.send(f.mux, "comm_msg", nil, nil, nil)
	reply = f.muxIn.wait(t, waitTimeout, "apply_reply", replyTo(h.MsgID))
	ec = protocol.ErrorContent{}
	json.Unmarshal(reply.Content, &ec)
	if reply.Header.MsgType != "apply_reply" || ec.EName != "NotImplementedError" || ec.EngineInfo.Method != "comm_msg" {
		t.Errorf("comm_msg: %s %s", reply.Header.MsgType, reply.Content)
	}
	f.until(h.MsgID)
}

// TestMalformed: badly signed and unframed messages are dropped; a signed
// message whose content is not JSON gets an error reply; the engine keeps
// serving throughout.
func TestMalformed(t *testing.T) {
	f, _, logs := start(t, fakeOptions{}, nil)
	uuid := []byte(f.engineUUID())

	frames, bad, _ := f.client.Build(wire.Out{Idents: [][]byte{uuid, clientID}, MsgType: "execute_request", Content: map[string]any{"code": "1"}})
	frames[len(frames)-5] = []byte(strings.Repeat("0", 64)) // wrong signature
	f.mux.Send(frames)
	f.mux.Send([][]byte{uuid, clientID, []byte("no delimiter")})
	f.mux.Send([][]byte{uuid, clientID, []byte(wire.Delimiter), []byte("short")})

	// Signed correctly, but the content frame is not JSON.
	h := f.client.NewHeader("execute_request")
	hb, _ := json.Marshal(h)
	body := [][]byte{hb, []byte("{}"), []byte("{}"), []byte("{not json")}
	sig := f.client.Sign(body[0], body[1], body[2], body[3])
	f.mux.Send(append([][]byte{uuid, clientID, []byte(wire.Delimiter), sig}, body...))
	reply := f.muxIn.wait(t, waitTimeout, "reply to the undecodable request", replyTo(h.MsgID))
	if c := content(t, reply); c["status"] != "error" {
		t.Errorf("undecodable request: %s", reply.Content)
	}

	r, _ := execute(t, f, "3", true)
	if content(t, r)["status"] != "ok" {
		t.Errorf("engine stopped serving: %s", r.Content)
	}
	if f.muxIn.has(replyTo(bad.MsgID)) {
		t.Errorf("the badly signed request was answered")
	}
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("invalid signature") }, "no log about the bad signature")

	// Same on control.
	frames, bad, _ = f.client.Build(wire.Out{Idents: [][]byte{uuid, clientID}, MsgType: "clear_request"})
	frames[len(frames)-5] = []byte(strings.Repeat("1", 64))
	f.control.Send(frames)
	h = f.send(f.control, "kernel_info_request", nil, nil, nil)
	f.controlIn.wait(t, waitTimeout, "control kernel_info_reply", replyTo(h.MsgID))
	if f.controlIn.has(replyTo(bad.MsgID)) {
		t.Errorf("the badly signed control request was answered")
	}
}

func TestClear(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	execute(t, f, "z := 1", true)
	h := f.send(f.control, "clear_request", nil, nil, nil)
	reply := f.controlIn.wait(t, waitTimeout, "clear_reply", replyTo(h.MsgID))
	if reply.Header.MsgType != "clear_reply" || content(t, reply)["status"] != "ok" {
		t.Fatalf("clear_reply %s %s", reply.Header.MsgType, reply.Content)
	}
	r, _ := execute(t, f, "z", true)
	if content(t, r)["status"] != "error" {
		t.Errorf("z survived clear: %s", r.Content)
	}
	// fmt is usable again after a reset.
	_, iopub := execute(t, f, `fmt.Println("again")`, true)
	if got := streamText(iopub, "stdout"); got != "again\n" {
		t.Errorf("stdout after clear %q", got)
	}
}

// startLong starts a request that runs for a while and waits until it is
// running (its busy status is out).
func startLong(t testing.TB, f *fake, code string) wire.Header {
	t.Helper()
	h := f.send(f.mux, "execute_request", map[string]any{"code": code, "silent": true}, nil, nil)
	f.iopub.wait(t, waitTimeout, "busy", func(m *wire.Message) bool {
		return m.Parent.MsgID == h.MsgID && strings.Contains(string(m.Content), "busy")
	})
	return h
}

func TestAbort(t *testing.T) {
	f, _, logs := start(t, fakeOptions{}, nil)
	long := startLong(t, f, "time.Sleep(time.Second)")
	q := func(code string) wire.Header {
		return f.send(f.mux, "execute_request", map[string]any{"code": code, "silent": true}, nil, nil)
	}
	a, b, c := q("1"), q("2"), q("3")
	// Aborting by id works even for a request not yet received; wait only
	// so that the test also covers the queued case.
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("msg_id=" + b.MsgID) }, "request not queued")

	h := f.send(f.control, "abort_request", map[string]any{"msg_ids": []string{b.MsgID}}, nil, nil)
	reply := f.controlIn.wait(t, waitTimeout, "abort_reply", replyTo(h.MsgID))
	if reply.Header.MsgType != "abort_reply" || content(t, reply)["status"] != "ok" {
		t.Fatalf("abort_reply %s", reply.Content)
	}
	if f.muxIn.has(replyTo(long.MsgID)) {
		t.Fatalf("control was not served while the long request ran")
	}
	for _, x := range []struct {
		h      wire.Header
		status string
	}{{long, "ok"}, {a, "ok"}, {b, "aborted"}, {c, "ok"}} {
		r := f.muxIn.wait(t, waitTimeout, "reply", replyTo(x.h.MsgID))
		if got := content(t, r)["status"]; got != x.status {
			t.Errorf("%s: status %v, want %s", x.h.MsgID, got, x.status)
		}
		checkReplyMeta(t, f, r, x.status)
		f.until(x.h.MsgID)
	}

	// An empty list aborts everything queued.
	long = startLong(t, f, "time.Sleep(500*time.Millisecond)")
	d, e := q("4"), q("5")
	// "Everything queued" means queued when the abort arrives; control and
	// shell are separate connections, so make sure the shell got there first.
	for _, x := range []wire.Header{d, e} {
		testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("msg_id=" + x.MsgID) }, "request %s not queued", x.MsgID)
	}
	h = f.send(f.control, "abort_request", map[string]any{"msg_ids": []string{}}, nil, nil)
	f.controlIn.wait(t, waitTimeout, "abort_reply", replyTo(h.MsgID))
	for _, x := range []wire.Header{d, e} {
		r := f.muxIn.wait(t, waitTimeout, "reply", replyTo(x.MsgID))
		if got := content(t, r)["status"]; got != "aborted" {
			t.Errorf("abort all: %s status %v", x.MsgID, got)
		}
	}
	if r := f.muxIn.wait(t, waitTimeout, "reply", replyTo(long.MsgID)); content(t, r)["status"] != "ok" {
		t.Errorf("the running request was aborted: %s", r.Content)
	}
}

// TestControlDuringLongExecute: control requests are answered while a
// two-second execute occupies the shell, and a SIGINT signal_request
// interrupts interpreted code.
func TestControlDuringLongExecute(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	long := startLong(t, f, "time.Sleep(2*time.Second)")
	begun := time.Now()
	h := f.send(f.control, "kernel_info_request", nil, nil, nil)
	f.controlIn.wait(t, waitTimeout, "control kernel_info_reply", replyTo(h.MsgID))
	if f.muxIn.has(replyTo(long.MsgID)) {
		t.Fatalf("control reply came only after the long execute finished (%v)", time.Since(begun))
	}
	f.muxIn.wait(t, waitTimeout, "long execute_reply", replyTo(long.MsgID))

	// A running interpreted loop is interrupted by SIGINT.
	loop := startLong(t, f, "for spin := 0; ; spin++ { time.Sleep(time.Millisecond) }")
	h = f.send(f.control, "signal_request", map[string]any{"sig": "SIGINT"}, nil, nil)
	sr := f.controlIn.wait(t, waitTimeout, "signal_reply", replyTo(h.MsgID))
	if sr.Header.MsgType != "signal_reply" || content(t, sr)["status"] != "ok" {
		t.Errorf("signal_reply %s %s", sr.Header.MsgType, sr.Content)
	}
	r := f.muxIn.wait(t, waitTimeout, "interrupted execute_reply", replyTo(loop.MsgID))
	var ec protocol.ErrorContent
	json.Unmarshal(r.Content, &ec)
	if ec.Status != "error" || ec.EName != interp.NameInterrupted {
		t.Errorf("interrupted reply %s", r.Content)
	}
	f.until(loop.MsgID)
	// The shell keeps serving. (Not with a snippet: whether the abandoned
	// loop has let go of the namespace yet is the interpreter's business.)
	var v int64
	result(t, apply(t, f, protocol.Noop, int64(4)), &v)
	if v != 4 {
		t.Errorf("noop after interrupt = %d", v)
	}
}

func TestStreamFlushDuringRun(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	code := `fmt.Println("early"); time.Sleep(time.Second); fmt.Println("late")`
	h := f.send(f.mux, "execute_request", map[string]any{"code": code, "silent": true}, nil, nil)
	f.iopub.wait(t, waitTimeout, "early output", func(m *wire.Message) bool {
		return m.Parent.MsgID == h.MsgID && m.Header.MsgType == "stream" && strings.Contains(string(m.Content), "early")
	})
	if f.muxIn.has(replyTo(h.MsgID)) {
		t.Errorf("output was only published at the end")
	}
	if got := streamText(f.until(h.MsgID), "stdout"); got != "early\nlate\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestStderr(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	_, iopub := execute(t, f, `fmt.Fprintln(os.Stderr, "warn")`, true)
	if got := streamText(iopub, "stderr"); got != "warn\n" {
		t.Errorf("stderr %q", got)
	}
	for _, m := range iopub {
		if m.Header.MsgType == "stream" && string(m.Idents[0]) != "engine.0.stderr" {
			t.Errorf("topic %q", m.Idents[0])
		}
	}
}

func TestShutdown(t *testing.T) {
	f, wait, _ := start(t, fakeOptions{assignID: 5}, nil)
	h := f.send(f.control, "shutdown_request", map[string]any{"restart": false}, nil, nil)
	reply := f.controlIn.wait(t, waitTimeout, "shutdown_reply", replyTo(h.MsgID))
	if c := content(t, reply); reply.Header.MsgType != "shutdown_reply" || c["status"] != "ok" || c["restart"] != false {
		t.Errorf("shutdown_reply %s %s", reply.Header.MsgType, reply.Content)
	}
	pub := f.iopub.wait(t, waitTimeout, "IOPub shutdown_reply", func(m *wire.Message) bool {
		return m.Header.MsgType == "shutdown_reply"
	})
	if string(pub.Idents[0]) != "engine.5.shutdown" || pub.Parent.MsgID != h.MsgID || pub.Header.MsgID == reply.Header.MsgID {
		t.Errorf("IOPub copy: topic %q parent %q", pub.Idents[0], pub.Parent.MsgID)
	}
	unreg := f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool {
		return m.Header.MsgType == "unregistration_request"
	})
	if c := content(t, unreg); c["id"] != 5.0 {
		t.Errorf("unregistration_request %s", unreg.Content)
	}
	if err := wait(); err != nil {
		t.Errorf("Run after shutdown_request: %v", err)
	}
}

func TestContextCancelUnregisters(t *testing.T) {
	f := newFake(t, fakeOptions{})
	logs := &logSink{t: t}
	defer logs.stop()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{Info: f.info, Logger: slog.New(logs), RequestedID: -1, Functions: NewRegistry()})
	}()
	<-f.completed
	cancel()
	f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool { return m.Header.MsgType == "unregistration_request" })
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

func TestHeartbeatLoss(t *testing.T) {
	f, wait, _ := start(t, fakeOptions{}, func(c *Config) { c.HeartbeatTimeout = 300 * time.Millisecond })
	testutil.Eventually(t, waitTimeout, func() bool { return f.pongs.Load() > 0 }, "no pongs")
	f.pinging.Store(false)
	f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool { return m.Header.MsgType == "unregistration_request" })
	if err := wait(); !errors.Is(err, ErrControllerLost) {
		t.Errorf("Run = %v, want ErrControllerLost", err)
	}
}

func TestRegistrationRefused(t *testing.T) {
	f := newFake(t, fakeOptions{refuse: "uuid in use"})
	wait, _ := runEngine(t, f, nil)
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "uuid in use") {
		t.Errorf("Run = %v, want a refusal", err)
	}
}

func TestRegistrationTimeout(t *testing.T) {
	f := newFake(t, fakeOptions{mute: true})
	wait, _ := runEngine(t, f, func(c *Config) { c.RegistrationTimeout = 200 * time.Millisecond })
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "no registration_reply") {
		t.Errorf("Run = %v, want a timeout", err)
	}
	// The late request is withdrawn, as ipengine does.
	f.regIn.wait(t, waitTimeout, "unregistration_request", func(m *wire.Message) bool { return m.Header.MsgType == "unregistration_request" })
}

// TestPythonLikeController: with no acknowledgement in the reply and no
// registration_complete, probing stops after two pings and the engine
// serves anyway.
func TestPythonLikeController(t *testing.T) {
	f := newFake(t, fakeOptions{pythonLike: true, hbPeriodMS: 100, pingEvery: 100 * time.Millisecond})
	_, logs := runEngine(t, f, nil)
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("assuming a controller without ready probes") }, "probing did not stop")
	n := f.probeCount()
	f.warmUp()
	executeWithoutProbes(t, f, n, 4)
}

// executeWithoutProbes runs a request and checks that at most slack probes
// were counted after n: whatever was in flight when probing stopped has
// arrived by the time a full request round trip went through.
func executeWithoutProbes(t *testing.T, f *fake, n, slack int) {
	t.Helper()
	r, _ := execute(t, f, "5", true)
	if content(t, r)["status"] != "ok" {
		t.Errorf("execute: %s", r.Content)
	}
	if m := f.probeCount(); m > n+slack {
		t.Errorf("probes continued: %d then %d", n, m)
	}
}

// TestPythonLikeControllerQuickClient: a Python controller whose client
// sends work before the engine has seen two heartbeats. The first request
// proves the registration, so probing stops then, not at the next probe
// round; a quick client used to finish while the engine still probed,
// and the Python scheduler counted every probe as a finished task.
func TestPythonLikeControllerQuickClient(t *testing.T) {
	// Pings every 10 s: the two-heartbeat rule cannot fire in this test.
	f := newFake(t, fakeOptions{pythonLike: true, hbPeriodMS: 10000, pingEvery: 10 * time.Second})
	_, logs := runEngine(t, f, nil)
	f.warmUp()
	testutil.Eventually(t, waitTimeout, func() bool {
		return logs.contains("a request arrived before registration_complete")
	}, "a request did not end the probing")
	executeWithoutProbes(t, f, f.probeCount(), 4)
}

// TestRegisterAgainKnown: after a silence the engine registers again; a
// controller that still has it registered (it was only slow) says so, and
// the engine sends no probe round: at 1,000 engines on two cores a
// starved controller made 756 engines do this at once.
func TestRegisterAgainKnown(t *testing.T) {
	f := newFake(t, fakeOptions{hbPeriodMS: 100, known: true})
	_, logs := runEngine(t, f, nil)
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("controller confirmed the registration") }, "no registration")
	f.pinging.Store(false)
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("controller silent") }, "the engine did not notice the silence")
	probes := f.probeCount()
	f.pinging.Store(true)
	testutil.Eventually(t, waitTimeout, func() bool {
		return logs.contains("registered again with a controller that still knew this engine")
	}, "the engine did not register again, or ignored known")
	f.warmUp()
	executeWithoutProbes(t, f, probes, 0)
}

func TestProbeNotWanted(t *testing.T) {
	no := false
	f := newFake(t, fakeOptions{ackProbe: &no, pythonLike: true})
	_, logs := runEngine(t, f, nil)
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("does not use ready probes") }, "engine probed anyway")
	f.warmUp()
	if n := f.probeCount(); n != 0 {
		t.Errorf("%d probes sent", n)
	}
}

func TestErrorName(t *testing.T) {
	if got := errorName(errors.New("x")); got != "Error" {
		t.Errorf("errors.New: %q", got)
	}
	if got := errorName(fmt.Errorf("w: %w", errors.New("x"))); got != "Error" {
		t.Errorf("fmt.Errorf: %q", got)
	}
	_, err := strconv.Atoi("x")
	if got := errorName(err); got != "strconv.NumError" {
		t.Errorf("strconv error: %q", got)
	}
}

func TestSetup(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, func(c *Config) {
		c.Sandbox = true // Interp.Env only applies inside the sandbox
		c.Interp.Env = []string{"IPP_TEST_VAR=from-config"}
		c.Setup = func(ns *interp.Namespace) error { return ns.Set("preset", 7) }
	})
	_, iopub := execute(t, f, `fmt.Println(preset*6, os.Getenv("IPP_TEST_VAR"))`, true)
	if got := streamText(iopub, "stdout"); got != "42 from-config\n" {
		t.Errorf("stdout %q", got)
	}
}

// TestRealEnvironmentByDefault: outside the sandbox snippets see the
// engine's environment (a batch job's SLURM_* variables) and may run
// subprocesses, as Python engines do.
func TestRealEnvironmentByDefault(t *testing.T) {
	t.Setenv("IPP_TEST_REAL_ENV", "from-process")
	f, _, _ := start(t, fakeOptions{}, nil)
	_, iopub := execute(t, f, `import "os/exec"
out, err := exec.Command("echo", "sub").Output()
fmt.Println(os.Getenv("IPP_TEST_REAL_ENV"), strings.TrimSpace(string(out)), err)`, true)
	if got := streamText(iopub, "stdout"); got != "from-process sub <nil>\n" {
		t.Errorf("stdout %q", got)
	}
}

// TestQuietGoApply: a Go apply publishes nothing on IOPub unless it
// prints, and says so in iopub_idle; one that prints gets its stream and
// the usual status idle. Interpreted functions are callable by name.
func TestQuietGoApply(t *testing.T) {
	f, _, _ := start(t, fakeOptions{}, nil)
	execute(t, f, `func shout(s string) string { fmt.Println("hi", s); return s + "!" }
func quiet(n int) int { return n * 2 }`, true)
	reply := applyQuiet(t, f, "quiet", 21)
	var n int
	result(t, reply, &n)
	if n != 42 || metadata(t, reply)["iopub_idle"] != false {
		t.Errorf("quiet(21) = %d, metadata %s", n, reply.Metadata)
	}
	reply = applyQuiet(t, f, "shout", "x")
	var s string
	result(t, reply, &s)
	if s != "x!" || metadata(t, reply)["iopub_idle"] != true {
		t.Errorf("shout = %q, metadata %s", s, reply.Metadata)
	}
}
