//go:build !unix

package launchers

import "syscall"

// signalNames are the names batch tools accept, limited to the signals
// this platform's syscall package defines. A client on Windows only ever
// asks a batch system on another host to deliver them, so a signal
// missing here is passed by number (signalName).
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT",
	syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM", syscall.SIGALRM: "ALRM",
}
