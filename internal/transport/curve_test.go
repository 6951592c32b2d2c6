package transport

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCurveZ85Vector checks the codec against ZeroMQ RFC 32's example.
func TestCurveZ85Vector(t *testing.T) {
	raw := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	if got := z85Encode(raw); got != "HelloWorld" {
		t.Fatalf("z85Encode = %q, want HelloWorld", got)
	}
	back, err := z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("z85Decode = %x, %v; want %x", back, err, raw)
	}
	for _, bad := range []string{"Hell", "Hell~World", "#####"} {
		if _, err := z85Decode(bad); err == nil {
			t.Errorf("z85Decode(%q) accepted bad text", bad)
		}
	}
}

func TestCurveKeyPair(t *testing.T) {
	pub, sec, err := NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 40 || len(sec) != 40 || pub == sec {
		t.Fatalf("key pair %q / %q: want two different 40-character keys", pub, sec)
	}
	derived, err := CurvePublicKey(sec)
	if err != nil || derived != pub {
		t.Fatalf("CurvePublicKey(secret) = %q, %v; want %q", derived, err, pub)
	}
	pub2, _, _ := NewCurveKeyPair()
	if pub2 == pub {
		t.Fatal("two generated key pairs are equal")
	}
	if _, err := CurvePublicKey("short"); err == nil || !strings.Contains(err.Error(), "40 characters") {
		t.Fatalf("CurvePublicKey(short) = %v, want a length error", err)
	}
}

func TestCurveResolveRefusesBadKeys(t *testing.T) {
	pub, sec, _ := NewCurveKeyPair()
	otherPub, _, _ := NewCurveKeyPair()
	cases := map[string]Curve{
		"server without secret":    {Server: true},
		"client without server":    {SecretKey: sec},
		"bad server key":           {ServerKey: strings.Repeat("~", 40)},
		"public without secret":    {ServerKey: pub, PublicKey: pub},
		"mismatched pair":          {ServerKey: pub, SecretKey: sec, PublicKey: otherPub},
		"secret key of wrong size": {Server: true, SecretKey: sec[:35]},
	}
	for name, c := range cases {
		if _, err := c.resolve(); err == nil {
			t.Errorf("%s: resolve accepted %+v", name, c)
		}
	}
	got, err := Curve{ServerKey: pub}.resolve()
	if err != nil || got.SecretKey == "" || got.PublicKey == "" {
		t.Fatalf("a client with only the server key gets an ephemeral pair: %+v, %v", got, err)
	}
}

// TestCurveGozmqRefuses: the pure-Go backend cannot do CURVE and must say
// so at once rather than hang in a handshake.
func TestCurveGozmqRefuses(t *testing.T) {
	b, err := Lookup("gozmq")
	if err != nil {
		t.Fatal(err)
	}
	pub, sec, _ := NewCurveKeyPair()
	for _, c := range []*Curve{{Server: true, SecretKey: sec}, {ServerKey: pub}} {
		s, err := b.NewSocket(Dealer, Options{Curve: c})
		if !errors.Is(err, ErrNoCurve) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("gozmq NewSocket with %+v: err = %v, want ErrNoCurve", c, err)
		}
	}
	if !strings.Contains(ErrNoCurve.Error(), "--no-curve") || !strings.Contains(ErrNoCurve.Error(), "libzmq") {
		t.Fatalf("ErrNoCurve does not say what to do: %v", ErrNoCurve)
	}
}

func needLibzmq(t *testing.T) Backend {
	t.Helper()
	b, err := Lookup("zmq")
	if err != nil {
		t.Skipf("SKIP: CURVE needs the libzmq backend, not in this build: %v", err)
	}
	return b
}

// TestCurveRoundTrip: a CURVE client reaches a CURVE server and back.
func TestCurveRoundTrip(t *testing.T) {
	b := needLibzmq(t)
	pub, sec, _ := NewCurveKeyPair()
	srv := newSock(t, b, Router, Options{Curve: &Curve{Server: true, SecretKey: sec}})
	ep := bindLocal(t, srv)
	cli := newSock(t, b, Dealer, Options{Identity: []byte("cli"), Curve: &Curve{ServerKey: pub}})
	connect(t, cli, ep)
	send(t, cli, strs("hello")...)
	m := recv(t, srv)
	wantFrames(t, m, strs("cli", "hello")...)
	send(t, srv, strs("cli", "back")...)
	wantFrames(t, recv(t, cli), strs("back")...)

	// PUB/SUB too: the controller's heartbeat and IOPub ports are PUBs.
	pubSock := newSock(t, b, Pub, Options{Curve: &Curve{Server: true, SecretKey: sec}})
	pep := bindLocal(t, pubSock)
	sub := newSock(t, b, Sub, Options{Curve: &Curve{ServerKey: pub}})
	connect(t, sub, pep)
	got := probeUntil(t, sub, 10*time.Second, func() { send(t, pubSock, strs("ping")...) })
	wantFrames(t, got, strs("ping")...)
}

// TestCurveKeepsOutPlainAndWrongKey: a NULL-mechanism peer and a CURVE
// peer with the wrong server key get nothing through, in either
// direction, while a good client works alongside them.
func TestCurveKeepsOutPlainAndWrongKey(t *testing.T) {
	b := needLibzmq(t)
	pub, sec, _ := NewCurveKeyPair()
	wrongPub, _, _ := NewCurveKeyPair()
	srv := newSock(t, b, Router, Options{Curve: &Curve{Server: true, SecretKey: sec}})
	ep := bindLocal(t, srv)
	plain := newSock(t, b, Dealer, Options{Identity: []byte("plain")})
	wrong := newSock(t, b, Dealer, Options{Identity: []byte("wrong"), Curve: &Curve{ServerKey: wrongPub}})
	connect(t, plain, ep)
	connect(t, wrong, ep)
	send(t, plain, strs("from plain")...)
	send(t, wrong, strs("from wrong")...)
	good := newSock(t, b, Dealer, Options{Identity: []byte("good"), Curve: &Curve{ServerKey: pub}})
	connect(t, good, ep)
	send(t, good, strs("from good")...)
	wantFrames(t, recv(t, srv), strs("good", "from good")...)
	// The bad peers sent before the good one; give them a generous further
	// window (libzmq retries their handshakes meanwhile) and require silence.
	select {
	case m := <-srv.Messages():
		t.Fatalf("the server received %s from a peer without the right key", show(m))
	case <-time.After(time.Second):
	}
	for _, id := range []string{"plain", "wrong"} {
		send(t, srv, strs(id, "secret reply")...)
	}
	for _, s := range []Socket{plain, wrong} {
		select {
		case m := <-s.Messages():
			t.Fatalf("a peer without the right key received %s", show(m))
		case <-time.After(200 * time.Millisecond):
		}
	}

	// A plain SUB on a CURVE PUB hears nothing while a CURVE SUB does.
	pubSock := newSock(t, b, Pub, Options{Curve: &Curve{Server: true, SecretKey: sec}})
	pep := bindLocal(t, pubSock)
	plainSub := newSock(t, b, Sub, Options{})
	connect(t, plainSub, pep)
	goodSub := newSock(t, b, Sub, Options{Curve: &Curve{ServerKey: pub}})
	connect(t, goodSub, pep)
	probeUntil(t, goodSub, 10*time.Second, func() { send(t, pubSock, strs("tick")...) })
	send(t, pubSock, strs("tick")...)
	recv(t, goodSub)
	select {
	case m := <-plainSub.Messages():
		t.Fatalf("a plain SUB received %s from a CURVE PUB", show(m))
	case <-time.After(200 * time.Millisecond):
	}
}
