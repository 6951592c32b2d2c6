//go:build cgo && !nolibzmq

package transport

/*
#cgo !windows pkg-config: libzmq
#include <zmq.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ippReleaseFrame is Go's (zmqrelease.go): libzmq is done with a frame it
// was sending in place.
extern void ippReleaseFrame(uintptr_t);

static void ipp_free_frame(void *data, void *hint) {
	(void)data;
	ippReleaseFrame((uintptr_t)hint);
}

// ipp_send sends n frames as one message without blocking. A frame with a
// src is a held frame (held.go): the message sent shares src's memory
// (zmq_msg_copy counts the reference). A frame with a hint is sent in
// place, and its hint goes to ippReleaseFrame once libzmq no longer needs
// the memory; any other frame is copied. Every hint is released exactly
// once, whatever happens. Returns 0, or the errno of the
// failure (EAGAIN on the first frame: nothing was sent, try later; libzmq
// accepts the other frames of a message once it accepted the first).
static int ipp_send(void *sock, int n, void **data, size_t *size, uintptr_t *hint, zmq_msg_t **src) {
	for (int i = 0; i < n; i++) {
		zmq_msg_t m;
		int rc;
		if (src[i]) {
			rc = zmq_msg_init(&m);
			if (rc == 0) rc = zmq_msg_copy(&m, src[i]);
		} else if (hint[i]) {
			rc = zmq_msg_init_data(&m, data[i], size[i], ipp_free_frame, (void *)hint[i]);
		} else {
			rc = zmq_msg_init_size(&m, size[i]);
			if (rc == 0 && size[i] > 0) memcpy(zmq_msg_data(&m), data[i], size[i]);
		}
		if (rc != 0) {
			int e = zmq_errno();
			for (int j = i; j < n; j++) if (hint[j]) ippReleaseFrame(hint[j]);
			return e;
		}
		int flags = ZMQ_DONTWAIT | (i < n - 1 ? ZMQ_SNDMORE : 0);
		do {
			rc = zmq_msg_send(&m, sock, flags);
		} while (rc < 0 && zmq_errno() == EINTR);
		if (rc < 0) {
			int e = zmq_errno();
			zmq_msg_close(&m); // releases hint[i]
			for (int j = i + 1; j < n; j++) if (hint[j]) ippReleaseFrame(hint[j]);
			return e;
		}
	}
	return 0;
}

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

// ipp_hold moves the last call's frame i into a message of its own, which
// stays valid (its data too) until ipp_free_held; NULL when out of memory.
static zmq_msg_t *ipp_hold(ipp_recv_t *r, int i) {
	zmq_msg_t *m = malloc(sizeof(zmq_msg_t));
	if (m == NULL) return NULL;
	zmq_msg_init(m);
	if (zmq_msg_move(m, &r->msg[i]) != 0) {
		zmq_msg_close(m);
		free(m);
		return NULL;
	}
	return m;
}

static void ipp_free_held(zmq_msg_t *m) {
	zmq_msg_close(m);
	free(m);
}
*/
import "C"

import (
	"fmt"
	"reflect"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"syscall"
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
	// hold is Options.HoldBuffers: large buffer frames stay in libzmq's
	// memory (held.go).
	hold bool
	// Where the message being received is: frames so far, and the index
	// of its delimiter (-1 until seen), across calls of IPP_PARTS frames.
	frame, delim int
}

// delimiter is wire.Delimiter, which this package cannot import; a test
// in wire's importers keeps the two equal.
const delimiter = "<IDS|MSG>"

// fixedFrames is how many frames of a Jupyter message follow the
// delimiter before its buffers: signature, header, parent, metadata,
// content.
const fixedFrames = 5

// largeFrame is the size from which a frame gets its own allocation with
// huge-page advice; below it frames share one buffer per message.
const largeFrame = HoldMin

func newReceiver(p unsafe.Pointer, hold bool) (*receiver, error) {
	r := (*C.ipp_recv_t)(C.calloc(1, C.sizeof_ipp_recv_t))
	if r == nil {
		return nil, fmt.Errorf("transport: out of memory for a receive buffer")
	}
	return &receiver{sock: p, r: r, hold: hold}, nil
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
	rc.frame, rc.delim = 0, -1
	for {
		var more C.int
		n := int(C.ipp_recv(rc.sock, rc.r, &more))
		if n <= 0 {
			// Nothing waiting (EAGAIN), or the socket is going away. Parts
			// of one message arrive together, so a failure in the middle is
			// a closing socket: the partial message is dropped with it.
			Release(msg)
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
		j := rc.frame
		rc.frame++
		if rc.delim < 0 && string(src) == delimiter {
			rc.delim = j
		}
		var dst []byte
		switch {
		case sz == 0:
			dst = []byte{}
		case sz >= HoldMin && rc.hold && rc.delim >= 0 && j > rc.delim+fixedFrames:
			if m := C.ipp_hold(rc.r, C.int(i)); m != nil {
				hold(src, unsafe.Pointer(m), freeHeld)
				dst = src
				break
			}
			dst = copyLarge(src)
		case sz >= largeFrame:
			dst = copyLarge(src)
		default:
			// Capacity cut at the frame's end: appending to one frame
			// must not overwrite the next.
			dst, buf = buf[:sz:sz], buf[sz:]
			copy(dst, src)
		}
		msg = append(msg, dst)
	}
	return msg
}

// zeroCopyMin is the smallest frame sent in place: below it libzmq's copy
// costs less than pinning the memory and the callback that releases it
// (pyzmq's default copy threshold is the same).
const zeroCopyMin = 64 << 10

// heldInPlace counts frames handed to libzmq in place and not yet released:
// memory the garbage collector cannot reclaim. Tests check it returns to 0.
var heldInPlace atomic.Int64

// sendMessage sends one multipart message on a libzmq socket without
// blocking, in one cgo call. With inPlace, frames of zeroCopyMin bytes or
// more are not copied: their memory is pinned and handed to libzmq, which
// releases it from its I/O thread once the frame is written
// (Options.InPlace: the caller does not touch frames after Send). It
// returns syscall.EAGAIN when libzmq cannot take the message now; nothing
// was sent then.
func sendMessage(sock unsafe.Pointer, frames [][]byte, inPlace bool) error {
	n := len(frames)
	data := make([]unsafe.Pointer, n)
	size := make([]C.size_t, n)
	hint := make([]C.uintptr_t, n)
	src := make([]*C.zmq_msg_t, n)
	// Every frame is pinned for the call (the data array passed to C holds
	// their addresses); large ones stay pinned until libzmq is done.
	var call runtime.Pinner
	defer call.Unpin()
	for i, f := range frames {
		if len(f) == 0 {
			continue
		}
		if m := lookupHeld(f); m != nil {
			// libzmq's own memory: shared, not pinned (it is no Go
			// memory) and not copied.
			src[i] = (*C.zmq_msg_t)(m)
			continue
		}
		p := unsafe.Pointer(unsafe.SliceData(f))
		call.Pin(p)
		data[i], size[i] = p, C.size_t(len(f))
		if inPlace && len(f) >= zeroCopyMin {
			keep := new(runtime.Pinner)
			keep.Pin(p)
			hint[i] = C.uintptr_t(cgo.NewHandle(keep))
			heldInPlace.Add(1)
		}
	}
	if rc := C.ipp_send(sock, C.int(n), &data[0], &size[0], &hint[0], &src[0]); rc != 0 {
		return syscall.Errno(rc)
	}
	return nil
}

// freeHeld frees a held frame's message (held.go) once its last holder
// let go; libzmq frees the memory when its own sends of it are done too.
func freeHeld(m unsafe.Pointer) { C.ipp_free_held((*C.zmq_msg_t)(m)) }

// free releases the C side; the socket's reader has exited.
func (rc *receiver) free() {
	C.ipp_release(rc.r)
	C.free(unsafe.Pointer(rc.r))
	rc.r = nil
}
