//go:build !ompi && !mpich

package mpi

// This file is the build without MPI: the same API as the MPI builds, every
// operation failing with ErrNoMPI, so that code using the package compiles
// and runs (without MPI) on machines with no MPI installed.

// Available reports whether this binary can talk to an MPI library.
func Available() bool { return false }

// Flavor names the MPI implementation this binary is linked against:
// "openmpi", "mpich", or "" without MPI.
func Flavor() string { return "" }

// Init would initialise MPI; without MPI it returns ErrNoMPI.
func Init() error { return ErrNoMPI }

// Finalize would finalise MPI; without MPI it returns ErrNoMPI.
func Finalize() error { return ErrNoMPI }

// ThreadLevel names the thread support MPI provided at Init; "" in this
// build.
func ThreadLevel() string { return "" }

// Rank returns the world rank, or -1 when MPI is not initialised (always,
// in this build).
func Rank() int { return -1 }

// Size returns the world size, or -1 when MPI is not initialised (always,
// in this build).
func Size() int { return -1 }

// ProcessorName returns the MPI processor name; ErrNoMPI in this build.
func ProcessorName() (string, error) { return "", ErrNoMPI }

// Barrier synchronises all ranks; ErrNoMPI in this build.
func Barrier() error { return ErrNoMPI }

// Bcast broadcasts buf from root; ErrNoMPI in this build.
func Bcast(buf any, root int) error { return ErrNoMPI }

// Reduce combines send from every rank into recv at root; ErrNoMPI in
// this build.
func Reduce(send, recv any, op Op, root int) error { return ErrNoMPI }

// Allreduce combines send from every rank into recv on every rank;
// ErrNoMPI in this build.
func Allreduce(send, recv any, op Op) error { return ErrNoMPI }

// AllreduceFloat64 combines one float64 from every rank; ErrNoMPI in this
// build.
func AllreduceFloat64(x float64, op Op) (float64, error) { return 0, ErrNoMPI }

// AllreduceInt64 combines one int64 from every rank; ErrNoMPI in this
// build.
func AllreduceInt64(x int64, op Op) (int64, error) { return 0, ErrNoMPI }

// Gather collects send from every rank into recv at root; ErrNoMPI in
// this build.
func Gather(send, recv any, root int) error { return ErrNoMPI }

// Allgather collects send from every rank into recv on every rank;
// ErrNoMPI in this build.
func Allgather(send, recv any) error { return ErrNoMPI }

// Scatter distributes consecutive parts of send at root to recv on every
// rank; ErrNoMPI in this build.
func Scatter(send, recv any, root int) error { return ErrNoMPI }

// Send sends buf to rank dest with tag; ErrNoMPI in this build.
func Send(buf any, dest, tag int) error { return ErrNoMPI }

// Recv receives into buf from rank src with tag; ErrNoMPI in this build.
func Recv(buf any, src, tag int) (Status, error) { return Status{}, ErrNoMPI }

// Abort would abort every rank of the job; ErrNoMPI in this build.
func Abort(code int) error { return ErrNoMPI }

// Run would call f on the MPI goroutine; without MPI it returns ErrNoMPI
// and does not call f.
func Run(f func()) error { return ErrNoMPI }

// Interrupt would end a waiting MPI operation; without MPI nothing waits.
func Interrupt() {}

// ResetInterrupt undoes Interrupt; without MPI it does nothing.
func ResetInterrupt() {}
