package transport

import (
	"fmt"
	"log/slog"
	"os"
)

// KeepFreedEnv names the environment variable that bounds how much freed
// message memory a process keeps for its next large message, in MB; 0
// returns it all to the kernel, as glibc does by default. Unset (or not a
// number), the bound is 1024 MB. It is read once, before the program
// starts (keepmem_linux.go), so it must be in the environment the process
// starts with.
//
// Why keep it: on the VMs we measured, the kernel reports freed memory to
// the hypervisor, which takes it back, and the next first touch of each
// page pays for the host to supply it again: filling 100 MB of memory a
// process just freed took 6-14 ms, of memory it gave back 90-330 ms.
// glibc maps every allocation of 32 MB or more on its own and unmaps it on
// free, so without this each large message libzmq receives lands in
// memory the host must supply afresh. The cost of keeping it: a process's
// resident size stays near its peak of message memory (up to the bound at
// the top of the heap, and whatever freed holes lie between live chunks)
// until ReleaseFreedMemory.
const KeepFreedEnv = "IPP_KEEP_FREED_MB"

// init reports what the C side could not do; it parsed the variable
// before Go started, so this is the first moment anything can be logged.
func init() {
	_, bad, err := keepFreedResult()
	if bad {
		slog.Warn(fmt.Sprintf("%s=%q is not a number of MB (0 or more); the default, 1024, applies", KeepFreedEnv, os.Getenv(KeepFreedEnv)))
	}
	if err != nil {
		slog.Warn("large messages will land in fresh memory", "err", err)
	}
}
