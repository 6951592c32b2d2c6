//go:build !linux

package transport

// adviseHugePages does nothing where transparent huge pages do not exist.
func adviseHugePages([]byte) {}
