//go:build ompi && mpich

package mpi

// Both MPI tags at once would link two MPI libraries into one binary. Only
// this file (and the tag-free ones) compile then, and the undefined name
// below is the compile error that says so.
var _ = BUILD_TAGS_ompi_AND_mpich_ARE_MUTUALLY_EXCLUSIVE_choose_one
