//go:build ompi && !mpich

package mpi

// Only the cgo directive lives here: cgo flags of any file apply to the
// whole package, so the tag decides which library the package links.

// #cgo pkg-config: ompi
import "C"

const flavor = "openmpi"
