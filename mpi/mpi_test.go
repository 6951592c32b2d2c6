package mpi

import (
	"errors"
	"testing"
)

func TestWithoutMPI(t *testing.T) {
	if Available() {
		t.Fatal("built without MPI but Available() is true")
	}
	if err := Init(); !errors.Is(err, ErrNoMPI) {
		t.Fatalf("Init() = %v, want ErrNoMPI", err)
	}
}
