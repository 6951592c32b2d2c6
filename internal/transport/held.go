package transport

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Held frames (Options.HoldBuffers) are received frames left in the
// backend's own memory instead of being copied into Go memory. A relay
// that forwards a 100 MB buffer then copies nothing: the frame goes out on
// the other socket sharing the received message (libzmq counts the
// references), and its memory is freed once both the consumer has released
// it and libzmq has written it. The price is an explicit lifetime: the
// garbage collector does not see this memory, so whoever takes messages
// from such a socket must
//
//   - call Release with HeldIn(frames), once, when done with the message,
//     and
//   - keep nothing of a held frame past that point: Owned and OwnAll copy
//     what must outlive it.
//
// A held frame may be passed to Send on any socket before Release: the
// backend takes its own reference, also while the message waits for a
// busy peer. Only buffer frames (those after a Jupyter message's five
// fixed frames) of at least HoldMin bytes are held, so headers, content
// and metadata, which handlers parse and keep, are always Go memory.

// HoldMin is the smallest frame Options.HoldBuffers holds.
const HoldMin = 1 << 20

// heldKey names a held frame by where its bytes start and how many there
// are: a frame is held only if a caller passes exactly the slice it was
// given (a sub-slice is ordinary memory to every function here).
type heldKey struct {
	p uintptr
	n int
}

// heldFrame is one held frame: the backend's handle for it and how many
// holders it has (the consumer, messages queued on sockets).
type heldFrame struct {
	ref  unsafe.Pointer // the backend's message (a zmq_msg_t)
	refs int
	free func(ref unsafe.Pointer)
}

// held is every frame held now. Lock order: a socket's mu, then held.mu.
var held struct {
	mu     sync.Mutex
	frames map[heldKey]*heldFrame
	count  atomic.Int64 // len(frames), read without the lock
}

func keyOf(f []byte) heldKey {
	return heldKey{uintptr(unsafe.Pointer(unsafe.SliceData(f))), len(f)}
}

// hold registers f, whose memory the backend's ref keeps, with one holder.
func hold(f []byte, ref unsafe.Pointer, free func(unsafe.Pointer)) {
	held.mu.Lock()
	if held.frames == nil {
		held.frames = map[heldKey]*heldFrame{}
	}
	held.frames[keyOf(f)] = &heldFrame{ref: ref, refs: 1, free: free}
	held.count.Store(int64(len(held.frames)))
	held.mu.Unlock()
}

// lookupHeld returns the backend's handle for f, or nil when f is not a
// held frame. The caller must hold a reference to f for as long as it
// uses the handle.
func lookupHeld(f []byte) unsafe.Pointer {
	if len(f) < HoldMin || held.count.Load() == 0 {
		return nil
	}
	held.mu.Lock()
	defer held.mu.Unlock()
	if h := held.frames[keyOf(f)]; h != nil {
		return h.ref
	}
	return nil
}

// isHeld reports whether f is a held frame.
func isHeld(f []byte) bool { return lookupHeld(f) != nil }

// retainHeld adds a holder to every held frame of frames (a message
// queued until its socket can take it) and reports whether there was one.
func retainHeld(frames [][]byte) bool {
	if held.count.Load() == 0 {
		return false
	}
	any := false
	held.mu.Lock()
	for _, f := range frames {
		if len(f) < HoldMin {
			continue
		}
		if h := held.frames[keyOf(f)]; h != nil {
			h.refs++
			any = true
		}
	}
	held.mu.Unlock()
	return any
}

// HeldIn returns the held frames among frames, nil when there are none
// (the common case costs one atomic load). Take it before handling a
// message from a socket with Options.HoldBuffers, so that the frames are
// released even when a handler rearranges the message.
func HeldIn(frames [][]byte) [][]byte {
	if held.count.Load() == 0 {
		return nil
	}
	var out [][]byte
	for _, f := range frames {
		if isHeld(f) {
			out = append(out, f)
		}
	}
	return out
}

// Release gives up one hold on each held frame of frames; a frame whose
// last holder lets go is freed. Frames that are not held are ignored, so
// Release may be given a whole message.
func Release(frames [][]byte) {
	if held.count.Load() == 0 {
		return
	}
	var free []*heldFrame
	held.mu.Lock()
	for _, f := range frames {
		if len(f) < HoldMin {
			continue
		}
		k := keyOf(f)
		h := held.frames[k]
		if h == nil {
			continue
		}
		if h.refs--; h.refs == 0 {
			delete(held.frames, k)
			free = append(free, h)
		}
	}
	held.count.Store(int64(len(held.frames)))
	held.mu.Unlock()
	for _, h := range free {
		h.free(h.ref)
	}
}

// Owned returns f itself, or a copy in Go memory when f is held: what a
// handler keeps past Release.
func Owned(f []byte) []byte {
	if !isHeld(f) {
		return f
	}
	return copyLarge(f)
}

// OwnAll is Owned for each frame: bufs itself when none is held, else a
// new slice with the held ones copied.
func OwnAll(bufs [][]byte) [][]byte {
	if held.count.Load() == 0 {
		return bufs
	}
	var out [][]byte // nil until the first held frame
	for i, f := range bufs {
		switch {
		case isHeld(f):
			if out == nil {
				out = append(make([][]byte, 0, len(bufs)), bufs[:i]...)
			}
			out = append(out, copyLarge(f))
		case out != nil:
			out = append(out, f)
		}
	}
	if out == nil {
		return bufs
	}
	return out
}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// HeldCount is how many frames are held now; tests check it returns to 0.
func HeldCount() int { return int(held.count.Load()) }
