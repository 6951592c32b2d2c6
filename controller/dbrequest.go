package controller

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// dbRequest answers db_request: the records matching a query, projected
// to the keys asked (all of recordKeys by default), with their buffers as
// frames: for each record its request buffers, then its result buffers,
// each kind only when asked for, and the lengths in buffer_lens and
// result_buffer_lens so that the client can split them again.
func (h *hub) dbRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		Query map[string]any `json:"query"`
		Keys  []string       `json:"keys"`
	}
	fail := func(ename, evalue string) {
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError(ename, evalue))
	}
	if err := msg.DecodeContent(&req); err != nil {
		fail("ValueError", err.Error())
		return
	}
	keys := req.Keys
	if keys == nil {
		keys = recordKeys
	}
	for _, k := range keys {
		if !slices.Contains(recordKeys, k) {
			fail("KeyError", fmt.Sprintf("%q is not a task record key (have %s)", k, strings.Join(recordKeys, ", ")))
			return
		}
	}
	if !slices.Contains(keys, "msg_id") {
		// ipyparallel always returns msg_id: records mean nothing without it.
		keys = append([]string{"msg_id"}, keys...)
	}
	match, err := equalityMatcher(req.Query)
	if err != nil {
		fail("ValueError", err.Error())
		return
	}
	recs, err := h.records.find(match)
	if err != nil {
		fail("KeyError", err.Error())
		return
	}
	withBufs, withResults := slices.Contains(keys, "buffers"), slices.Contains(keys, "result_buffers")
	out := make([]map[string]any, 0, len(recs))
	var bufferLens, resultLens []int
	var buffers [][]byte
	for i := range recs {
		doc := recs[i].Doc()
		rec := make(map[string]any, len(keys))
		for _, k := range keys {
			switch v := doc[k].(type) {
			case time.Time:
				rec[k] = wire.FormatDate(v)
			case [][]byte:
				// Sent as frames, not in the JSON.
			default:
				rec[k] = v
			}
		}
		out = append(out, rec)
		if withBufs {
			bufferLens = append(bufferLens, len(recs[i].Buffers))
			buffers = append(buffers, recs[i].Buffers...)
		}
		if withResults {
			resultLens = append(resultLens, len(recs[i].ResultBuffers))
			buffers = append(buffers, recs[i].ResultBuffers...)
		}
	}
	content := map[string]any{"status": "ok", "records": out, "buffer_lens": nil, "result_buffer_lens": nil}
	if withBufs {
		content["buffer_lens"] = nonNil(bufferLens)
	}
	if withResults {
		content["result_buffer_lens"] = nonNil(resultLens)
	}
	frames, _, err := h.c.session.Build(wire.Out{Idents: msg.Idents, MsgType: "db_reply", Parent: msg.RawHeader, Content: content, Buffers: buffers})
	if err != nil {
		h.c.log.Error("building db_reply", "err", err)
		fail("ValueError", "the records do not encode: "+err.Error())
		return
	}
	s.Send(frames)
}

func nonNil(l []int) []int {
	if l == nil {
		return []int{}
	}
	return l
}

// equalityMatcher is the minimal query matcher: every key of query (a
// record key, or a dotted path into header, content and the other
// documents) must equal its value; dates compare with ISO strings. An
// operator ($lt, $in, ...) is refused by name. The query language proper
// (dbquery.go) replaces it.
func equalityMatcher(query map[string]any) (func(doc map[string]any) bool, error) {
	for k, v := range query {
		if strings.HasPrefix(k, "$") {
			return nil, fmt.Errorf("query operator %s is not supported at the top level", k)
		}
		if m, ok := v.(map[string]any); ok {
			for op := range m {
				if strings.HasPrefix(op, "$") {
					return nil, fmt.Errorf("query operator %s (on %q) is not supported by this controller; only equality", op, k)
				}
			}
		}
	}
	return func(doc map[string]any) bool {
		for k, want := range query {
			got, ok := lookupPath(doc, k)
			if !ok {
				got = nil
			}
			if !equalValues(got, want) {
				return false
			}
		}
		return true
	}, nil
}

// lookupPath follows a dotted key through nested documents.
func lookupPath(doc map[string]any, key string) (any, bool) {
	var cur any = doc
	for part := range strings.SplitSeq(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func equalValues(got, want any) bool {
	if t, ok := got.(time.Time); ok {
		s, ok := want.(string)
		if !ok {
			return false
		}
		w, err := wire.ParseDate(s)
		return err == nil && w.Equal(t)
	}
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	// Both sides are plain JSON values (float64 numbers); normalise
	// anything else through JSON.
	if reflect.DeepEqual(got, want) {
		return true
	}
	a, err1 := json.Marshal(got)
	b, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && string(a) == string(b)
}
