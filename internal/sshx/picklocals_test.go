package sshx

import (
	"net"
	"testing"
)

// TestPickLocalsDistinct: the free ports picked for one tunnel are all
// different (a port released before the next was picked could come back,
// and ssh refuses the whole forward request on a duplicate), and they are
// free again afterwards, for ssh to bind.
func TestPickLocalsDistinct(t *testing.T) {
	fwds := make([]Forward, 64)
	for i := range fwds {
		fwds[i] = Forward{Remote: "127.0.0.1:9"}
	}
	fwds[5].Local = "127.0.0.1:65000" // a given port is used as given
	locals, specs, err := pickLocals(fwds)
	if err != nil {
		t.Fatal(err)
	}
	if len(locals) != len(fwds) || len(specs) != len(fwds) {
		t.Fatalf("%d locals and %d specs for %d forwards", len(locals), len(specs), len(fwds))
	}
	seen := map[string]bool{}
	for _, l := range locals {
		if seen[l] {
			t.Fatalf("local address %s picked twice: %v", l, locals)
		}
		seen[l] = true
	}
	if locals[5] != "127.0.0.1:65000" || specs[5] != "127.0.0.1:65000:127.0.0.1:9" {
		t.Fatalf("given local address: %s, spec %s", locals[5], specs[5])
	}
	ln, err := net.Listen("tcp", locals[0])
	if err != nil {
		t.Fatalf("a picked port is still held after pickLocals returned: %v", err)
	}
	ln.Close()
	if _, _, err := pickLocals([]Forward{{Remote: "no-port"}}); err == nil {
		t.Fatal("a remote without a port was accepted")
	}
}
