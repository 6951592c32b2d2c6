package engine

import (
	"fmt"
	"os"
	"strconv"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// maxEngineID bounds requested ids: the controller and Python clients
// keep engine ids as JSON numbers and int32-sized keys are what every
// client handles.
const maxEngineID = 1<<31 - 1

// RequestedIDFromEnv returns the engine id a non-MPI engine asks for, from
// what its launcher put in the environment, or -1 for none:
//
//   - IPP_ENGINE_ID_BASE + $IPP_ENGINE_INDEX when the index is set (array
//     jobs export it, 0-based);
//   - else IPP_ENGINE_ID_BASE + $SLURM_PROCID inside a Slurm step
//     (SLURM_STEP_ID set: `srun -n N ipcluster engine`), so the N engines
//     of one step ask for N distinct ids. A batch script itself also has
//     SLURM_PROCID=0 but no step id, and is not counted as a step;
//   - else IPP_ENGINE_ID_BASE when it is set;
//   - else -1: the controller picks.
//
// A value that is not a non-negative integer, or a sum beyond 2³¹-1, is an
// error naming the variable: a wrong id is worse than a refused start.
func RequestedIDFromEnv() (int, error) {
	baseText := os.Getenv(protocol.EnvEngineIDBase)
	base, err := EngineIDBaseFromEnv()
	if err != nil {
		return -1, err
	}
	name := ""
	switch {
	case os.Getenv(protocol.EnvEngineIndex) != "":
		name = protocol.EnvEngineIndex
	case os.Getenv("SLURM_STEP_ID") != "" && os.Getenv("SLURM_PROCID") != "":
		name = "SLURM_PROCID"
	case baseText == "":
		return -1, nil
	default:
		return checkedID(base, 0, "")
	}
	v := os.Getenv(name)
	index, err := strconv.Atoi(v)
	if err != nil || index < 0 {
		return -1, fmt.Errorf("$%s=%q is not a non-negative integer (the engine's 0-based index in its launch)", name, v)
	}
	return checkedID(base, index, name)
}

func checkedID(base, index int, indexName string) (int, error) {
	if base > maxEngineID || index > maxEngineID-base {
		if indexName == "" {
			return -1, fmt.Errorf("$%s=%d is beyond the largest engine id %d", protocol.EnvEngineIDBase, base, maxEngineID)
		}
		return -1, fmt.Errorf("engine id $%s + $%s = %d + %d is beyond the largest engine id %d", protocol.EnvEngineIDBase, indexName, base, index, maxEngineID)
	}
	return base + index, nil
}

// ApplyRequestedID fills cfg.RequestedID from the environment
// (RequestedIDFromEnv) when the command line asked for none and the engine
// is not an MPI rank; an MPI engine asks for IPP_ENGINE_ID_BASE + rank
// once MPI is up. For Main and `ipcluster engine`, after ApplyMPIFlags.
func ApplyRequestedID(cfg *Config) error {
	if cfg.MPI || cfg.RequestedID >= 0 {
		return nil
	}
	id, err := RequestedIDFromEnv()
	if err != nil {
		return err
	}
	cfg.RequestedID = id
	return nil
}
