// Package protocol holds every name and shape that crosses a process
// boundary between our programs (and ipyparallel's), so that each is
// defined once and the controller, the engines, the client, the
// launchers and the CLI cannot drift apart: the IPP_* environment
// variables (env.go), the error dict and its engine_info (errors.go),
// engine reply metadata and the rule naming a reply after its request
// (reply.go), and the Go apply convention below. It imports no package of
// this module, so any of them can import it.
//
// A Go apply_request is an ordinary apply_request whose content carries a
// "go" object naming the function to call; Python's apply_request has empty
// content and pickled buffers, which is how an engine tells them apart. The
// arguments follow as buffers: each argument is encoded with internal/codec
// into one or more frames, and Call.ArgFrames says how many frames belong
// to each argument, in order. A successful apply_reply carries the encoded
// result as its buffers and {"status": "ok", "go": {"frames": n}}. See
// Call.Quiet for the one departure from Jupyter's IOPub framing, which only
// a client that asks for it gets.
package protocol

import "strings"

// Call is the "go" object of a Go apply_request's content.
type Call struct {
	// Func is a registered function name, or one of the built-ins below.
	Func string `json:"func"`
	// ArgFrames is the number of buffer frames of each argument.
	ArgFrames []int `json:"arg_frames"`
	// Quiet asks the engine to publish nothing on IOPub for this request
	// unless the function prints: no status busy/idle around it. The reply
	// metadata then carries "iopub_idle": whether a status idle follows.
	// Without it an engine frames every request with busy/idle, as Jupyter
	// kernels do; with it a no-op task costs two messages instead of four
	// in every process it crosses.
	Quiet bool `json:"quiet,omitempty"`
}

// ApplyContent is the content of a Go apply_request.
type ApplyContent struct {
	Go *Call `json:"go,omitempty"`
}

// Built-in functions every Go engine serves.
const (
	// Push takes a []string of names followed by one value per name and
	// sets them in the engine's namespace.
	Push = "ipp.push"
	// Pull takes a []string of names and returns []any of their values
	// (or the single value when one name is asked for by PullOne).
	Pull = "ipp.pull"
	// PullOne takes one name and returns its value.
	PullOne = "ipp.pull_one"
	// Shell takes a command string, runs it with /bin/sh -c and returns a
	// ShellResult.
	Shell = "ipp.shell"
	// Noop returns its first argument, or nil; used for latency and
	// throughput measurements.
	Noop = "ipp.noop"
	// Eval evaluates a Go expression in the namespace and returns its
	// value; it lets apply reach interpreted functions: Eval("f(3)").
	Eval = "ipp.eval"
	// Info returns an EngineInfo.
	Info = "ipp.info"
	// Map takes a function name followed by one slice per sequence, all of
	// one length, and returns []any of fn(seq0[i], seq1[i], ...): one
	// request carries a whole chunk of a map.
	Map = "ipp.map"
	// MPI runs one collective over a namespace variable across the MPI
	// world of the engine. It takes five arguments: the collective
	// ("allreduce", "reduce", "bcast", "gather", "allgather", "scatter" or
	// "barrier"), the source variable name, the destination variable name,
	// the reduction operator ("sum", "prod", "min", "max", "land", "lor",
	// "band", "bor"; used by allreduce and reduce) and the root rank (used
	// by reduce, bcast, gather and scatter). The source may be a float64,
	// int or int64, or a []float64, []float32, []int64, []int32 or []byte.
	// The result is stored under the destination name on every rank
	// (allreduce, bcast, allgather, scatter) or at the root only (reduce,
	// gather), where it is also the call's return value; other ranks return
	// nil. Scatter splits the root's slice into equal consecutive parts.
	// Every engine of the world must receive the same call, in the same
	// order relative to other MPI calls, or the collective never completes;
	// clients check that a view covers the whole world before sending.
	MPI = "ipp.mpi"
)

// IsBuiltin reports whether name is reserved for a built-in.
func IsBuiltin(name string) bool { return strings.HasPrefix(name, "ipp.") }

// ShellResult is what Shell returns.
type ShellResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// EngineInfo describes an engine process; Info returns it and it is also
// sent in registration metadata.
type EngineInfo struct {
	ID       int    `json:"id"`
	UUID     string `json:"uuid"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Language string `json:"language"`
	// MPI fields are zero when the engine is not an MPI rank.
	MPIRank   int    `json:"mpi_rank"`
	MPISize   int    `json:"mpi_size"`
	MPIFlavor string `json:"mpi_flavor,omitempty"`
	// MPIWorld identifies the MPI world the rank belongs to: the uuid of
	// its rank 0 engine, agreed on at start, so a client can tell engines
	// of separate mpiexec launches apart.
	MPIWorld string `json:"mpi_world,omitempty"`
}

// IOPubTopic is the topic an engine publishes kind under, as ipyparallel
// engines do: engine.<id>.<kind>.
func IOPubTopic(id int, kind string) []byte {
	return []byte("engine." + itoa(id) + "." + kind)
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
