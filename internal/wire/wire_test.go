package wire

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

func TestFormatDate(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 26, 2, 42, 26, 661680000, time.UTC), "2026-11-26T02:42:26.661680Z"},
		{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), "2026-11-26T12:00:00Z"},
		{time.Date(2026, 11, 26, 12, 0, 0, 999, time.UTC), "2026-11-26T12:00:00Z"}, // below a microsecond
		{time.Date(2026, 11, 26, 13, 0, 0, 5000, time.FixedZone("X", 3600)), "2026-11-26T12:00:00.000005Z"},
	} {
		if got := FormatDate(tc.in); got != tc.want {
			t.Errorf("FormatDate(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	want := time.Date(2026, 11, 26, 2, 42, 26, 661680000, time.UTC)
	for _, s := range []string{
		"2026-11-26T02:42:26.661680Z",
		"2026-11-26T02:42:26.66168Z",
		"2026-11-26T03:42:26.661680+01:00",
		"2026-11-26T03:42:26.661680+0100",
		"2026-11-26T02:42:26.661680",
	} {
		got, err := ParseDate(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "yesterday", "2026-11-26", "2026-11-26T02:42:26.661680ZZ"} {
		if _, err := ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) accepted", s)
		}
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	s := NewSession([]byte("secret"), "")
	req, hreq, err := s.Build(Out{MsgType: "execute_request", Content: map[string]any{"code": "1+1"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header != hreq || m.Header.Version != ProtocolVersion || m.Header.Session != s.ID() {
		t.Fatalf("header %+v, built %+v", m.Header, hreq)
	}
	reply, _, err := s.Build(Out{Idents: [][]byte{[]byte("a"), []byte("b")}, MsgType: "execute_reply", Parent: m.RawHeader,
		Metadata: map[string]any{"status": "ok"}, Buffers: [][]byte{{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Parse(reply)
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent.MsgID != hreq.MsgID || len(r.Idents) != 2 || string(r.Buffers[0]) != "\x01\x02\x03" {
		t.Fatalf("reply %+v", r)
	}
	if _, err := s.Parse(reply); err != ErrReplay {
		t.Fatalf("replay: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	s := NewSession([]byte("k"), "")
	good, _, _ := s.Build(Out{MsgType: "x"})
	tamper := func(i int, v string) [][]byte {
		f := append([][]byte(nil), good...)
		f[i] = []byte(v)
		return f
	}
	for name, tc := range map[string]struct {
		frames [][]byte
		want   string
	}{
		"no delimiter": {[][]byte{[]byte("a")}, "delimiter"},
		"short":        {good[:4], "fewer than 5"},
		"unsigned":     {tamper(1, ""), "unsigned"},
		"bad sig":      {tamper(1, strings.Repeat("0", 64)), "invalid signature"},
		"content":      {tamper(5, `{"x":1}`), "invalid signature"},
	} {
		if _, err := s.Parse(tc.frames); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
	// A key holder that writes garbage JSON is refused too.
	h := []byte("{nope")
	f := [][]byte{[]byte(Delimiter), s.Sign(h, []byte("{}"), []byte("{}"), []byte("{}")), h, []byte("{}"), []byte("{}"), []byte("{}")}
	if _, err := s.Parse(f); err == nil {
		t.Error("bad header JSON accepted")
	}
	// With no key nothing is signed or checked, as in jupyter_client.
	open := NewSession(nil, "")
	f2, _, _ := open.Build(Out{MsgType: "x"})
	if len(f2[1]) != 0 {
		t.Errorf("keyless signature %q", f2[1])
	}
	if _, err := open.Parse(f2); err != nil {
		t.Error(err)
	}
}

func TestReplayGuardForgetsOldest(t *testing.T) {
	g := NewReplayGuard(3)
	for _, s := range []string{"a", "b", "c"} {
		if !g.Add(s) {
			t.Fatal(s)
		}
	}
	if g.Add("c") {
		t.Fatal("duplicate accepted")
	}
	g.Add("d") // evicts a
	if !g.Add("a") {
		t.Fatal("oldest should have been forgotten")
	}
	if g.Add("d") {
		t.Fatal("recent duplicate accepted")
	}
}

// TestReplayGuardWindowSlides checks, far past the first wrap of the
// ring, that exactly the last n signatures are remembered.
func TestReplayGuardWindowSlides(t *testing.T) {
	const n = 5
	g := NewReplayGuard(n)
	for i := range 4 * n {
		if !g.Add(strconv.Itoa(i)) {
			t.Fatalf("%d refused on first sight", i)
		}
		for j := max(0, i-n+1); j <= i; j++ {
			if g.Add(strconv.Itoa(j)) {
				t.Fatalf("after %d: %d (within the window) accepted again", i, j)
			}
		}
	}
	if !g.Add(strconv.Itoa(3*n - 1)) {
		t.Fatalf("%d is outside the window and should be accepted", 3*n-1)
	}
}

func TestConnectionFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("IPYTHONDIR", dir)
	pd := ProfileDir("")
	if pd != filepath.Join(dir, "profile_default") {
		t.Fatal(pd)
	}
	if got := ClientFile(pd, ""); got != filepath.Join(pd, "security", "ipcontroller-client.json") {
		t.Fatal(got)
	}
	if got := EngineFile(pd, "x1"); got != filepath.Join(pd, "security", "ipcontroller-x1-engine.json") {
		t.Fatal(got)
	}
	if got := ClusterFile(pd, ""); got != filepath.Join(pd, "security", "cluster-.json") {
		t.Fatal(got)
	}
	ei := EngineInfo{Common: Common{Interface: "tcp://127.0.0.1", Registration: 5, Key: "k", Location: "h"}, HBPing: 6, HBPong: 7, Broadcast: []int{8, 9}}
	ei.Defaults()
	path := EngineFile(pd, "")
	if err := WritePrivateJSON(path, ei); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode().Perm())
	}
	got, err := LoadEngineInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL(got.HBPong) != "tcp://127.0.0.1:7" || len(got.Broadcast) != 2 {
		t.Fatalf("%+v", got)
	}
	// Every key ipyparallel writes is present, curve_serverkey as null.
	raw, _ := os.ReadFile(path)
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{"ssh", "interface", "registration", "control", "mux", "task", "iopub", "hb_ping", "hb_pong", "broadcast", "key", "curve_serverkey", "location", "pack", "unpack", "signature_scheme"} {
		if _, ok := m[k]; !ok {
			t.Errorf("engine file lacks %q", k)
		}
	}
	// A client file is not an engine file.
	if _, err := ParseEngineInfo([]byte(`{"interface":"tcp://127.0.0.1","registration":1}`)); err == nil {
		t.Error("client-shaped JSON accepted as engine info")
	}
	if _, err := ParseEngineInfo([]byte(`{"interface":"tcp://127.0.0.1","registration":1,"hb_ping":1,"hb_pong":2,"broadcast":[3],"pack":"pickle"}`)); err == nil {
		t.Error("pickle packer accepted")
	}
}

func TestWildcardInterface(t *testing.T) {
	host, _ := os.Hostname()
	c := Common{Interface: "tcp://0.0.0.0", Location: host}
	if got := c.URL(5); got != "tcp://127.0.0.1:5" {
		t.Errorf("local wildcard: %s", got)
	}
	c = Common{Interface: "tcp://*", Location: "10.1.2.3"}
	if got := c.URL(5); got != "tcp://10.1.2.3:5" {
		t.Errorf("remote wildcard: %s", got)
	}
}

// TestPythonSessionInterop signs with Go and verifies with jupyter_client's
// Session (what every Python peer uses), and the other way round.
func TestPythonSessionInterop(t *testing.T) {
	py := testutil.NeedPython(t, "jupyter_client")
	s := NewSession([]byte("5f1e-key"), "")
	frames, h, err := s.Build(Out{MsgType: "apply_request", Content: map[string]any{"ü": "ñ", "n": 1.5},
		Metadata: map[string]any{"after": []string{}}, Buffers: [][]byte{[]byte("raw")}})
	if err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
from jupyter_client.session import Session
s = Session(key=b"5f1e-key", signature_scheme="hmac-sha256")
frames = [bytes.fromhex(x) for x in json.load(sys.stdin)]
idents, msg = s.feed_identities(frames)
m = s.deserialize(msg)
out = s.serialize({"header": s.msg_header("apply_reply"), "parent_header": m["header"], "metadata": {}, "content": {"status": "ok", "x": m["content"]["ü"]}, "buffers": []})
print(json.dumps({"msg_id": m["header"]["msg_id"], "date": str(m["header"]["date"]), "buf": bytes(m["buffers"][0]).decode(), "reply": [f.hex() for f in out]}))
`
	hexFrames := make([]string, len(frames))
	for i, f := range frames {
		hexFrames[i] = hex.EncodeToString(f)
	}
	in, _ := json.Marshal(hexFrames)
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got struct {
		MsgID string   `json:"msg_id"`
		Buf   string   `json:"buf"`
		Reply []string `json:"reply"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.MsgID != h.MsgID || got.Buf != "raw" {
		t.Fatalf("python saw %+v", got)
	}
	reply := make([][]byte, len(got.Reply))
	for i, x := range got.Reply {
		if reply[i], err = hex.DecodeString(x); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Parse(reply)
	if err != nil {
		t.Fatalf("python's reply does not verify: %v", err)
	}
	var c struct{ X string }
	m.DecodeContent(&c)
	if m.Parent.MsgID != h.MsgID || c.X != "ñ" || m.Header.Version == "" {
		t.Fatalf("reply %+v %s", m.Header, m.Content)
	}
}
