package controller

import (
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// A mux fan-out (protocol.MetaFanout) is one signed request from our client
// for several engines. It stays on the mux path, not the broadcaster's:
// each engine must see a client's direct requests in the order they were
// sent (a push, then an execute that reads the pushed value, without
// waiting in between), and the broadcaster reads another socket in another
// goroutine. So the mux relay splits it in place, in the same call that
// handles single-target requests, and sends every copy on the same
// engine-facing socket: per engine, the client's order holds.
//
// Each copy is what the client would have sent that engine alone, but with
// msg_id "<msg_id>_<uuid>" (as the broadcast scheduler names its copies),
// the fan-out key taken out of the metadata and the header re-signed; its
// buffers are the received ones, shared by every copy and every record and
// sent in place, so 100 MB pushed to n engines cross the client's socket
// once and are received and held once here. From then on a copy is a
// single-target request in every way (relay.forward): liveness, size limit,
// task record and queue count, duplicate msg_id, the reply check, engine
// death, result_request, purge and resubmit.

// maxFanoutMetadata bounds the metadata of a fan-out before it is parsed:
// room for protocol.MaxFanoutTargets uuids and the usual keys.
const maxFanoutMetadata = protocol.MaxFanoutTargets*128 + 64<<10

// maxIdentity is the longest routing identity libzmq accepts.
const maxIdentity = 255

// fanOut handles [client id, DELIM, ...] on the mux: verified first (the
// signature covers the target list), then split into one single-target
// request per engine named.
func (r *relay) fanOut(frames [][]byte, n int64) {
	msg := r.c.verify(r.inPort, frames)
	if msg == nil {
		return
	}
	if len(msg.Idents) != 1 {
		r.c.rejects.reject(r.inPort, frames[0], "fan-out request with unexpected routing")
		return
	}
	client := msg.Idents[0]
	targets, md, err := fanoutTargets(msg.Metadata)
	if err != nil {
		// The copies' msg_ids cannot be named: the answer goes to the
		// request as sent (our client never sends one of these).
		r.c.rejects.reject(r.inPort, client, err.Error())
		r.c.answerUnroutable(r.in, client, nil, msg, "ValueError", err.Error())
		return
	}
	var hdr map[string]any
	if err := json.Unmarshal(msg.RawHeader, &hdr); err != nil || hdr == nil {
		// verify decoded it as a header, so this cannot happen; refuse
		// rather than forward a header we did not write.
		r.c.rejects.reject(r.inPort, client, "fan-out request whose header is not an object")
		return
	}
	orig := msg.Header.MsgID
	// One copy of held buffers the records keep, shared by every target's
	// record (a record's own keep finds them in Go memory then).
	if kept, _ := r.hub.records.keep(msg.Buffers, ""); kept != nil {
		msg.Buffers = kept
	}
	seen := make(map[string]bool, len(targets))
	for _, uuid := range targets {
		if seen[uuid] {
			// One copy per engine: a second would reuse the first's
			// msg_id and be refused with an answer the client would take
			// for the first copy's reply.
			r.c.rejects.reject(r.inPort, client, "fan-out naming an engine twice (one copy sent)")
			continue
		}
		seen[uuid] = true
		id := orig + "_" + uuid
		hdr["msg_id"] = id
		h, err := json.Marshal(hdr)
		if err != nil {
			r.c.rejects.reject(r.inPort, client, "fan-out header cannot be rewritten: "+err.Error())
			return
		}
		body := [][]byte{nil, h, msg.RawParent, md, msg.Content}
		r.c.session.Resign(body)
		part := *msg
		part.Idents = [][]byte{client, []byte(uuid)}
		part.Signature, part.RawHeader, part.Metadata = body[0], h, md
		part.Header.MsgID = id
		out := make([][]byte, 0, 3+len(body)+len(msg.Buffers))
		out = append(out, part.Idents[1], client, []byte(wire.Delimiter))
		out = append(out, body...)
		out = append(out, msg.Buffers...)
		r.forward(client, part.Idents[1], &part, n, out)
	}
}

// fanoutTargets takes the target list out of a fan-out's metadata: the
// uuids, in order, and the metadata every copy carries (the rest).
func fanoutTargets(metadata []byte) ([]string, []byte, error) {
	if len(metadata) > maxFanoutMetadata {
		return nil, nil, fmt.Errorf("fan-out metadata of %d bytes is larger than the %d bytes a list of %d targets needs",
			len(metadata), maxFanoutMetadata, protocol.MaxFanoutTargets)
	}
	var md map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &md); err != nil || md == nil {
		return nil, nil, fmt.Errorf("fan-out metadata is not a JSON object")
	}
	raw, ok := md[protocol.MetaFanout]
	if !ok {
		return nil, nil, fmt.Errorf("mux request without a target engine (no routing frame and no metadata %s)", protocol.MetaFanout)
	}
	var targets []string
	if err := json.Unmarshal(raw, &targets); err != nil {
		return nil, nil, fmt.Errorf("fan-out metadata %s is not a list of engine uuids", protocol.MetaFanout)
	}
	switch {
	case len(targets) == 0:
		return nil, nil, fmt.Errorf("fan-out with no targets")
	case len(targets) > protocol.MaxFanoutTargets:
		return nil, nil, fmt.Errorf("fan-out to %d targets; at most %d are accepted", len(targets), protocol.MaxFanoutTargets)
	}
	for _, t := range targets {
		if t == "" || len(t) > maxIdentity {
			return nil, nil, fmt.Errorf("fan-out target %.80q is not an engine uuid", t)
		}
	}
	delete(md, protocol.MetaFanout)
	rest, err := json.Marshal(md)
	if err != nil {
		return nil, nil, fmt.Errorf("fan-out metadata cannot be re-encoded: %v", err)
	}
	return targets, rest, nil
}
