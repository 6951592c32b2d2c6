package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/ipp-hpc/ipp/internal/interp"
)

// ErrControllerLost is returned (wrapped) by Run when heartbeat pings stop
// arriving for longer than the heartbeat timeout.
var ErrControllerLost = errors.New("engine: lost contact with the controller (no heartbeat)")

// remoteError is a failure reported to the client with a Python-style
// exception name, since clients (Python's above all) key on ename.
type remoteError struct {
	name      string
	msg       string
	traceback []string
}

func (e *remoteError) Error() string { return e.name + ": " + e.msg }

// panicError turns a recovered panic into a remote error whose traceback
// is the goroutine stack, so users see where their code panicked.
func panicError(p any, stack []byte) error {
	tb := []string{fmt.Sprintf("panic: %v", p), ""}
	tb = append(tb, strings.Split(strings.TrimRight(string(stack), "\n"), "\n")...)
	return &remoteError{name: interp.NamePanic, msg: fmt.Sprint(p), traceback: tb}
}

// describe maps any error to the (ename, evalue, traceback) triple of an
// ipyparallel error dict; protocol.NewEngineError fills an empty name or
// traceback.
func describe(err error, interrupted bool) (ename, evalue string, traceback []string) {
	var re *remoteError
	var ie *interp.Error
	switch {
	case errors.As(err, &re):
		ename, evalue, traceback = re.name, re.msg, re.traceback
	case errors.As(err, &ie):
		ename, evalue, traceback = ie.Name, ie.Message, ie.Traceback
	case interrupted:
		// Whatever a native function returned after its context was
		// cancelled, the cause is the interrupt; name it as the
		// interpreter does.
		ename, evalue = interp.NameInterrupted, "interrupted by signal_request: "+err.Error()
	default:
		ename, evalue = errorName(err), err.Error()
	}
	return ename, evalue, traceback
}

// errorName names a Go error by its type (fs.PathError, strconv.NumError);
// the anonymous types behind errors.New and fmt.Errorf become plain "Error".
func errorName(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.String() {
	case "errors.errorString", "fmt.wrapError", "fmt.wrapErrors", "errors.joinError", "":
		return "Error"
	}
	return t.String()
}
