//go:build !linux

package procid

// Stat needs /proc.
func Stat(int) (state byte, start uint64, err error) { return 0, 0, ErrUnsupported }

// Self needs /proc.
func Self() (ID, error) { return ID{}, ErrUnsupported }

func hostToken() (string, error) { return "", ErrUnsupported }
