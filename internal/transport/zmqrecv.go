//go:build cgo && !nolibzmq

package transport

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
#include <errno.h>
#include <stdlib.h>

// IPP_PARTS is how many frames one call takes; longer messages take
// several calls.
#define IPP_PARTS 32

// ipp_recv_t holds the frames of the last call until the next one, so
// that Go can copy them out between the two.
typedef struct {
	zmq_msg_t msg[IPP_PARTS];
	size_t size[IPP_PARTS];
	void *data[IPP_PARTS];
	int held;
} ipp_recv_t;

static void ipp_release(ipp_recv_t *r) {
	for (int i = 0; i < r->held; i++) zmq_msg_close(&r->msg[i]);
	r->held = 0;
}

// ipp_recv releases the previous call's frames, then takes up to
// IPP_PARTS frames of one message without blocking. It returns how many it
// took and sets *more when the message goes on, or returns -errno (EAGAIN:
// nothing to read).
static int ipp_recv(void *sock, ipp_recv_t *r, int *more) {
	ipp_release(r);
	*more = 0;
	for (int i = 0; i < IPP_PARTS; i++) {
		zmq_msg_init(&r->msg[i]);
		r->held = i + 1;
		int rc;
		do {
			rc = zmq_msg_recv(&r->msg[i], sock, ZMQ_DONTWAIT);
		} while (rc < 0 && zmq_errno() == EINTR);
		if (rc < 0) {
			int e = zmq_errno();
			ipp_release(r);
			return -e;
		}
		r->size[i] = zmq_msg_size(&r->msg[i]);
		r->data[i] = zmq_msg_data(&r->msg[i]);
		if (!zmq_msg_more(&r->msg[i])) return i + 1;
	}
	*more = 1;
	return IPP_PARTS;
}
*/
import "C"

import (
	"fmt"
	"reflect"
	"unsafe"

	zmq "github.com/pebbe/zmq4"
)

// receiver takes whole multipart messages from a libzmq socket in one cgo
// call per IPP_PARTS frames (pebbe's RecvMessageBytes makes four per
// frame) and copies them into Go memory it chooses: small frames share
// one allocation, large ones get memory advised to use huge pages, because
// on the VMs we run on the first touch of each fresh 4 KiB page costs more
// than copying it (docs/performance.md).
type receiver struct {
	sock unsafe.Pointer // libzmq's socket, owned by pebbe's Socket
	r    *C.ipp_recv_t  // C memory: libzmq's messages must not move
}

// largeFrame is the size from which a frame gets its own allocation with
// huge-page advice; below it frames share one buffer per message.
const largeFrame = 1 << 20

func newReceiver(s *zmq.Socket) (*receiver, error) {
	p, err := rawSocket(s)
	if err != nil {
		return nil, err
	}
	r := (*C.ipp_recv_t)(C.calloc(1, C.sizeof_ipp_recv_t))
	if r == nil {
		return nil, fmt.Errorf("transport: out of memory for a receive buffer")
	}
	return &receiver{sock: p, r: r}, nil
}

// rawSocket returns the void* pebbe keeps for s. pebbe exports no accessor;
// the field is read by name and its type checked, so that a pebbe release
// that renames it fails socket creation loudly instead of corrupting
// memory.
func rawSocket(s *zmq.Socket) (unsafe.Pointer, error) {
	f := reflect.ValueOf(s).Elem().FieldByName("soc")
	if !f.IsValid() || f.Kind() != reflect.UnsafePointer {
		return nil, fmt.Errorf("transport: github.com/pebbe/zmq4's Socket has no field soc of type unsafe.Pointer; update zmqrecv.go for this version")
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(f.UnsafeAddr()))
	if p == nil {
		return nil, fmt.Errorf("transport: libzmq socket pointer is nil")
	}
	return p, nil
}

// recv takes one whole message without blocking; ok is false when none is
// waiting or the socket failed. The caller holds the socket's lock.
func (rc *receiver) recv() (msg [][]byte, ok bool) {
	for {
		var more C.int
		n := int(C.ipp_recv(rc.sock, rc.r, &more))
		if n <= 0 {
			// Nothing waiting (EAGAIN), or the socket is going away. Parts
			// of one message arrive together, so a failure in the middle is
			// a closing socket: the partial message is dropped with it.
			return nil, false
		}
		msg = rc.copyOut(msg, n)
		if more == 0 {
			break
		}
	}
	C.ipp_release(rc.r)
	return msg, true
}

// copyOut appends the n frames the last call received, copied into Go
// memory.
func (rc *receiver) copyOut(msg [][]byte, n int) [][]byte {
	small := 0
	for i := range n {
		if sz := int(rc.r.size[i]); sz < largeFrame {
			small += sz
		}
	}
	var buf []byte
	if small > 0 {
		buf = make([]byte, small)
	}
	for i := range n {
		sz := int(rc.r.size[i])
		src := unsafe.Slice((*byte)(rc.r.data[i]), sz)
		var dst []byte
		switch {
		case sz == 0:
			dst = []byte{}
		case sz >= largeFrame:
			dst = make([]byte, sz)
			adviseHugePages(dst)
		default:
			// Capacity cut at the frame's end: appending to one frame
			// must not overwrite the next.
			dst, buf = buf[:sz:sz], buf[sz:]
		}
		copy(dst, src)
		msg = append(msg, dst)
	}
	return msg
}

// free releases the C side; the socket's reader has exited.
func (rc *receiver) free() {
	C.ipp_release(rc.r)
	C.free(unsafe.Pointer(rc.r))
	rc.r = nil
}
