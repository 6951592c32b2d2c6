package ipp

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

func TestPartition(t *testing.T) {
	cases := []struct {
		n, parts int
		want     string
	}{
		{10, 3, "[[0 4] [4 7] [7 10]]"},
		{2, 3, "[[0 1] [1 2] [2 2]]"},
		{0, 2, "[[0 0] [0 0]]"},
		{6, 2, "[[0 3] [3 6]]"},
	}
	for _, c := range cases {
		var got [][2]int
		for i := 0; i < c.parts; i++ {
			lo, hi := partition(c.n, i, c.parts)
			got = append(got, [2]int{lo, hi})
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("partition(%d, %d) = %v, want %s", c.n, c.parts, got, c.want)
		}
	}
}

func TestConcat(t *testing.T) {
	if got := concat([]any{[]float64{1, 2}, []float64{3}}); fmt.Sprintf("%T %v", got, got) != "[]float64 [1 2 3]" {
		t.Errorf("same type: %T %v", got, got)
	}
	if got := concat([]any{[]int{1}, []any{"a"}, nil}); fmt.Sprintf("%T %v", got, got) != "[]interface {} [1 a]" {
		t.Errorf("mixed: %T %v", got, got)
	}
}

func TestDeps(t *testing.T) {
	d, err := Deps("a", []string{"b"}, &AsyncResult{futures: []*future{{msgID: "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	if string(b) != `["a","b","c"]` {
		t.Errorf("default deps %s", b)
	}
	if _, err := Deps(3); err == nil {
		t.Error("Deps(3) accepted")
	}
	b, _ = json.Marshal(Dependency{})
	if string(b) != `[]` {
		t.Errorf("empty dependency %s", b)
	}
}

func TestErrorsRender(t *testing.T) {
	re := &RemoteError{Engine: 2, Method: "apply", EName: "ValueError", EValue: "bad"}
	if re.Error() != "[2:apply] ValueError: bad" {
		t.Errorf("%q", re.Error())
	}
	hub := &RemoteError{Engine: -1, EName: "TaskTimeout"}
	if hub.Error() != "TaskTimeout" {
		t.Errorf("%q", hub.Error())
	}
	ce := &CompositeError{Method: "f", Errors: []*RemoteError{re, {Engine: 3, EName: "EngineError", EValue: "died"}}}
	want := "one or more exceptions raised in: f\n[2:apply] ValueError: bad\n[3:?] EngineError: died"
	if ce.Error() != want {
		t.Errorf("%q", ce.Error())
	}
	if !IsEngineError(ce) {
		t.Error("IsEngineError does not look inside CompositeError")
	}
	var got *RemoteError
	if !errors.As(ce, &got) || got != re {
		t.Error("errors.As through CompositeError")
	}
}

func TestClusterID(t *testing.T) {
	id := newClusterID(time.Unix(1795661217, 0))
	if !regexp.MustCompile(`^1795661217-[a-z0-9]{4}$`).MatchString(id) {
		t.Errorf("cluster id %q", id)
	}
}

func TestConnectProfileBadFile(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t, 5*time.Second)
	// Missing: waits for the file, then gives up.
	start := time.Now()
	if _, err := ConnectProfile(ctx, dir, "x", WithConnectTimeout(200*time.Millisecond)); err == nil {
		t.Fatal("connected without a file")
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Error("did not wait for the file to appear")
	}
	// Unusable: fails at once.
	if err := wire.WritePrivateJSON(wire.ClientFile(dir, "x"), map[string]any{
		"registration": 1, "interface": "tcp://127.0.0.1", "signature_scheme": "hmac-md5",
	}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err := ConnectProfile(ctx, dir, "x", WithConnectTimeout(3*time.Second))
	if err == nil || !strings.Contains(err.Error(), "hmac-md5") || time.Since(start) > time.Second {
		t.Errorf("bad scheme: %v after %v", err, time.Since(start))
	}
}
