// Package sshx reaches other hosts through the system's OpenSSH client.
//
// Everything goes through the `ssh` program the user already has, never an
// SSH library: ~/.ssh/config, ProxyJump, agents, hardware keys, Kerberos and
// site-specific wrappers then work exactly as they do at the user's prompt.
//
// # Flow
//
// A Host names a destination as the user would type it ("login.hpc",
// "me@login.hpc", "login.hpc:2222"). The first command opens a master
// connection (ssh -M, ControlPersist) on a control socket under
// /tmp/ipp-ssh-<uid>; every later command, file copy and port forward of this
// process — and of later ipcluster commands within ControlPersist — rides on
// that one TCP connection, so a session authenticates once. A user whose
// ssh_config already sets ControlPath keeps it: the wrapper asks `ssh -G`
// for the effective configuration and only supplies a control path when
// there is none. Windows' OpenSSH has no multiplexing; there every command is
// its own connection.
//
//   - Run and Command run a remote shell command (one string, as ssh hands
//     it to the remote user's shell; quote words with shellwords.Quote).
//   - WriteFile and ReadFile copy small files (connection files, scripts)
//     through `cat` on the existing connection, so scp/sftp are not needed.
//   - Forward opens local TCP ports that lead to addresses as seen from the
//     remote host (a controller on the login node's loopback). A Tunnel
//     watches its forwards and re-establishes them on the same local ports
//     after the connection drops (a laptop that slept), so ZeroMQ sockets
//     connected to those ports reconnect on their own.
//
// Failures come back as *Error, which names the host and the command and says
// which of the usual things went wrong: the host is unknown or unreachable,
// the key was refused, the host key changed, the command is not installed
// there (exit 127), or the command itself failed (with its stderr tail).
//
// Environment: IPP_SSH replaces the ssh program (words, e.g. "ssh -4"), and
// IPP_SSH_ARGS adds arguments to every invocation (e.g. "-F ~/cluster.conf");
// the tests point the latter at the configuration of their own sshd.
package sshx
