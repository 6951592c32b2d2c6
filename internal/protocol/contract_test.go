package protocol

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReplyType(t *testing.T) {
	for _, c := range []struct{ req, want string }{
		{"execute_request", "execute_reply"},
		{"apply_request", "apply_reply"},
		{"kernel_info_request", "kernel_info_reply"},
		{"clear_request", "clear_reply"},
		{"abort_request", "abort_reply"},
		{"shutdown_request", "shutdown_reply"},
		{"signal_request", "signal_reply"},
		// Not requests: no Jupyter reply name exists, and the Python
		// client raises on a shell reply type it has no handler for.
		{"comm_msg", "apply_reply"},
		{"_request", "apply_reply"}, // the nanny's reply type, never a request
		{"", "apply_reply"},
		{"execute_reply", "apply_reply"},
	} {
		if got := ReplyType(c.req); got != c.want {
			t.Errorf("ReplyType(%q) = %q, want %q", c.req, got, c.want)
		}
	}
	if FailureReplyType != "apply_reply" {
		t.Errorf("scheduler failures must be apply_reply (spec §6.2), got %q", FailureReplyType)
	}
}

func TestMethod(t *testing.T) {
	for req, want := range map[string]string{"execute_request": "execute", "apply_request": "apply", "clear_request": "clear", "comm_msg": "comm_msg"} {
		if got := Method(req); got != want {
			t.Errorf("Method(%q) = %q, want %q", req, got, want)
		}
	}
}

// decoded is an error dict as a Python client sees it: plain JSON.
func decoded(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewError(t *testing.T) {
	m := decoded(t, NewError("TaskTimeout", "task abc timed out"))
	want := map[string]any{
		"status":      "error",
		"ename":       "TaskTimeout",
		"evalue":      "task abc timed out",
		"traceback":   []any{"TaskTimeout: task abc timed out"},
		"engine_info": map[string]any{}, // as ipyparallel's schedulers send it
	}
	if !jsonEqual(m, want) {
		t.Errorf("NewError = %v, want %v", m, want)
	}
}

func TestNewEngineError(t *testing.T) {
	ec := NewEngineError("ZeroDivisionError", "division by zero", []string{"line 1", "line 2"}, "uuid-1", 0, "apply_request")
	want := map[string]any{
		"status":      "error",
		"ename":       "ZeroDivisionError",
		"evalue":      "division by zero",
		"traceback":   []any{"line 1", "line 2"},
		"engine_info": map[string]any{"engine_uuid": "uuid-1", "engine_id": 0.0, "method": "apply"},
	}
	if m := decoded(t, ec); !jsonEqual(m, want) {
		t.Errorf("NewEngineError = %v, want %v", m, want)
	}

	// Defaults: a name and a traceback are always there for the client.
	ec = NewEngineError("", "boom", nil, "uuid-2", 3, "execute_request")
	if ec.EName != "Error" || !slices.Equal(ec.Traceback, []string{"Error: boom"}) || ec.EngineInfo.Method != "execute" || ec.EngineInfo.EngineID != 3 {
		t.Errorf("defaults: %+v", ec)
	}
	// IOPub's copy: no status, no execution_count.
	ec.Status, ec.ExecutionCount = "", nil
	if m := decoded(t, ec); m["status"] != nil || m["execution_count"] != nil {
		t.Errorf("IOPub error keeps reply-only keys: %v", m)
	}
	n := 7
	ec.ExecutionCount = &n
	if m := decoded(t, ec); m["execution_count"] != 7.0 {
		t.Errorf("execution_count: %v", m)
	}
}

// TestEngineInfoAllOrNone: spec §7.1, the 7.1 client indexes every key of
// a non-empty engine_info, so one is never sent partially.
func TestEngineInfoAllOrNone(t *testing.T) {
	for _, ei := range []ErrorEngineInfo{{}, {EngineID: 4}, {Method: "apply"}, {EngineID: 2, Method: "execute"}} {
		if m := decoded(t, ei); len(m) != 0 {
			t.Errorf("%+v without uuid encodes as %v, want {}", ei, m)
		}
	}
	m := decoded(t, ErrorEngineInfo{EngineUUID: "u"})
	for _, k := range []string{"engine_uuid", "engine_id", "method"} {
		if _, ok := m[k]; !ok {
			t.Errorf("engine_info with a uuid lacks %s: %v", k, m)
		}
	}
}

func TestErrorContentDecode(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     ErrorEngineInfo
		zero     bool
	}{
		{"hub/scheduler", `{"status":"error","ename":"E","evalue":"v","traceback":[],"engine_info":{}}`, ErrorEngineInfo{EngineID: -1}, true},
		{"no engine_info", `{"status":"error","ename":"E","evalue":"v","traceback":[]}`, ErrorEngineInfo{}, true},
		{"null engine_info", `{"ename":"E","evalue":"v","traceback":[],"engine_info":null}`, ErrorEngineInfo{EngineID: -1}, true},
		{"python 7.1 engine", `{"ename":"E","evalue":"v","traceback":[],"engine_info":{"engine_uuid":"u","engine_id":-1,"method":"execute"}}`, ErrorEngineInfo{"u", -1, "execute"}, false},
		{"engine 0", `{"ename":"E","evalue":"v","traceback":[],"engine_info":{"engine_uuid":"u","engine_id":0,"method":"apply"}}`, ErrorEngineInfo{"u", 0, "apply"}, false},
		// Absent engine_id must not read as engine 0.
		{"no engine_id", `{"ename":"E","evalue":"v","traceback":[],"engine_info":{"engine_uuid":"u"}}`, ErrorEngineInfo{"u", -1, ""}, false},
	} {
		var ec ErrorContent
		if err := json.Unmarshal([]byte(c.in), &ec); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if ec.EngineInfo != c.want || ec.EngineInfo.IsZero() != c.zero || ec.EName != "E" {
			t.Errorf("%s: %+v (zero %v), want %+v (zero %v)", c.name, ec.EngineInfo, ec.EngineInfo.IsZero(), c.want, c.zero)
		}
	}
	var ec ErrorContent
	if err := json.Unmarshal([]byte(`{"ename":"E","engine_info":{"engine_id":"one"}}`), &ec); err == nil {
		t.Error("an engine_id that is not a number is accepted")
	}
}

func TestReplyMetadata(t *testing.T) {
	quiet := false
	md := ReplyMetadata{Started: "2026-01-02T03:04:05.000000Z", DependenciesMet: true, Engine: "u", Status: "ok", IOPubIdle: &quiet}
	m := decoded(t, md)
	// Keys the Python schedulers index (spec §5.1, §6.2, §6.4).
	for _, k := range []string{"started", "dependencies_met", "engine", "is_broadcast", "is_coalescing", "original_msg_id", "status"} {
		if _, ok := m[k]; !ok {
			t.Errorf("reply metadata lacks %s: %v", k, m)
		}
	}
	if m["iopub_idle"] != false {
		t.Errorf("iopub_idle: %v", m)
	}
	for _, k := range []string{"engine_info", "label"} {
		if _, ok := m[k]; ok {
			t.Errorf("ok reply metadata has %s: %v", k, m)
		}
	}
	md.IOPubIdle = nil
	if m := decoded(t, md); m["iopub_idle"] != nil {
		t.Errorf("iopub_idle sent on a reply that did not ask for it: %v", m)
	}
}

func TestParseReplyMetadata(t *testing.T) {
	for _, c := range []struct {
		name, in string
		check    func(ReplyMetadata) bool
	}{
		{"well formed", `{"started":"s","engine":"u","status":"ok","iopub_idle":false}`,
			func(m ReplyMetadata) bool {
				return m.Engine == "u" && m.Started == "s" && m.IOPubIdle != nil && !*m.IOPubIdle
			}},
		{"started null", `{"started":null,"engine":"u"}`,
			func(m ReplyMetadata) bool { return m.Started == "" && m.Engine == "u" && m.IOPubIdle == nil }},
		{"wrong type elsewhere keeps the rest", `{"dependencies_met":"yes","engine":"u","iopub_idle":true,"status":"error","engine_info":{"engine_uuid":"u","engine_id":2,"method":"apply"}}`,
			func(m ReplyMetadata) bool {
				return m.Engine == "u" && m.IOPubIdle != nil && *m.IOPubIdle && m.Status == "error" && m.EngineInfo != nil && m.EngineInfo.EngineID == 2
			}},
		{"iopub_idle null is absent", `{"engine":7,"iopub_idle":null}`,
			func(m ReplyMetadata) bool { return m.IOPubIdle == nil && m.Engine == "" }},
		{"iopub_idle of the wrong type is absent, not quiet", `{"iopub_idle":"no","engine":[]}`,
			func(m ReplyMetadata) bool { return m.IOPubIdle == nil }},
		{"not an object", `[1,2]`, func(m ReplyMetadata) bool { return m.Engine == "" && m.IOPubIdle == nil }},
		{"empty", ``, func(m ReplyMetadata) bool { return m.Engine == "" }},
	} {
		if got := ParseReplyMetadata([]byte(c.in)); !c.check(got) {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
}

// TestEnvNames guards the environment variable names: each is spelled
// once, with the prefix test harnesses strip, and those ipyparallel shares
// keep its spelling.
func TestEnvNames(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "env.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(v, EnvPrefix) || !strings.HasPrefix(name.Name, "Env") {
					t.Errorf("%s = %q: want an Env* name for an %s* variable", name.Name, v, EnvPrefix)
				}
				if vs.Doc == nil {
					t.Errorf("%s has no doc comment (what it carries, who sets it, who reads it)", name.Name)
				}
				if other, dup := seen[v]; dup {
					t.Errorf("%q is both %s and %s", v, other, name.Name)
				}
				seen[v] = name.Name
			}
		}
	}
	for _, v := range []string{"IPP_CONNECTION_INFO", "IPP_PROFILE_DIR", "IPP_CLUSTER_ID", "IPP_SESSION_KEY",
		"IPP_ENABLE_CURVE", "IPP_CURVE_SERVERKEY", "IPP_CURVE_SECRETKEY", "IPP_CURVE_PUBLICKEY", "IPP_NONINTERACTIVE"} {
		if seen[v] == "" {
			t.Errorf("ipyparallel's %s is missing", v)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestLeafPackage: every package of the module may import this one, so it
// must import none of them.
func TestLeafPackage(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/ipp-hpc/ipp") {
				t.Errorf("%s imports %s: internal/protocol must stay a leaf", name, p)
			}
		}
	}
}
