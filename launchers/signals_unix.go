//go:build unix

package launchers

import "syscall"

// signalNames are the names batch tools accept ("INT" for SIGINT). The
// numbers differ between Linux and macOS (SIGUSR1 is 10 on one, 30 on the
// other), so the table is built from this platform's constants and lives
// in a build-tagged file: Windows has no SIGUSR1, SIGCONT or SIGSTOP at all.
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT",
	syscall.SIGKILL: "KILL", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2",
	syscall.SIGTERM: "TERM", syscall.SIGCONT: "CONT", syscall.SIGSTOP: "STOP",
	syscall.SIGTSTP: "TSTP", syscall.SIGALRM: "ALRM",
}
