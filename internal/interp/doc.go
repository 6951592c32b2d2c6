// Package interp is the namespace a Go engine runs interactive snippets in:
// the counterpart of an IPython user namespace, built on the yaegi
// interpreter (github.com/traefik/yaegi v0.16.1).
//
// # Flow of Exec
//
//  1. Split (source.go). The snippet is cut into top-level items at the
//     semicolons Go inserts at line ends, ignoring those inside brackets
//     and in for/if/switch headers. A snippet may thus mix import lines,
//     declarations (func, type) and statements in any order, which neither
//     a Go file nor a function body accepts. Each item is parsed on its own
//     with a //line directive, so positions in messages are those of the
//     user's text ("cell3:2:5", cellN being the N-th Exec). Any syntax
//     error fails the whole snippet before anything runs.
//  2. Rewrite. yaegi limits are worked around in the item text: range
//     over an integer (see below); func main, which yaegi would re-run
//     after every later compile (it is renamed and called once at the end
//     of the snippet, so a pasted program runs like `go run`); and go
//     statements and time/context.AfterFunc calls, whose goroutines yaegi runs
//     without a recover (see Goroutines). Rewritten text carries /*line*/
//     directives, so positions in messages stay the user's.
//  3. Import. Import lines are hoisted and run first, one at a time, as
//     yaegi requires. Re-importing a package the namespace already has
//     under the same name is a no-op.
//  4. Run. The remaining items are grouped into as few compile units as
//     possible: runs of declarations compile as a file, runs of statements
//     as the body of yaegi's REPL main (whose variables become namespace
//     globals). var and const join the unit they follow.
//  5. Value. A final expression statement runs as the argument of a hidden
//     one-parameter host function, which hands the value to Go with its
//     dynamic type; if it does not compile that way (no value, or several,
//     like fmt.Println) it runs as a plain statement and there is no value.
//
// Compile and run errors become *Error (CompileError with the source line
// and a caret; Panic with the interpreted call stack, which yaegi prints to
// its stderr and a filter there collects). Panics of yaegi's own compiler
// are recovered too. Run-time errors that yaegi raises in its own terms
// read as compiled Go's (errors.go, goPanicValue): a nil dereference is
// "runtime error: invalid memory address or nil pointer dereference", not
// a reflect message, and is a runtime.Error. yaegi positions a frame where
// it began, so each top-level statement of a snippet first calls a host
// function that records its position (stmtMarks): the <snippet> frame of a
// traceback names the statement that was running.
//
// # Goroutines
//
// A panic in a goroutine would end the process. go statements therefore
// hand their call to the host (goroutines.go), which runs it under a
// recover, after copying the operands the go statement evaluates at once
// (source.go, goEdit). A panic while the Exec that ran the go statement
// is going stops that run, as an interrupt does, and is its error (Panic,
// "... (in a goroutine started at cellN:L:C)"); a later one is written to
// Stderr and handed to Options.OnGoroutinePanic. A goroutine that compiled
// code starts (other than time/context.AfterFunc's) and that runs
// interpreted code is not covered: a panic there still ends the process.
//
// # Output
//
// fmt.Print*, println, log and writes to os.Stdout/os.Stderr all reach
// Options.Stdout/Stderr, in order, and are fully delivered when Exec
// returns (the engine publishes them before the reply). os.Stdout stays an
// *os.File: during an Exec it is the write end of a pipe pumped into the
// writer (output.go).
//
// # Push and pull
//
// Set hands a value to the interpreter as a variable of a hidden compiled
// package and declares `var name = pkg.V`, so the new variable has the
// exact Go type of the value (int stays int, *mat.Dense stays *mat.Dense)
// without spelling the type in Go source. Get reads yaegi's globals, and
// evaluates the name through the hidden host function for functions.
//
// # Cancellation
//
// Exec stops a run when its ctx ends, at the next interpreted step. yaegi's
// ExecuteWithContext cannot be used as is: it abandons the run, which later
// resumes concurrently with the next snippet; runctl.go explains how the
// run is stopped and waited for instead, and why the stop is repeated until
// the run returns (a single one could be lost, leaving a busy loop running
// for good). Compiled code cannot be preempted: a run blocked in
// time.Sleep or an MPI call keeps the namespace busy until the call
// returns; Exec waits for it within its ctx and Options.BusyWait, then
// fails with NameBusy, which says so. Reset does not wait.
//
// # yaegi v0.16.1 limits on Go 1.26
//
//   - The standard library tables stop at go1.22: newer API (slices.Sorted,
//     maps.Keys returning iter.Seq, iterator functions) is undefined. The
//     generic packages (slices, maps, cmp) are interpreted from a source
//     subset yaegi ships: slices.Contains works, slices.Max does not, and
//     an aliased import (import s "slices") loses the interpreted part.
//   - Generic functions work, except type inference from variadic
//     arguments (Sum(1.5, 2) for Sum[T](xs ...T)): "undefined type for T".
//   - Range over an integer panics yaegi's compiler ("nil type"). The loop
//     is rewritten to a 3-clause loop when the operand is an integer
//     literal expression or a len/cap call and the body does not assign the
//     loop variable; otherwise (for i := range n) the snippet fails with a
//     CompileError that says so. yaegi also logs "nil type" through the
//     standard logger (the process's stderr) before panicking; that line
//     cannot be suppressed without touching the global logger.
//   - An undefined name on the right of a top-level := or in a var
//     initializer is reported by yaegi as "constant definition loop";
//     undefined.go finds the name and reports "undefined: name" instead
//     (or keeps yaegi's message with a hint when it cannot).
//   - A top-level defer would be re-run after every later snippet; it is
//     rejected. defer inside functions works.
//   - A panic in a goroutine started by a snippet is not recovered by yaegi
//     (see Goroutines for the rewrite that does). Goroutines of interpreted
//     code race with the next Execute on yaegi's global frame (go test
//     -race reports it inside yaegi, with or without the rewrite).
//   - x.M as a method value binds to the variable x, not its value (a
//     later x = ... changes what it calls).
//   - Index and slice errors carry no index or length ("runtime error:
//     index out of range"). A fatal Go error (a stack overflow from endless
//     recursion, concurrent map writes) is not a panic and ends the
//     process.
//   - A send statement (ch <- v) on a channel of a compiled type (e.g. a
//     chan pushed with Set) panics yaegi's compiler; it is reported as a
//     CompileError. select with a send case works.
//   - Values of types declared in snippets come back from Get as unnamed
//     struct types without methods.
//   - Loop variables of top-level for statements become namespace globals
//     (yaegi runs top-level statements in the global scope).
//   - println writes to stdout, not stderr as in compiled Go.
//
// # Symbol tables
//
// The standard library comes from yaegi's stdlib package (plus
// stdlib/unrestricted with Options.Unrestricted); gonum's mat, floats and
// stat from the generated tables in ./symbols. Namespace.Use adds more
// (the engine's mpi package, user programs' own packages). yaegi receives
// a package's symbols only when a snippet first imports it, and compiles
// the generic packages' source only at the first import of one of them
// (lazyload.go): opening a namespace copied every table and compiled those
// sources, 6 ms of an engine's start.
package interp
