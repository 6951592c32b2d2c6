package engine

import (
	"debug/elf"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"syscall"
)

// trimResident gives back what an engine's start-up touched and idling
// does not need, measured on a 2-engine cluster (docs/performance.md):
//
//   - The binary's read-only mappings. The kernel keeps our ~45 MB
//     executable in the page cache as 2 MB folios and maps a whole folio
//     at the first fault inside it, so a freshly started engine had
//     ~32 MB of program text and tables resident although it runs a small
//     part of them. MADV_NOHUGEPAGE on those ranges stops the PMD
//     mappings there (the kernel refuses them in a VM_NOHUGEPAGE area);
//     MADV_DONTNEED then drops the ones made so far, and later faults map
//     only the 4 KiB pages (and fault-around neighbours) really used. The
//     pages stay in the page cache, shared by every process: this costs a
//     few minor faults, no I/O. Only the executable's ranges: the process
//     as a whole keeps transparent huge pages, which large receive
//     buffers ask for (MADV_HUGEPAGE, glibc.malloc.hugetlb=1) to avoid a
//     page fault per 4 KiB of every 100 MB push.
//   - The Go heap the interpreter's set-up and registration left behind
//     (debug.FreeOSMemory), which the background scavenger would return
//     only slowly.
func trimResident(log *slog.Logger) {
	debug.FreeOSMemory()
	dropped, err := dropExecutableMappings()
	if err != nil {
		log.Debug("cannot trim the executable's mappings", "err", err)
	} else {
		log.Debug("dropped the executable's read-only mappings", "bytes", dropped)
	}
}

// dropExecutableMappings applies MADV_NOHUGEPAGE and MADV_DONTNEED to the pages of our own
// executable's read-only segments and returns how many bytes it covered.
// The ranges come from the ELF program headers, not /proc/self/maps: the
// kernel merges the RELRO page (relocated, so private anonymous memory)
// into the read-only data mapping next to it, and dropping that page would
// reload it unrelocated from the file. Only position-dependent executables
// (Go's default on Linux) are handled; elsewhere nothing is dropped.
func dropExecutableMappings() (int, error) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		return 0, fmt.Errorf("not a position-dependent executable (%v)", f.Type)
	}
	page := uint64(os.Getpagesize())
	var relroLo, relroHi uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_GNU_RELRO {
			relroLo = p.Vaddr &^ (page - 1)
			relroHi = (p.Vaddr + p.Memsz + page - 1) &^ (page - 1)
		}
	}
	dropped := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W != 0 {
			continue
		}
		lo := (p.Vaddr + page - 1) &^ (page - 1)
		hi := (p.Vaddr + p.Filesz) &^ (page - 1)
		if relroHi > relroLo && lo < relroHi && relroLo < hi {
			// Never the case in Go's layout; stay clear if it ever is.
			hi = min(hi, relroLo)
		}
		if hi <= lo {
			continue
		}
		for _, advice := range []uintptr{syscall.MADV_NOHUGEPAGE, syscall.MADV_DONTNEED} {
			if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), advice); errno != 0 {
				return dropped, errno
			}
		}
		dropped += int(hi - lo)
	}
	return dropped, nil
}
