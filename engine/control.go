package engine

import (
	"fmt"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// serveControl answers control requests on their own goroutine, so they
// are served while a long request occupies the executor.
func (e *engine) serveControl() {
	for frames := range e.control.Messages() {
		m, err := e.parse(frames)
		if m == nil {
			e.log.Warn("dropping invalid control message", "err", err)
			continue
		}
		started := time.Now()
		if err != nil {
			e.controlError(m, started, &remoteError{name: "ValueError", msg: "cannot decode the request: " + err.Error()})
			continue
		}
		e.handleControl(m, started)
	}
}

func (e *engine) controlReply(m *wire.Message, started time.Time, content any) {
	e.reply(e.control, m, protocol.ReplyType(m.Header.MsgType), e.replyMetadata(m, started, "ok"), content, nil)
}

func (e *engine) controlError(m *wire.Message, started time.Time, err error) {
	e.reply(e.control, m, protocol.ReplyType(m.Header.MsgType), e.replyMetadata(m, started, "error"), e.errorFor(m, err, false), nil)
}

func (e *engine) handleControl(m *wire.Message, started time.Time) {
	ok := map[string]string{"status": "ok"}
	switch m.Header.MsgType {
	case "clear_request":
		// Reset waits for a running snippet to finish (the namespace runs
		// one call at a time); doing that on another goroutine keeps abort,
		// signal and shutdown responsive meanwhile.
		go func() {
			if err := e.ns.Reset(); err != nil {
				e.controlError(m, started, err)
				return
			}
			e.controlReply(m, started, ok)
		}()

	case "abort_request":
		var c struct {
			MsgIDs []string `json:"msg_ids"`
		}
		if err := m.DecodeContent(&c); err != nil {
			e.controlError(m, started, &remoteError{name: "ValueError", msg: err.Error()})
			return
		}
		e.queue.abort(c.MsgIDs)
		e.log.Debug("abort_request", "msg_ids", c.MsgIDs)
		e.controlReply(m, started, ok)

	case "shutdown_request":
		var c struct {
			Restart bool `json:"restart"`
		}
		_ = m.DecodeContent(&c)
		content := map[string]any{"status": "ok", "restart": c.Restart}
		e.controlReply(m, started, content)
		// The Hub also learns of the shutdown from this IOPub copy.
		e.publish("shutdown", "shutdown_reply", m.RawHeader, content)
		e.log.Info("shutdown requested by a client")
		e.stop(nil)

	case "signal_request":
		var c struct {
			Sig json.RawMessage `json:"sig"`
		}
		if err := m.DecodeContent(&c); err != nil {
			e.controlError(m, started, &remoteError{name: "ValueError", msg: err.Error()})
			return
		}
		sig, err := parseSignal(c.Sig)
		if err != nil {
			e.controlError(m, started, &remoteError{name: "ValueError", msg: err.Error()})
			return
		}
		if err := e.signal(sig, func() { e.controlReply(m, started, ok) }); err != nil {
			e.controlError(m, started, err)
		}

	case "kernel_info_request":
		e.controlReply(m, started, kernelInfo())

	default:
		e.controlError(m, started, &remoteError{
			name: "NotImplementedError",
			msg:  fmt.Sprintf("the Go engine does not handle %q on its control channel", m.Header.MsgType),
		})
	}
}
