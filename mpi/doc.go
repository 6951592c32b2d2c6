// Package mpi will bind the system MPI (Open MPI or MPICH, chosen at build
// time) so that engines started under mpiexec or srun know their rank and
// can run collectives; see docs/mpi.md once it exists.
//
// This build has no MPI: Available reports false and every operation
// returns ErrNoMPI, so the rest of the project builds and runs without an
// MPI installation.
package mpi

import "errors"

// ErrNoMPI is returned by every operation of a binary built without MPI.
var ErrNoMPI = errors.New("mpi: this binary was built without MPI support (install libopenmpi-dev or libmpich-dev and rebuild)")

// Available reports whether this binary can talk to an MPI library.
func Available() bool { return false }

// Init would initialise MPI for the calling engine.
func Init() error { return ErrNoMPI }
