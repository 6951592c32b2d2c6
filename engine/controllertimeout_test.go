package engine

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

func TestControllerTimeout(t *testing.T) {
	for _, tc := range []struct {
		flag  time.Duration
		given bool
		env   string
		want  time.Duration
	}{
		{0, false, "", DefaultControllerTimeout},
		{5 * time.Second, true, "", 5 * time.Second},
		{0, true, "", -1}, // never give up
		{0, false, "12", 12 * time.Second},
		{0, false, "250ms", 250 * time.Millisecond},
		{0, false, "0", -1},
		{7 * time.Second, true, "12", 7 * time.Second}, // the flag wins
	} {
		t.Setenv(protocol.EnvControllerTimeout, tc.env)
		got, err := ControllerTimeout(tc.flag, tc.given)
		if err != nil || got != tc.want {
			t.Errorf("flag %v given %v env %q: %v, %v; want %v", tc.flag, tc.given, tc.env, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		flag  time.Duration
		given bool
		env   string
		want  string
	}{
		{-time.Second, true, "", "--controller-timeout -1s: must be positive"},
		{0, false, "soon", `$IPP_CONTROLLER_TIMEOUT="soon"`},
		{0, false, "-3", "$IPP_CONTROLLER_TIMEOUT -3s: must be positive"},
	} {
		t.Setenv(protocol.EnvControllerTimeout, tc.env)
		if got, err := ControllerTimeout(tc.flag, tc.given); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("flag %v given %v env %q: %v, %v; want an error with %q", tc.flag, tc.given, tc.env, got, err, tc.want)
		}
	}
}

// TestRegistrationTimeoutSetting: --timeout wins, then $IPP_REGISTRATION_TIMEOUT
// (what the local launcher sets), then the 5 s default; bad values are
// errors that name their source.
func TestRegistrationTimeoutSetting(t *testing.T) {
	for _, tc := range []struct {
		flag  time.Duration
		given bool
		env   string
		want  time.Duration
	}{
		{0, false, "", DefaultRegistrationTimeout},
		{2 * time.Second, true, "", 2 * time.Second},
		{0, false, "60", time.Minute},
		{0, false, "1.5s", 1500 * time.Millisecond},
		{3 * time.Second, true, "60", 3 * time.Second}, // the flag wins
		{0, true, "60", DefaultRegistrationTimeout},    // 0 means the default, as in Config
	} {
		t.Setenv(protocol.EnvRegistrationTimeout, tc.env)
		got, err := RegistrationTimeout(tc.flag, tc.given)
		if err != nil || got != tc.want {
			t.Errorf("flag %v given %v env %q: %v, %v; want %v", tc.flag, tc.given, tc.env, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		flag  time.Duration
		given bool
		env   string
		want  string
	}{
		{-time.Second, true, "", "--timeout -1s: the wait for the registration reply must be positive"},
		{0, false, "soon", `$IPP_REGISTRATION_TIMEOUT="soon"`},
		{0, false, "-3", "$IPP_REGISTRATION_TIMEOUT -3s"},
	} {
		t.Setenv(protocol.EnvRegistrationTimeout, tc.env)
		if got, err := RegistrationTimeout(tc.flag, tc.given); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("flag %v given %v env %q: %v, %v; want an error with %q", tc.flag, tc.given, tc.env, got, err, tc.want)
		}
	}
}

// TestMainBadControllerTimeout: a bad --controller-timeout ends Main with
// status 2 at once, before it waits for a connection file that does not
// exist.
func TestMainBadControllerTimeout(t *testing.T) {
	t.Setenv(protocol.EnvConnectionInfo, "")
	t.Setenv(protocol.EnvControllerTimeout, "")
	defer func(d time.Duration) { connectionWait = d }(connectionWait)
	connectionWait = time.Hour // a wait would show as a test timeout
	missing := filepath.Join(t.TempDir(), "none.json")
	for _, v := range []string{"-5", "later"} {
		if code := mainWithArgs("engine", []string{"--file", missing, "--controller-timeout", v}); code != 2 {
			t.Errorf("--controller-timeout %s: exit %d, want 2", v, code)
		}
	}
	t.Setenv(protocol.EnvControllerTimeout, "-1")
	if code := mainWithArgs("engine", []string{"--file", missing}); code != 2 {
		t.Errorf("IPP_CONTROLLER_TIMEOUT=-1: exit %d, want 2", code)
	}
}
