package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
)

// Delimiter separates routing identities from the signed message.
const Delimiter = "<IDS|MSG>"

// ProtocolVersion is the Jupyter messaging version we speak. Python peers
// treat a header without a version as protocol 4 and rewrite it.
const ProtocolVersion = "5.3"

// MaxFrames bounds how many buffer frames a message may carry; anything
// larger is treated as malformed rather than allocated.
const MaxFrames = 1 << 16

// Header is a Jupyter message header.
type Header struct {
	MsgID    string `json:"msg_id"`
	MsgType  string `json:"msg_type"`
	Username string `json:"username"`
	Session  string `json:"session"`
	Date     string `json:"date"`
	Version  string `json:"version"`
}

// Message is a parsed message. Metadata and Content keep the exact bytes
// received so that relays and re-parsing never change what was signed.
type Message struct {
	Idents    [][]byte
	Signature []byte
	Header    Header
	Parent    Header
	// RawHeader is the header as received; replies use it verbatim as their
	// parent_header so fields we do not model survive the round trip.
	RawHeader []byte
	RawParent []byte
	Metadata  json.RawMessage
	Content   json.RawMessage
	Buffers   [][]byte
}

// DecodeContent unmarshals the content frame into v.
func (m *Message) DecodeContent(v any) error {
	if err := json.Unmarshal(m.Content, v); err != nil {
		return fmt.Errorf("wire: %s content: %w", m.Header.MsgType, err)
	}
	return nil
}

// DecodeMetadata unmarshals the metadata frame into v.
func (m *Message) DecodeMetadata(v any) error {
	if err := json.Unmarshal(m.Metadata, v); err != nil {
		return fmt.Errorf("wire: %s metadata: %w", m.Header.MsgType, err)
	}
	return nil
}

// Errors a receiver reports for messages it refuses.
var (
	ErrNoDelimiter  = errors.New("wire: no <IDS|MSG> delimiter")
	ErrShort        = errors.New("wire: fewer than 5 frames after the delimiter")
	ErrUnsigned     = errors.New("wire: unsigned message")
	ErrBadSignature = errors.New("wire: invalid signature")
	ErrReplay       = errors.New("wire: duplicate signature (replayed message)")
)

// Split separates the routing identities from the frames after the
// delimiter (signature, header, parent, metadata, content, buffers).
func Split(frames [][]byte) (idents, body [][]byte, err error) {
	for i, f := range frames {
		if string(f) == Delimiter {
			body = frames[i+1:]
			if len(body) < 5 {
				return nil, nil, ErrShort
			}
			if len(body) > 5+MaxFrames {
				return nil, nil, fmt.Errorf("wire: %d buffers is more than the limit of %d", len(body)-5, MaxFrames)
			}
			return frames[:i], body, nil
		}
	}
	return nil, nil, ErrNoDelimiter
}

// Session signs, verifies and builds messages for one peer identity.
type Session struct {
	key      []byte
	id       string
	username string
	pid      int
	counter  atomic.Uint64
	macPool  sync.Pool
	replay   *ReplayGuard
}

// NewSession creates a session signing with key (empty means unsigned, as
// in ipyparallel). id is the session id; empty picks a fresh one.
func NewSession(key []byte, id string) *Session {
	if id == "" {
		id = NewID()
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "username"
	}
	s := &Session{key: append([]byte(nil), key...), id: id, username: user, pid: os.Getpid(), replay: NewReplayGuard(DefaultReplayWindow)}
	s.macPool.New = func() any { return hmac.New(sha256.New, s.key) }
	return s
}

// ID returns the session id (for engines, their uuid).
func (s *Session) ID() string { return s.id }

// Key returns the signing key.
func (s *Session) Key() []byte { return s.key }

// NewHeader makes a header with a fresh, unique msg_id.
func (s *Session) NewHeader(msgType string) Header {
	n := s.counter.Add(1) - 1
	return Header{
		MsgID:    s.id + "_" + strconv.Itoa(s.pid) + "_" + strconv.FormatUint(n, 10),
		MsgType:  msgType,
		Username: s.username,
		Session:  s.id,
		Date:     FormatDate(time.Now()),
		Version:  ProtocolVersion,
	}
}

// Sign returns the lowercase hex HMAC of the four JSON frames, or nil when
// the session has no key.
func (s *Session) Sign(header, parent, metadata, content []byte) []byte {
	if len(s.key) == 0 {
		return []byte{}
	}
	mac := s.macPool.Get().(hash.Hash)
	mac.Reset()
	mac.Write(header)
	mac.Write(parent)
	mac.Write(metadata)
	mac.Write(content)
	sum := mac.Sum(nil)
	s.macPool.Put(mac)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// Verify checks the signature of a message body (the frames after the
// delimiter) without recording it for replay protection; relays that only
// peek use it.
func (s *Session) Verify(body [][]byte) error {
	if len(s.key) == 0 {
		return nil
	}
	if len(body[0]) == 0 {
		return ErrUnsigned
	}
	want := s.Sign(body[1], body[2], body[3], body[4])
	if !hmac.Equal(want, body[0]) {
		return ErrBadSignature
	}
	return nil
}

// Parse splits, verifies, replay-checks and decodes a received message.
func (s *Session) Parse(frames [][]byte) (*Message, error) {
	idents, body, err := Split(frames)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(body); err != nil {
		return nil, err
	}
	if len(s.key) > 0 && !s.replay.Add(string(body[0])) {
		return nil, ErrReplay
	}
	return decode(idents, body)
}

// ParseUnchecked decodes a message without verifying its signature; only
// for messages this process signed itself or already verified.
func ParseUnchecked(frames [][]byte) (*Message, error) {
	idents, body, err := Split(frames)
	if err != nil {
		return nil, err
	}
	return decode(idents, body)
}

func decode(idents, body [][]byte) (*Message, error) {
	m := &Message{
		Idents:    idents,
		Signature: body[0],
		RawHeader: body[1],
		RawParent: body[2],
		Metadata:  body[3],
		Content:   body[4],
		Buffers:   body[5:],
	}
	if err := unmarshalHeader(body[1], &m.Header); err != nil {
		return nil, fmt.Errorf("wire: bad header: %w", err)
	}
	if m.Header.MsgType == "" {
		return nil, errors.New("wire: header has no msg_type")
	}
	if len(bytes.TrimSpace(body[2])) > 2 {
		if err := unmarshalHeader(body[2], &m.Parent); err != nil {
			return nil, fmt.Errorf("wire: bad parent header: %w", err)
		}
	}
	// Metadata and content are checked when decoded (DecodeMetadata,
	// DecodeContent), not here: relays forward them without reading them,
	// and scanning every frame twice was a tenth of the controller's time.
	return m, nil
}

// Out describes a message to build.
type Out struct {
	Idents [][]byte
	Header Header // zero: a fresh header is made from MsgType
	// MsgType is used when Header is zero.
	MsgType string
	// Parent is the raw parent header (a request's RawHeader); nil means {}.
	Parent   []byte
	Metadata any // nil means {}; []byte and json.RawMessage are used as is
	Content  any // as Metadata
	Buffers  [][]byte
}

var emptyObject = []byte("{}")

func marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return emptyObject, nil
	case []byte:
		return x, nil
	case json.RawMessage:
		return x, nil
	}
	return json.Marshal(v)
}

// Build signs and frames a message. It returns the frames and the header
// used, so callers can track the msg_id.
func (s *Session) Build(o Out) ([][]byte, Header, error) {
	h := o.Header
	if h.MsgID == "" {
		h = s.NewHeader(o.MsgType)
	}
	hb := marshalHeader(&h)
	pb := o.Parent
	if len(pb) == 0 {
		pb = emptyObject
	}
	mb, err := marshal(o.Metadata)
	if err != nil {
		return nil, h, fmt.Errorf("wire: metadata: %w", err)
	}
	cb, err := marshal(o.Content)
	if err != nil {
		return nil, h, fmt.Errorf("wire: content: %w", err)
	}
	frames := make([][]byte, 0, len(o.Idents)+6+len(o.Buffers))
	frames = append(frames, o.Idents...)
	frames = append(frames, []byte(Delimiter), s.Sign(hb, pb, mb, cb), hb, pb, mb, cb)
	frames = append(frames, o.Buffers...)
	return frames, h, nil
}

// Resign re-signs a message body in place after its header or metadata
// frame was replaced (the broadcast scheduler rewrites msg_ids).
func (s *Session) Resign(body [][]byte) {
	body[0] = s.Sign(body[1], body[2], body[3], body[4])
}

// NewID returns a random id in jupyter_client's format: 8 hex, "-", 24 hex.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:]
}
