package transport

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// Curve turns on CurveZMQ (RFC 26) for a socket: the ZMTP connection is
// encrypted, and a client that does not know the server's public key
// cannot complete the handshake, so it never gets a frame through.
//
// Keys are Z85 text of 40 characters, as in ipyparallel's connection files
// and environment variables.
type Curve struct {
	// Server makes the socket a CURVE server; it then needs only SecretKey
	// (libzmq derives the public key). Servers accept any client that knows
	// their public key: there is no allow-list of client keys (no ZAP
	// handler), as with ipyparallel.
	Server bool
	// SecretKey is this socket's long-term secret key. A client with none
	// gets a fresh key pair per socket.
	SecretKey string
	// PublicKey is this socket's public key; empty means derived from
	// SecretKey.
	PublicKey string
	// ServerKey is the server's public key, required for a client.
	ServerKey string
}

// ErrNoCurve is returned by NewSocket when CURVE is asked of a backend that
// cannot speak it (the pure-Go one, or a libzmq built without libsodium).
var ErrNoCurve = errors.New("transport: this build cannot use CURVE encryption " +
	"(the pure-Go ZeroMQ backend has no CurveZMQ); use a binary built with cgo and libzmq, " +
	"or start the controller with --no-curve")

// z85Alphabet is the Z85 alphabet (ZeroMQ RFC 32).
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Encode encodes data, whose length must be a multiple of 4.
func z85Encode(data []byte) string {
	var b strings.Builder
	for i := 0; i+4 <= len(data); i += 4 {
		v := uint32(data[i])<<24 | uint32(data[i+1])<<16 | uint32(data[i+2])<<8 | uint32(data[i+3])
		var chunk [5]byte
		for j := 4; j >= 0; j-- {
			chunk[j] = z85Alphabet[v%85]
			v /= 85
		}
		b.Write(chunk[:])
	}
	return b.String()
}

// z85Decode decodes Z85 text whose length is a multiple of 5.
func z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("Z85 text must have a multiple of 5 characters, not %d", len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := range 5 {
			d := strings.IndexByte(z85Alphabet, s[i+j])
			if d < 0 {
				return nil, fmt.Errorf("%q is not a Z85 character", s[i+j])
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("Z85 group %q overflows 32 bits", s[i:i+5])
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}

// checkKey reports whether key is a Z85-encoded 32-byte CURVE key.
func checkKey(what, key string) error {
	if len(key) != 40 {
		return fmt.Errorf("transport: CURVE %s must be 40 characters of Z85, got %d", what, len(key))
	}
	if _, err := z85Decode(key); err != nil {
		return fmt.Errorf("transport: CURVE %s: %w", what, err)
	}
	return nil
}

// NewCurveKeyPair generates a CURVE key pair (X25519, as libsodium's
// crypto_box_keypair) in Z85. It needs no libzmq, so a controller or
// client of any build can make keys.
func NewCurveKeyPair() (public, secret string, err error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("transport: generating a CURVE key: %w", err)
	}
	return z85Encode(k.PublicKey().Bytes()), z85Encode(k.Bytes()), nil
}

// CurvePublicKey derives the Z85 public key of a Z85 secret key.
func CurvePublicKey(secret string) (string, error) {
	if err := checkKey("secret key", secret); err != nil {
		return "", err
	}
	raw, _ := z85Decode(secret)
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return "", fmt.Errorf("transport: CURVE secret key: %w", err)
	}
	return z85Encode(k.PublicKey().Bytes()), nil
}

// resolve checks the keys and fills what can be derived or generated, so
// that the backend only sets options.
func (c Curve) resolve() (Curve, error) {
	if c.Server {
		if c.SecretKey == "" {
			return c, errors.New("transport: a CURVE server socket needs its secret key")
		}
	} else {
		if c.ServerKey == "" {
			return c, errors.New("transport: a CURVE client socket needs the server's public key")
		}
		if err := checkKey("server key", c.ServerKey); err != nil {
			return c, err
		}
		if c.SecretKey == "" {
			if c.PublicKey != "" {
				return c, errors.New("transport: CURVE public key given without its secret key")
			}
			var err error
			if c.PublicKey, c.SecretKey, err = NewCurveKeyPair(); err != nil {
				return c, err
			}
		}
	}
	if err := checkKey("secret key", c.SecretKey); err != nil {
		return c, err
	}
	pub, err := CurvePublicKey(c.SecretKey)
	if err != nil {
		return c, err
	}
	if c.PublicKey != "" && c.PublicKey != pub {
		return c, errors.New("transport: CURVE public key does not belong to the secret key")
	}
	c.PublicKey = pub
	return c, nil
}

// CurveClient is the setting of a CURVE client for a server whose public
// key is serverKey: nil when serverKey is empty (the server does not use
// CURVE). The client's own key pair is public and secret, or a fresh one
// when secret is empty; one setting is meant for all of a process's
// sockets, so that they present the same key.
func CurveClient(serverKey, public, secret string) (*Curve, error) {
	if serverKey == "" {
		return nil, nil
	}
	if secret == "" {
		var err error
		if public, secret, err = NewCurveKeyPair(); err != nil {
			return nil, err
		}
	}
	return &Curve{ServerKey: serverKey, PublicKey: public, SecretKey: secret}, nil
}
