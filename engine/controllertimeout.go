package engine

import (
	"fmt"
	"os"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// ControllerTimeout resolves the --controller-timeout of a command line
// into Config.HeartbeatTimeout. flagValue counts when given is true; else
// $IPP_CONTROLLER_TIMEOUT; else DefaultControllerTimeout. Zero means never
// give up (a negative HeartbeatTimeout); a negative value is an error.
func ControllerTimeout(flagValue time.Duration, given bool) (time.Duration, error) {
	d, from, err := durationSetting(flagValue, given, "--controller-timeout", protocol.EnvControllerTimeout, DefaultControllerTimeout)
	switch {
	case err != nil:
		return 0, err
	case d < 0:
		return 0, fmt.Errorf("%s %v: must be positive, or 0 to wait for the controller forever", from, d)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// durationSetting picks a duration from its flag when given, else from the
// environment variable env, else def; from names where it came from, for
// errors ("" for the default).
func durationSetting(flagValue time.Duration, given bool, flag, env string, def time.Duration) (d time.Duration, from string, err error) {
	if given {
		return flagValue, flag, nil
	}
	v := os.Getenv(env)
	if v == "" {
		return def, "", nil
	}
	from = "$" + env
	if d, err = parseSeconds(v); err != nil {
		return 0, from, fmt.Errorf("%s=%q: %v", from, v, err)
	}
	return d, from, nil
}

// parseSeconds reads "30", "2.5" (seconds) or a Go duration ("500ms").
func parseSeconds(v string) (time.Duration, error) {
	var d time.Duration
	err := secondsOrDuration{&d}.Set(v)
	return d, err
}

// RegistrationTimeout resolves an engine's --timeout into
// Config.RegistrationTimeout: flagValue when given is true, else
// $IPP_REGISTRATION_TIMEOUT, else DefaultRegistrationTimeout. Zero means
// the default, as in Config; a negative value is an error.
func RegistrationTimeout(flagValue time.Duration, given bool) (time.Duration, error) {
	d, from, err := durationSetting(flagValue, given, "--timeout", protocol.EnvRegistrationTimeout, DefaultRegistrationTimeout)
	switch {
	case err != nil:
		return 0, err
	case d < 0:
		return 0, fmt.Errorf("%s %v: the wait for the registration reply must be positive", from, d)
	case d == 0:
		return DefaultRegistrationTimeout, nil
	}
	return d, nil
}
