package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/controller"
)

// LimitFlags are the controller's resource limits, on `ipcluster
// controller` and passed through by `ipcluster start`.
type LimitFlags struct {
	// MaxMessageSize is --max-message-size in bytes.
	MaxMessageSize int64
	// MaxConnections is --max-connections (per port).
	MaxConnections int
	// ResultCache is --result-cache in bytes.
	ResultCache int64
	// MaxQueuedTasks is --max-queued-tasks.
	MaxQueuedTasks int
	// MaxQueuedBytes is --max-queued-bytes.
	MaxQueuedBytes int64
}

func (l *LimitFlags) bind(fs *pflag.FlagSet) {
	fs.Var(newBytesValue(&l.MaxMessageSize, controller.DefaultMaxMessageSize), "max-message-size",
		"largest message the controller accepts, in bytes (suffixes: KB, MB, GB, KiB, MiB, GiB); larger ones get an error, a larger single frame drops the connection")
	fs.IntVar(&l.MaxConnections, "max-connections", controller.DefaultMaxConnections,
		"connections each controller port accepts at once (engines, clients and anyone else); newer ones are closed")
	fs.Var(newBytesValue(&l.ResultCache, controller.DefaultResultCacheBytes), "result-cache",
		"bytes of finished results (buffers and output) the controller keeps for clients that ask again (get_result); the oldest are dropped first, and a task whose request or result buffers exceed a quarter of it has them forwarded but not kept")
	fs.IntVar(&l.MaxQueuedTasks, "max-queued-tasks", controller.DefaultMaxQueuedTasks,
		"load-balanced tasks the controller holds (waiting or running); more are refused with QueueFull")
	fs.Var(newBytesValue(&l.MaxQueuedBytes, controller.DefaultMaxQueuedBytes), "max-queued-bytes",
		"bytes of load-balanced task requests the controller holds; more are refused with QueueFull")
}

func (l LimitFlags) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--max-message-size", l.MaxMessageSize}, {"--max-connections", int64(l.MaxConnections)},
		{"--result-cache", l.ResultCache}, {"--max-queued-tasks", int64(l.MaxQueuedTasks)},
		{"--max-queued-bytes", l.MaxQueuedBytes},
	} {
		// 0 is the default, as in controller.Config (options built in
		// code leave the limits unset).
		if f.v < 0 {
			return fmt.Errorf("%s must be positive, not %d", f.name, f.v)
		}
	}
	return nil
}

// apply sets the limits in a controller configuration.
func (l LimitFlags) apply(cfg *controller.Config) error {
	if err := l.check(); err != nil {
		return err
	}
	cfg.MaxMessageSize = l.MaxMessageSize
	cfg.MaxConnections = l.MaxConnections
	cfg.ResultCacheBytes = l.ResultCache
	cfg.MaxQueuedTasks = l.MaxQueuedTasks
	cfg.MaxQueuedBytes = l.MaxQueuedBytes
	return nil
}

// args are the flags to hand to a controller started by a launcher: those
// set to something else than the default (or 0, the default too), so that
// the command line stays short.
func (l LimitFlags) args() []string {
	var out []string
	add := func(name string, v, def int64) {
		if v != def && v != 0 {
			out = append(out, "--"+name, strconv.FormatInt(v, 10))
		}
	}
	add("max-message-size", l.MaxMessageSize, controller.DefaultMaxMessageSize)
	add("max-connections", int64(l.MaxConnections), controller.DefaultMaxConnections)
	add("result-cache", l.ResultCache, controller.DefaultResultCacheBytes)
	add("max-queued-tasks", int64(l.MaxQueuedTasks), controller.DefaultMaxQueuedTasks)
	add("max-queued-bytes", l.MaxQueuedBytes, controller.DefaultMaxQueuedBytes)
	return out
}

// bytesValue is a size flag: plain bytes, or a number with a decimal (KB,
// MB, GB, TB) or binary (KiB, MiB, GiB, TiB) suffix; K, M, G and T alone
// are binary, as in most HPC tools.
type bytesValue struct{ n *int64 }

func newBytesValue(n *int64, def int64) bytesValue {
	*n = def
	return bytesValue{n}
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest first, so that "MiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseBytes reads a size such as 4GiB, 200MB, 1.5G or 1048576.
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("want a size in bytes such as 4GiB, 200MB or 1048576, not %q", s)
	}
	return int64(f * float64(mult)), nil
}

// formatBytes writes n with the largest binary suffix that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b bytesValue) String() string {
	if b.n == nil {
		return ""
	}
	return formatBytes(*b.n)
}

func (b bytesValue) Set(v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	*b.n = n
	return nil
}

func (b bytesValue) Type() string { return "bytes" }
