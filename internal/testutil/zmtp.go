package testutil

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// ZMTPPeer is a hand-made ZMTP 3.0 peer with the NULL mechanism: what an
// attacker, or a test that must control every byte, connects with. It can
// stream a frame of any size from a small buffer, so a test can send
// hundreds of megabytes without holding them, and it collects the messages
// it receives (frames larger than zmtpKeep are counted, not kept).
type ZMTPPeer struct {
	conn net.Conn

	wmu sync.Mutex // one message at a time on the wire

	mu     sync.Mutex
	msgs   [][][]byte
	closed bool
}

// zmtpKeep bounds the size of a received frame the peer keeps.
const zmtpKeep = 1 << 20

// ZMTPGreeting is what a ZMTP 3.0 peer with the NULL mechanism sends
// first: the greeting (signature, version 3.0, NULL, as-server 0, filler)
// and the READY command with its socket type and, unless empty, its
// identity.
func ZMTPGreeting(socketType, identity string) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0})
	b.Write(append([]byte("NULL"), make([]byte, 16)...))
	b.Write(make([]byte, 32))
	var ready bytes.Buffer
	ready.WriteByte(5)
	ready.WriteString("READY")
	props := [][2]string{{"Socket-Type", socketType}}
	if identity != "" {
		props = append(props, [2]string{"Identity", identity})
	}
	for _, kv := range props {
		ready.WriteByte(byte(len(kv[0])))
		ready.WriteString(kv[0])
		binary.Write(&ready, binary.BigEndian, uint32(len(kv[1])))
		ready.WriteString(kv[1])
	}
	b.Write([]byte{0x04, byte(ready.Len())})
	b.Write(ready.Bytes())
	return b.Bytes()
}

// DialZMTP connects to addr ("host:port" or "tcp://host:port") as a
// socketType ("DEALER", "SUB", ...) with the given identity ("" lets a
// ROUTER pick one) and completes the handshake. The connection is closed
// when the test ends.
func DialZMTP(t testing.TB, addr, socketType, identity string) *ZMTPPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "tcp://"), 10*time.Second)
	if err != nil {
		t.Fatalf("zmtp dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(ZMTPGreeting(socketType, identity)); err != nil {
		t.Fatalf("zmtp handshake: %v", err)
	}
	// libzmq takes anything sent before its own READY for a handshake
	// command and drops the connection: wait for it.
	r := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	greeting := make([]byte, 64)
	if _, err := io.ReadFull(r, greeting); err != nil || greeting[0] != 0xff || greeting[10] != 3 {
		t.Fatalf("zmtp greeting: %q %v", greeting, err)
	}
	flags, cmd, err := readFrame(r)
	if err != nil || flags&0x04 == 0 || !bytes.HasPrefix(cmd, []byte("\x05READY")) {
		t.Fatalf("zmtp READY: flags %#x %q %v", flags, cmd, err)
	}
	conn.SetReadDeadline(time.Time{})
	p := &ZMTPPeer{conn: conn}
	go p.read(r)
	return p
}

// readFrame reads one frame; a frame over zmtpKeep is consumed and
// returned empty.
func readFrame(r *bufio.Reader) (flags byte, body []byte, err error) {
	flags, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var size uint64
	if flags&0x02 != 0 {
		var n [8]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(n[:])
	} else {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		size = uint64(b)
	}
	if size > zmtpKeep {
		_, err = io.CopyN(io.Discard, r, int64(size))
		return flags, nil, err
	}
	body = make([]byte, size)
	_, err = io.ReadFull(r, body)
	return flags, body, err
}

func (p *ZMTPPeer) read(r *bufio.Reader) {
	var msg [][]byte
	for {
		flags, body, err := readFrame(r)
		if err != nil {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			return
		}
		if flags&0x04 != 0 { // a command (PING and the like): not data
			continue
		}
		msg = append(msg, body)
		if flags&0x01 == 0 {
			p.mu.Lock()
			p.msgs = append(p.msgs, msg)
			p.mu.Unlock()
			msg = nil
		}
	}
}

// Messages returns the messages received so far.
func (p *ZMTPPeer) Messages() [][][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][][]byte(nil), p.msgs...)
}

// Closed reports whether the other side closed the connection.
func (p *ZMTPPeer) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Send writes one message.
func (p *ZMTPPeer) Send(frames ...[]byte) error {
	return p.SendStreamed(frames, -1)
}

// SendStreamed writes frames and then, when last >= 0, one more frame of
// last zero bytes written from a small buffer. A write error is returned
// as is: the other side may close the connection on purpose.
func (p *ZMTPPeer) SendStreamed(frames [][]byte, last int64) error {
	if len(frames) == 0 && last < 0 {
		return errors.New("zmtp: empty message")
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	w := bufio.NewWriterSize(p.conn, 64<<10)
	for i, f := range frames {
		if err := writeHeader(w, int64(len(f)), i < len(frames)-1 || last >= 0); err != nil {
			return err
		}
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	if last >= 0 {
		if err := writeHeader(w, last, false); err != nil {
			return err
		}
		zeros := make([]byte, 64<<10)
		for left := last; left > 0; {
			n := min(left, int64(len(zeros)))
			if _, err := w.Write(zeros[:n]); err != nil {
				return fmt.Errorf("zmtp: %d of %d bytes written: %w", last-left, last, err)
			}
			left -= n
		}
	}
	return w.Flush()
}

func writeHeader(w *bufio.Writer, size int64, more bool) error {
	var flags byte
	if more {
		flags = 0x01
	}
	if size > 255 {
		var b [9]byte
		b[0] = flags | 0x02
		binary.BigEndian.PutUint64(b[1:], uint64(size))
		_, err := w.Write(b[:])
		return err
	}
	_, err := w.Write([]byte{flags, byte(size)})
	return err
}
