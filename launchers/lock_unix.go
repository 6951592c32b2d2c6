//go:build unix

package launchers

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// fileLock is an exclusive flock on a lock file beside the file it guards
// (not on the file itself, which is replaced by rename on every write).
type fileLock struct {
	f    *os.File
	path string
}

// lockFile takes the lock, polling until ctx is done. The lock file may
// be removed by the holder; a waiter that then wins the lock on the
// unlinked file notices (the path no longer names its inode) and retries.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		var lockErr error
		err = pollUntil(ctx, func() bool {
			lockErr = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			return !errors.Is(lockErr, syscall.EWOULDBLOCK)
		})
		if err == nil {
			err = lockErr
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &fileLock{f: f, path: path}, nil
		}
		f.Close() // lost a race with a holder that removed the file
	}
}

// unlock releases the lock, removing the lock file first when remove is
// set (while still holding it, so no one can lock the old inode unnoticed).
func (l *fileLock) unlock(remove bool) {
	if remove {
		os.Remove(l.path)
	}
	l.f.Close()
}
