package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// resubmitIdent is the routing identity resubmitted tasks are submitted
// under. Their replies are sent to it and dropped (no peer has it), as the
// Python hub drops them: the asking client polls result_request.
const resubmitIdent = "ipp-hub-resubmit"

// resubmitRequest answers resubmit_request: every task named, finished or
// not, is sent again through the load-balancing scheduler under a new
// msg_id, with its original header (session, username, msg_type...),
// content and buffers, as ipyparallel's Hub.resubmit_task does.
//
// Unlike ipyparallel, which sends empty metadata, the original metadata is
// kept (retries, timeout, targets, dependencies), and a dependency on a
// task resubmitted in the same request is rewritten to the resubmission:
// resubmitting a chain gives a chain. Tasks are resubmitted in the order
// they were first submitted, so a dependency is known before its
// dependent.
func (h *hub) resubmitRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		MsgIDs []string `json:"msg_ids"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("ValueError", "resubmit_request content: "+err.Error()))
		return
	}
	recs, missing, evicted, err := h.records.lookup(req.MsgIDs)
	if err != nil {
		h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("KeyError", err.Error()))
		return
	}
	if len(missing) > 0 {
		h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("KeyError", fmt.Sprintf("No such msg(s): %s", pyList(missing))))
		return
	}
	if len(evicted) > 0 {
		h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("KeyError", fmt.Sprintf(
			"cannot resubmit %s: their request buffers are no longer kept (the controller keeps the newest --result-cache bytes)", pyList(evicted))))
		return
	}
	recs = slices.CompactFunc(recs, func(a, b *TaskRecord) bool { return a.MsgID == b.MsgID })
	slices.SortStableFunc(recs, func(a, b *TaskRecord) int { return a.Submitted.Compare(b.Submitted) })
	renamed := map[string]string{}
	for _, r := range recs {
		if _, dup := renamed[r.MsgID]; !dup {
			renamed[r.MsgID] = h.c.session.NewHeader("").MsgID
		}
	}
	done := map[string]bool{}
	for _, r := range recs {
		if done[r.MsgID] {
			continue
		}
		done[r.MsgID] = true
		newID := renamed[r.MsgID]
		frames, err := resubmission(h.c.session, r, newID, renamed)
		if err != nil {
			h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("ValueError", fmt.Sprintf("cannot resubmit %s: %v", r.MsgID, err)))
			return
		}
		h.tasks.submit(frames)
		if !h.records.has(newID) {
			// Refused before it was recorded: a queue limit or its size.
			h.reply(s, msg.Idents, msg, "resubmit_reply", protocol.NewError("QueueFull", fmt.Sprintf(
				"the task scheduler refused the resubmission of %s: it holds as many tasks or bytes as it may (--max-queued-tasks, --max-queued-bytes) or the request is larger than --max-message-size", r.MsgID)))
			return
		}
		h.records.setResubmitted(r.MsgID, newID)
		h.c.log.Debug("task resubmitted", "msg_id", r.MsgID, "as", newID)
	}
	// Keyed by the ids as asked, so each one the client looks up is there.
	out := map[string]string{}
	for _, id := range req.MsgIDs {
		out[id] = renamed[id]
	}
	h.reply(s, msg.Idents, msg, "resubmit_reply", map[string]any{"status": "ok", "resubmitted": out})
}

// resubmission builds the signed request that resubmits r as newID, from
// resubmitIdent: r's header with a new msg_id and date, its metadata with
// dependencies renamed, its content and buffers.
func resubmission(session *wire.Session, r *TaskRecord, newID string, renamed map[string]string) ([][]byte, error) {
	var header map[string]any
	if err := json.Unmarshal(r.Header, &header); err != nil || header == nil {
		return nil, fmt.Errorf("its stored header is not a JSON object")
	}
	header["msg_id"] = newID
	header["date"] = wire.FormatDate(time.Now())
	hb, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	var md map[string]any
	if len(r.Metadata) > 0 && json.Unmarshal(r.Metadata, &md) != nil {
		return nil, fmt.Errorf("its stored metadata is not a JSON object")
	}
	if md == nil {
		md = map[string]any{}
	}
	for _, k := range []string{"after", "follow"} {
		if dep, ok := md[k]; ok {
			md[k] = renameIDs(dep, renamed)
		}
	}
	mb, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	content := []byte(r.Content)
	if len(content) == 0 || !json.Valid(content) {
		return nil, fmt.Errorf("its stored content is not JSON")
	}
	parent := []byte("{}")
	frames := [][]byte{[]byte(resubmitIdent), []byte(wire.Delimiter), session.Sign(hb, parent, mb, content), hb, parent, mb, content}
	return append(frames, r.Buffers...), nil
}

// renameIDs replaces, anywhere in a dependency (a list of ids or
// {"dependencies": [...], ...}), the ids that were resubmitted.
func renameIDs(v any, renamed map[string]string) any {
	switch x := v.(type) {
	case string:
		if n, ok := renamed[x]; ok {
			return n
		}
	case []any:
		for i := range x {
			x[i] = renameIDs(x[i], renamed)
		}
	case map[string]any:
		if deps, ok := x["dependencies"]; ok {
			x["dependencies"] = renameIDs(deps, renamed)
		}
	}
	return v
}

// pyList writes ids as Python writes a list of str, for error messages
// that match ipyparallel's.
func pyList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + id + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// loadRequest answers load_request, which ipyparallel's hub serves (its
// reply keys are broken in 7.1–9.1) but no client sends: each target's
// direct queue plus load-balanced tasks, keyed by engine id.
func (h *hub) loadRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		Targets []json.RawMessage `json:"targets"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("ValueError", err.Error()))
		return
	}
	loads := h.tasks.loads()
	h.mu.Lock()
	var engines []*engine
	if req.Targets == nil {
		for _, e := range h.engines {
			engines = append(engines, e)
		}
	} else {
		for _, raw := range req.Targets {
			e := h.lookup(raw)
			if e == nil {
				h.mu.Unlock()
				h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("IndexError", "No Such Engine: "+string(raw)))
				return
			}
			engines = append(engines, e)
		}
	}
	content := map[string]any{"status": "ok"}
	for _, e := range engines {
		content[strconv.Itoa(e.id)] = len(e.queue) + loads[e.uuid]
	}
	h.mu.Unlock()
	h.reply(s, msg.Idents, msg, "load_reply", content)
}

// noDask answers become_dask_request and stop_distributed_request: the
// Python hub runs a dask.distributed scheduler inside itself; this one
// does not, and says what to do instead. The Python client raises the
// error (rc.become_dask, rc.stop_dask).
func (h *hub) noDask(s transport.Socket, msg *wire.Message) {
	replyType := strings.TrimSuffix(msg.Header.MsgType, "_request") + "_reply"
	h.reply(s, msg.Idents, msg, replyType, protocol.NewError("NotImplementedError",
		"this controller (ipp, in Go) does not run a Dask scheduler, so become_dask/stop_dask are not available; "+
			"start one yourself (`dask-scheduler`), turn the engines into workers with "+
			"rc[:].apply_sync(ipyparallel.util.become_dask_worker, address='tcp://HOST:8786'), "+
			"and connect with distributed.Client('tcp://HOST:8786')"))
}
