// Package beamtest holds helpers shared by beamdeploy's tests. Only test
// files import it.
package beamtest

import (
	"fmt"
	"os"
	"testing"
)

// EnvSystemd is the environment variable that enables the real-systemd
// tests. scripts/sandbox sets it inside the throwaway systemd.
const EnvSystemd = "BEAMDEPLOY_TEST_SYSTEMD"

// RequireSystemd skips t unless BEAMDEPLOY_TEST_SYSTEMD is set; when it is
// set, a missing systemd (not PID 1, or no system bus) fails the test:
// a silent skip in CI would hide that nothing was tested.
func RequireSystemd(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvSystemd) == "" {
		t.Skip(EnvSystemd + " is not set; run `make test-systemd` to run this test against a real systemd")
	}
	if err := systemdPresent(); err != nil {
		t.Fatalf("%s is set but %v", EnvSystemd, err)
	}
}

func systemdPresent() error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return fmt.Errorf("systemd is not running as PID 1 (%w)", err)
	}
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
		if _, perr := os.Stat("/run/systemd/private"); perr != nil {
			return fmt.Errorf("neither the system bus nor systemd's private socket is there (%w)", err)
		}
	}
	return nil
}

// UnitName returns a unique, recognisable unit name for a test.
func UnitName(t testing.TB, suffix string) string {
	return fmt.Sprintf("bdtest-%d-%s%s", os.Getpid(), sanitize(t.Name()), suffix)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			b[i] = '-'
		}
	}
	return string(b)
}
