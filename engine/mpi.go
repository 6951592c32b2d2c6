package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/mpi"
)

// MPIImportPath is the package MPI engines pre-import under the name mpi.
const MPIImportPath = "github.com/ipp-hpc/ipp/mpi"

// mpiFinalizeWait bounds the wait for MPI_Finalize when the engine stops:
// Open MPI's finalize waits for the other ranks, and a rank whose peers
// are still serving (one engine stopped alone) must still exit.
const mpiFinalizeWait = 10 * time.Second

// MPIMode is the value of the --mpi flag: auto (the default), on or off.
// It is a boolean flag, so a bare --mpi turns MPI on.
type MPIMode int

// The MPI modes.
const (
	// MPIAuto turns MPI on when the environment shows an MPI launcher
	// (see MPILauncherDetected).
	MPIAuto MPIMode = iota
	// MPIOn always initialises MPI.
	MPIOn
	// MPIOff never does.
	MPIOff
)

// String implements flag.Value.
func (m *MPIMode) String() string {
	if m == nil {
		return "auto"
	}
	switch *m {
	case MPIOn:
		return "true"
	case MPIOff:
		return "false"
	}
	return "auto"
}

// Set implements flag.Value: "auto", or anything strconv.ParseBool takes.
func (m *MPIMode) Set(v string) error {
	if strings.EqualFold(v, "auto") {
		*m = MPIAuto
		return nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true, false or auto")
	}
	*m = MPIOff
	if on {
		*m = MPIOn
	}
	return nil
}

// IsBoolFlag lets the flag package accept a bare --mpi.
func (m *MPIMode) IsBoolFlag() bool { return true }

// Type names the value for pflag's help.
func (m *MPIMode) Type() string { return "true|false|auto" }

// Enabled resolves the mode: MPIAuto asks MPILauncherDetected.
func (m MPIMode) Enabled() bool {
	switch m {
	case MPIOn:
		return true
	case MPIOff:
		return false
	}
	return MPILauncherDetected()
}

// MPILauncherDetected reports whether this process looks like a rank an
// MPI launcher started: Open MPI's mpiexec sets OMPI_COMM_WORLD_SIZE,
// MPICH's Hydra and srun --mpi=pmi2 set PMI_SIZE, PMIx launchers (srun
// --mpi=pmix, Open MPI 5) set PMIX_RANK; srun with another MPI plugin
// names it in SLURM_MPI_TYPE.
func MPILauncherDetected() bool {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	if os.Getenv("SLURM_STEP_ID") != "" {
		if t := os.Getenv("SLURM_MPI_TYPE"); t != "" && t != "none" {
			return true
		}
	}
	return false
}

// MPIExpectedSizeFromEnv returns the world size this launch asked for:
// IPP_MPI_SIZE, else the launcher's own count (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE, SLURM_STEP_NUM_TASKS), else 0 for unknown. The launcher's
// count matters when the binary links a different MPI than the launcher:
// MPI then reports size 1, but the launcher's variables still say what
// was meant.
func MPIExpectedSizeFromEnv() (int, error) {
	for _, k := range []string{protocol.EnvMPISize, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("$%s=%q is not a process count", k, v)
		}
		return n, nil
	}
	return 0, nil
}

// EngineIDBaseFromEnv returns $IPP_ENGINE_ID_BASE, 0 when unset.
func EngineIDBaseFromEnv() (int, error) {
	v := os.Getenv(protocol.EnvEngineIDBase)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("$%s=%q is not a non-negative integer", protocol.EnvEngineIDBase, v)
	}
	return n, nil
}

// startMPI initialises MPI for an engine in MPI mode, checks the world
// size, agrees on the world id (rank 0's engine uuid), and fills the
// registration metadata, the requested id and the namespace's preloads
// in c.
func startMPI(c *Config, uuid string) error {
	if !mpi.Available() {
		return errors.New("engine: --mpi: this binary was built without MPI; rebuild it with `make build` on a machine with libopenmpi-dev or libmpich-dev installed (or go build -tags ompi / -tags mpich)")
	}
	if err := mpi.Init(); err != nil {
		return fmt.Errorf("engine: MPI initialisation failed: %w", err)
	}
	rank, size := mpi.Rank(), mpi.Size()
	if err := checkWorldSize(c.MPIExpectedSize, size, mpi.Flavor()); err != nil {
		// Leave MPI cleanly: the launcher reports an error exit, not a
		// rank that died without finalising.
		stopMPI(c)
		return err
	}
	world, err := agreeWorld(uuid)
	if err != nil {
		stopMPI(c)
		return fmt.Errorf("engine: agreeing on the MPI world id: %w", err)
	}
	c.Meta.MPIRank, c.Meta.MPISize, c.Meta.MPIFlavor, c.Meta.MPIWorld = rank, size, mpi.Flavor(), world
	if host, err := mpi.ProcessorName(); err == nil && host != "" && c.Meta.Host == "" {
		c.Meta.Host = host
	}
	if c.RequestedID < 0 {
		c.RequestedID = c.MPIIDBase + rank
	}
	c.Interp.Preload = append(append([]string(nil), c.Interp.Preload...), MPIImportPath)
	return nil
}

// worldIDLen bounds the world id broadcast at start; engine uuids
// (wire.NewID) are 33 bytes.
const worldIDLen = 64

// agreeWorld broadcasts rank 0's uuid to every rank, so engines of one
// world report the same MPIWorld and a client can refuse collectives over
// engines of different launches, which would never meet.
func agreeWorld(uuid string) (string, error) {
	buf := make([]byte, worldIDLen)
	if mpi.Rank() == 0 {
		copy(buf, uuid)
	}
	if err := mpi.Bcast(buf, 0); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf, "\x00")), nil
}

// checkWorldSize compares the world size MPI reports with the size the
// launcher asked for (0: unknown, nothing to check).
func checkWorldSize(expected, size int, flavor string) error {
	if expected <= 0 || expected == size {
		return nil
	}
	if size == 1 {
		return fmt.Errorf("engine: MPI reports a world of 1 process but %d were launched: each rank came up as a singleton. "+
			"The usual cause is a binary linked against a different MPI than the launcher that started it (this one uses %s%s), "+
			"e.g. an MPICH build under Open MPI's mpiexec or the reverse, or srun without --mpi=pmix or --mpi=pmi2; "+
			"start it with the mpiexec of the same MPI, or rebuild with `make build` against the launcher's MPI",
			expected, flavor, launcherHint(flavor))
	}
	return fmt.Errorf("engine: MPI reports a world of %d processes but the launcher asked for %d ($%s or --mpi-size); "+
		"was the engine started by a different mpiexec invocation than the one ipcluster configured?", size, expected, protocol.EnvMPISize)
}

// launcherHint names the launcher the environment points to when it does
// not match the binary's MPI.
func launcherHint(flavor string) string {
	switch {
	case os.Getenv("OMPI_COMM_WORLD_SIZE") != "" && flavor != "openmpi":
		return "; the environment shows Open MPI's mpiexec"
	case os.Getenv("PMI_SIZE") != "" && os.Getenv("SLURM_STEP_ID") == "" && flavor != "mpich":
		return "; the environment shows MPICH's mpiexec (Hydra)"
	case os.Getenv("SLURM_STEP_ID") != "" && os.Getenv("PMI_SIZE") == "" && os.Getenv("PMIX_RANK") == "":
		return "; the environment shows srun without a PMI plugin"
	}
	return ""
}

// stopMPI finalises MPI, waiting at most mpiFinalizeWait: a rank whose
// peers still run (or one left inside a collective by an interrupted
// snippet) must not hang the engine's exit.
func stopMPI(c *Config) {
	done := make(chan error, 1)
	go func() { done <- mpi.Finalize() }()
	select {
	case err := <-done:
		if err != nil {
			c.Logger.Warn("MPI_Finalize failed", "err", err)
		}
	case <-time.After(mpiFinalizeWait):
		c.Logger.Warn("MPI_Finalize did not return; exiting without it", "waited", mpiFinalizeWait)
	}
}

// ApplyMPIFlags sets cfg's MPI fields from the --mpi and --mpi-size flags
// of an engine command line (size < 0: not given) and the environment a
// launcher sets, for Main and `ipcluster engine`.
func ApplyMPIFlags(cfg *Config, mode MPIMode, size int) error {
	cfg.MPI = mode.Enabled()
	if !cfg.MPI {
		return nil
	}
	if size < 0 {
		var err error
		if size, err = MPIExpectedSizeFromEnv(); err != nil {
			return err
		}
	}
	base, err := EngineIDBaseFromEnv()
	if err != nil {
		return err
	}
	cfg.MPIExpectedSize, cfg.MPIIDBase = size, base
	return nil
}
