package engine

import (
	"errors"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// requestMeta is what a reply copies from its request's metadata.
type requestMeta struct {
	isBroadcast   bool
	isCoalescing  bool
	originalMsgID string
	label         json.RawMessage
}

// readRequestMeta is lenient: a key of the wrong type keeps its default
// instead of failing the request, since the metadata only shapes the reply.
func readRequestMeta(raw json.RawMessage) requestMeta {
	// The usual case in one pass; a key of the wrong type fails it, and
	// the lenient reading below takes over.
	var typed struct {
		IsBroadcast   bool            `json:"is_broadcast"`
		IsCoalescing  bool            `json:"is_coalescing"`
		OriginalMsgID string          `json:"original_msg_id"`
		Label         json.RawMessage `json:"label"`
	}
	if json.Unmarshal(raw, &typed) == nil {
		return requestMeta{typed.IsBroadcast, typed.IsCoalescing, typed.OriginalMsgID, typed.Label}
	}
	return readRequestMetaLenient(raw)
}

// readRequestMetaLenient reads each key on its own.
func readRequestMetaLenient(raw json.RawMessage) requestMeta {
	var rm requestMeta
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return rm
	}
	_ = json.Unmarshal(m["is_broadcast"], &rm.isBroadcast)
	_ = json.Unmarshal(m["is_coalescing"], &rm.isCoalescing)
	_ = json.Unmarshal(m["original_msg_id"], &rm.originalMsgID)
	if l, ok := m["label"]; ok {
		rm.label = l
	}
	return rm
}

// ioMeta is the metadata of IOPub messages, as the ipyparallel kernel's
// patched Session adds it to everything it sends.
type ioMeta struct {
	Engine string `json:"engine"`
}

// ioMetadata encodes the IOPub metadata of the engine with this uuid;
// the engine does it once, as it is the same on every IOPub message.
func ioMetadata(uuid string) []byte {
	b, err := json.Marshal(ioMeta{Engine: uuid})
	if err != nil { // a string field cannot fail to encode
		return []byte("{}")
	}
	return b
}

func (e *engine) replyMetadata(req *wire.Message, started time.Time, status string) protocol.ReplyMetadata {
	rm := readRequestMeta(req.Metadata)
	md := protocol.ReplyMetadata{
		Started:         wire.FormatDate(started),
		DependenciesMet: true,
		Engine:          e.uuid,
		IsBroadcast:     rm.isBroadcast,
		IsCoalescing:    rm.isCoalescing,
		OriginalMsgID:   rm.originalMsgID,
		Status:          status,
		Label:           rm.label,
	}
	if status == "error" {
		md.EngineInfo = &protocol.ErrorEngineInfo{EngineUUID: e.uuid, EngineID: e.id, Method: protocol.Method(req.Header.MsgType)}
	}
	return md
}

// errorFor builds the error dict for err raised while serving req.
func (e *engine) errorFor(req *wire.Message, err error, interrupted bool) protocol.ErrorContent {
	ename, evalue, tb := describe(err, interrupted)
	return protocol.NewEngineError(ename, evalue, tb, e.uuid, e.id, req.Header.MsgType)
}

// reply sends a reply to req on sock with the full identity prefix the
// request arrived with, so every relay hop (nanny, leaf and root broadcast
// schedulers) can route it back.
func (e *engine) reply(sock transport.Socket, req *wire.Message, msgType string, md, content any, buffers [][]byte) {
	frames, _, err := e.sess.Build(wire.Out{
		Idents:   req.Idents,
		MsgType:  msgType,
		Parent:   req.RawHeader,
		Metadata: md,
		Content:  content,
		Buffers:  buffers,
	})
	if err != nil {
		e.log.Error("cannot build reply", "type", msgType, "parent", req.Header.MsgID, "err", err)
		return
	}
	if sock == e.shell {
		// Held before it is sent: the controller may be down, and then
		// the ROUTER drops it silently (reconnect.go).
		e.hold(req.Header.MsgID, frames)
	}
	if err := sock.Send(frames); err != nil && !errors.Is(err, transport.ErrClosed) {
		e.log.Error("cannot send reply", "type", msgType, "err", err)
	}
}

// publish sends an IOPub message under topic engine.<id>.<kind>.
func (e *engine) publish(kind, msgType string, parent []byte, content any) {
	frames, _, err := e.sess.Build(wire.Out{
		Idents:   [][]byte{protocol.IOPubTopic(e.id, kind)},
		MsgType:  msgType,
		Parent:   parent,
		Metadata: e.ioMeta,
		Content:  content,
	})
	if err != nil {
		e.log.Error("cannot build iopub message", "type", msgType, "err", err)
		return
	}
	if err := e.iopub.Send(frames); err != nil && !errors.Is(err, transport.ErrClosed) {
		e.log.Error("cannot publish", "type", msgType, "err", err)
	}
}

// publishStatus publishes state ("busy" or "idle", words that need no
// escaping), its content written without the JSON encoder.
func (e *engine) publishStatus(parent []byte, state string) {
	e.publish("status", "status", parent, []byte(`{"execution_state":"`+state+`"}`))
}

// parse verifies and decodes a received request. Messages that are not
// validly signed, replayed or not framed as messages are dropped (m is
// nil). A correctly signed message whose header is readable but whose
// other frames are not comes back as a stub (only Idents, Header and
// RawHeader set) together with the error, so the caller can answer it
// instead of leaving the sender waiting forever.
func (e *engine) parse(frames [][]byte) (*wire.Message, error) {
	m, err := e.sess.Parse(frames)
	if err == nil {
		return m, nil
	}
	for _, fatal := range []error{wire.ErrNoDelimiter, wire.ErrShort, wire.ErrUnsigned, wire.ErrBadSignature, wire.ErrReplay} {
		if errors.Is(err, fatal) {
			return nil, err
		}
	}
	idents, body, serr := wire.Split(frames)
	if serr != nil {
		return nil, err
	}
	var h wire.Header
	if json.Unmarshal(body[1], &h) != nil || h.MsgID == "" || h.MsgType == "" {
		return nil, err
	}
	return &wire.Message{
		Idents:    idents,
		Header:    h,
		RawHeader: body[1],
		Metadata:  json.RawMessage("{}"),
		Content:   json.RawMessage("{}"),
	}, err
}
