package wire

import (
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

func TestCurveServerKeyInFiles(t *testing.T) {
	const key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	js := `{"interface":"tcp://127.0.0.1","registration":1,"hb_ping":2,"hb_pong":3,"broadcast":[4],` +
		`"key":"k","curve_serverkey":"` + key + `"}`
	ei, err := ParseEngineInfo([]byte(js))
	if err != nil {
		t.Fatalf("a file with curve_serverkey must load: %v", err)
	}
	t.Setenv(protocol.EnvCurveServerKey, "ignored-because-the-file-has-one")
	if got := ei.ServerKey(); got != key {
		t.Fatalf("ServerKey = %q, want the file's %q", got, key)
	}

	bad := strings.Replace(js, key, "tooshort", 1)
	if _, err := ParseEngineInfo([]byte(bad)); err == nil || !strings.Contains(err.Error(), "40-character") {
		t.Fatalf("a malformed curve_serverkey: err = %v, want a clear refusal", err)
	}

	noKey := strings.Replace(js, `"`+key+`"`, "null", 1)
	ei, err = ParseEngineInfo([]byte(noKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(protocol.EnvCurveServerKey, key)
	if got := ei.ServerKey(); got != key {
		t.Fatalf("ServerKey = %q, want $%s %q", got, protocol.EnvCurveServerKey, key)
	}
	t.Setenv(protocol.EnvCurveServerKey, "")
	if got := ei.ServerKey(); got != "" {
		t.Fatalf("ServerKey = %q without file key or env, want empty", got)
	}
}
