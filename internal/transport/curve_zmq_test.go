//go:build cgo && !nolibzmq

package transport

import (
	"testing"

	zmq "github.com/pebbe/zmq4"
)

// TestCurveKeysMatchLibzmq: keys made in Go are the keys libzmq derives,
// so a controller's generated pair works with libzmq and pyzmq peers.
func TestCurveKeysMatchLibzmq(t *testing.T) {
	pub, sec, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	got, err := zmq.AuthCurvePublic(sec)
	if err != nil || got != pub {
		t.Fatalf("libzmq derives %q (%v) from our secret, we said %q", got, err, pub)
	}
	lpub, lsec, err := zmq.NewCurveKeypair()
	if err != nil {
		t.Fatal(err)
	}
	if mine, err := CurvePublicKey(lsec); err != nil || mine != lpub {
		t.Fatalf("CurvePublicKey(libzmq secret) = %q, %v; libzmq says %q", mine, err, lpub)
	}
	if z85Encode([]byte(zmq.Z85decode(lpub))) != lpub {
		t.Fatal("our Z85 differs from libzmq's")
	}
}
