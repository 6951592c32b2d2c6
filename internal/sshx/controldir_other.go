//go:build !unix

package sshx

import "errors"

// controlDir: OpenSSH on Windows has no connection multiplexing.
func controlDir() (string, error) { return "", errors.New("no ssh multiplexing on this system") }
