//go:build !linux

package engine

import (
	"log/slog"
	"runtime/debug"
)

// trimResident gives back the Go heap start-up left behind; the mapping
// trim of trim_linux.go is Linux's.
func trimResident(*slog.Logger) { debug.FreeOSMemory() }
