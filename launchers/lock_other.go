//go:build !unix

package launchers

import (
	"context"
	"os"
)

// fileLock is a lock file created exclusively; on platforms without flock
// a crashed holder leaves it behind and it must be removed by hand.
type fileLock struct{ path string }

func lockFile(ctx context.Context, path string) (*fileLock, error) {
	var f *os.File
	err := pollUntil(ctx, func() bool {
		var err error
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	f.Close()
	return &fileLock{path: path}, nil
}

func (l *fileLock) unlock(bool) { os.Remove(l.path) }
