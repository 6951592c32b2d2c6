//go:build unix && !linux

package launchers

import "errors"

// Without /proc a process is identified by its pid alone.

func procStartTime(int) (uint64, error) { return 0, errors.ErrUnsupported }

func procCmdline(int) ([]string, error) { return nil, errors.ErrUnsupported }

func procLive(int, uint64) bool { return true }

// Without /proc descendants cannot be found; process groups must do.
func procDescendantsOf(pids []int) [][]int { return make([][]int, len(pids)) }
