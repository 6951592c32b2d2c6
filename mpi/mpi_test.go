//go:build !ompi && !mpich

package mpi

import (
	"errors"
	"testing"
)

// TestWithoutMPI checks the build without MPI: every call reports ErrNoMPI
// and nothing pretends to have a rank.
func TestWithoutMPI(t *testing.T) {
	if Available() {
		t.Fatal("built without MPI but Available() is true")
	}
	if err := Init(); !errors.Is(err, ErrNoMPI) {
		t.Fatalf("Init() = %v, want ErrNoMPI", err)
	}
	if Flavor() != "" || Rank() != -1 || Size() != -1 {
		t.Fatalf("Flavor/Rank/Size = %q/%d/%d, want \"\"/-1/-1", Flavor(), Rank(), Size())
	}
	x := []float64{1}
	calls := map[string]error{
		"Finalize":  Finalize(),
		"Barrier":   Barrier(),
		"Bcast":     Bcast(x, 0),
		"Reduce":    Reduce(x, x, Sum, 0),
		"Allreduce": Allreduce(x, x, Sum),
		"Gather":    Gather(x, x, 0),
		"Allgather": Allgather(x, x),
		"Scatter":   Scatter(x, x, 0),
		"Send":      Send(x, 0, 0),
		"Abort":     Abort(1),
	}
	_, calls["ProcessorName"] = ProcessorName()
	_, calls["Recv"] = Recv(x, 0, 0)
	_, calls["AllreduceFloat64"] = AllreduceFloat64(1, Sum)
	_, calls["AllreduceInt64"] = AllreduceInt64(1, Sum)
	for name, err := range calls {
		if !errors.Is(err, ErrNoMPI) {
			t.Errorf("%s() = %v, want ErrNoMPI", name, err)
		}
	}
}
