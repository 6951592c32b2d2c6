//go:build unix

package sshx

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// controlDir returns a directory for control sockets that only this user
// can enter. It lives in /tmp, not $TMPDIR: macOS's per-user TMPDIR is so
// long that a socket path under it passes the 104-byte limit of sun_path.
// A directory that exists but belongs to someone else, or that others can
// enter, is refused: its owner could answer in place of our master.
func controlDir() (string, error) {
	uid := os.Getuid()
	dir := filepath.Join("/tmp", fmt.Sprintf("ipp-ssh-%d", uid))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a private directory of this user", dir)
	}
	return dir, nil
}
