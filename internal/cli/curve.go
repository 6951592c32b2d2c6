package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// CurveFlags are --curve and --no-curve, shared by `start` (which passes
// them on to the controller) and the controller role.
type CurveFlags struct {
	// Curve forces CurveZMQ on, NoCurve off; neither means on when the
	// controller binds a non-loopback address (or IPP_ENABLE_CURVE=1).
	Curve, NoCurve bool
}

func (c *CurveFlags) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&c.Curve, "curve", false, "encrypt and authenticate every controller connection with CurveZMQ, engine and client side (default: on for each side whose address, --ip or --client-ip, is not loopback; IPP_ENABLE_CURVE=1 = --curve)")
	fs.BoolVar(&c.NoCurve, "no-curve", false, "never use CurveZMQ on either side, e.g. for ipyparallel peers older than 7.1 (messages stay signed but readable on the network)")
}

func (c CurveFlags) check() error {
	if c.Curve && c.NoCurve {
		return errors.New("--curve and --no-curve contradict each other")
	}
	return nil
}

// mode is the controller's CurveMode: the flags, else IPP_ENABLE_CURVE=1
// as in ipyparallel, else automatic.
func (c CurveFlags) mode() (controller.CurveMode, error) {
	if err := c.check(); err != nil {
		return controller.CurveAuto, err
	}
	switch {
	case c.Curve:
		return controller.CurveOn, nil
	case c.NoCurve:
		return controller.CurveOff, nil
	case os.Getenv(protocol.EnvEnableCurve) == "1":
		return controller.CurveOn, nil
	}
	return controller.CurveAuto, nil
}

// args are the flags to hand to a controller started by a launcher.
func (c CurveFlags) args() []string {
	switch {
	case c.Curve:
		return []string{"--curve"}
	case c.NoCurve:
		return []string{"--no-curve"}
	}
	return nil
}

// curveSecretFromEnv is the controller key pair of IPP_CURVE_SECRETKEY
// (and IPP_CURVE_PUBLICKEY, which must match), as ipyparallel reads it.
func curveSecretFromEnv() (string, error) {
	pub, sec := wire.CurveKeysFromEnv()
	if sec == "" {
		if pub != "" {
			return "", fmt.Errorf("%s is set without %s", protocol.EnvCurvePublicKey, protocol.EnvCurveSecretKey)
		}
		return "", nil
	}
	derived, err := transport.CurvePublicKey(sec)
	if err != nil {
		return "", fmt.Errorf("%s: %w", protocol.EnvCurveSecretKey, err)
	}
	if pub != "" && pub != derived {
		return "", fmt.Errorf("%s does not belong to %s", protocol.EnvCurvePublicKey, protocol.EnvCurveSecretKey)
	}
	return sec, nil
}

// curveNotice tells the user, in one line on w, whether the controller
// described by info encrypts, and warns when it does not although it
// listens beyond loopback.
func curveNotice(w io.Writer, info *wire.Common) {
	if info.CurveServerKey != nil && *info.CurveServerKey != "" {
		fmt.Fprintln(w, "CURVE encryption is on: connections need curve_serverkey from the connection files "+
			"(Go peers need a cgo+libzmq build; ipyparallel peers need 7.1 or later, else restart with --no-curve)")
		return
	}
	host := info.Interface
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if !loopbackHost(host) {
		fmt.Fprintf(w, "WARNING: CURVE encryption is off on %s: code, pushed data, results and outputs cross the network "+
			"readable by anyone who can capture it (message signatures still stop forgery and replay)\n", info.Interface)
	}
}

// curveNotices is curveNotice for a controller's two connection files:
// one notice when both sides bind the same address, else a line saying
// where engines and clients connect and which side is encrypted, and the
// warning for a side that is open to the network unencrypted.
func curveNotices(w io.Writer, client, engine *wire.Common) {
	if client == nil || client.Interface == engine.Interface {
		curveNotice(w, engine)
		return
	}
	on := func(c *wire.Common) bool { return c.CurveServerKey != nil && *c.CurveServerKey != "" }
	state := func(c *wire.Common) string {
		if on(c) {
			return "CURVE encrypted"
		}
		return "unencrypted"
	}
	fmt.Fprintf(w, "Engines connect on %s (%s), clients on %s (%s)\n", engine.Interface, state(engine), client.Interface, state(client))
	if on(engine) {
		fmt.Fprintln(w, "CURVE encryption is on for engines: they need curve_serverkey from the engine connection file "+
			"(Go engines need a cgo+libzmq build; ipyparallel engines need 7.1 or later, else restart with --no-curve)")
	} else {
		curveNotice(w, engine)
	}
	if on(client) {
		fmt.Fprintln(w, "CURVE encryption is on for clients: pure-Go clients (CGO_ENABLED=0 builds) cannot connect")
	} else {
		curveNotice(w, client)
	}
}

// loopbackHost is whether a bound host stays on this machine.
func loopbackHost(host string) bool {
	host = strings.Trim(host, "[]")
	return strings.HasPrefix(host, "127.") || host == "localhost" || host == "::1"
}
