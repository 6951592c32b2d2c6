//go:build cgo && !nolibzmq

package transport

// #include <stdint.h>
import "C"

import (
	"runtime"
	"runtime/cgo"
)

// ippReleaseFrame is libzmq's free function for frames sent in place
// (sendMessage): it unpins the frame's memory, which the garbage collector
// may then reclaim. libzmq calls it from its I/O thread once the frame is
// written, or at once when the send failed. It lives in a file of its own
// because a cgo file that exports may only declare C functions.
//
//export ippReleaseFrame
func ippReleaseFrame(h C.uintptr_t) {
	hd := cgo.Handle(h)
	hd.Value().(*runtime.Pinner).Unpin()
	hd.Delete()
	heldInPlace.Add(-1)
}
