package interp

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	yaegi "github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
	"github.com/traefik/yaegi/stdlib/unrestricted"
)

func cpuNow() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func TestZZProbeUse(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	c0 := cpuNow()
	yi := yaegi.New(yaegi.Options{Unrestricted: true})
	c1 := cpuNow()
	noFmt := yaegi.Exports{}
	for k, v := range stdlib.Symbols {
		if k != "fmt/fmt" {
			noFmt[k] = v
		}
	}
	c2 := cpuNow()
	yi.Use(noFmt)
	c3 := cpuNow()
	yi.Use(yaegi.Exports{"fmt/fmt": stdlib.Symbols["fmt/fmt"]})
	c4 := cpuNow()
	yi.Use(unrestricted.Symbols)
	c5 := cpuNow()
	fmt.Printf("PROBE new=%v copyprep=%v use-nofmt=%v use-fmt(gen)=%v unrestricted=%v pkgs=%d\n", c1-c0, c2-c1, c3-c2, c4-c3, c5-c4, len(stdlib.Symbols))
}
