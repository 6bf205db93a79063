package contract

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ListenFDsStart is the first inherited listener fd (SD_LISTEN_FDS_START).
const ListenFDsStart = 3

// MaxListenFDs is the most listeners the fd broker hands an instance: all
// of an app's listeners go in one message, and the kernel passes at most
// SCM_MAX_FD (253) descriptors in one. Systemd itself may pass more.
const MaxListenFDs = 253

// maxParsedFDs bounds LISTEN_FDS where systemd caps only at INT_MAX: far
// above any real count, it keeps a bad value from making the process
// allocate gigabytes of names.
const maxParsedFDs = 1 << 16

// ErrNoListeners means no listening sockets were passed to this process:
// LISTEN_PID or LISTEN_FDS is unset, or LISTEN_PID names another process.
// The SDK exports it as beamdeploy.ErrNoListeners, hence its text.
var ErrNoListeners = errors.New("beamdeploy: no inherited listener")

// ParseListenFDs applies the rules of sd_listen_fds(3) to the values of
// LISTEN_PID (pid), LISTEN_FDS (fds) and LISTEN_FDNAMES (names) seen by
// the process self, and returns the names of the fds passed: fd
// ListenFDsStart+i is named names[i]. In systemd's order:
//
//   - LISTEN_PID unset, or another process's pid: an error wrapping
//     [ErrNoListeners] (sd_listen_fds returns 0);
//   - LISTEN_PID not a positive integer: an error (it returns -EINVAL);
//   - LISTEN_FDS unset: [ErrNoListeners];
//   - LISTEN_FDS not a count from 1 to 65536: an error (systemd also
//     refuses 0 and negative counts, and caps only at INT_MAX);
//   - LISTEN_FDNAMES is optional: a name missing or empty is "unknown",
//     names beyond the count are ignored (sd_listen_fds_with_names
//     refuses a count that differs; a name is only a label here).
func ParseListenFDs(pid, fds, names string, self int) ([]string, error) {
	switch {
	case pid == "" && fds == "":
		return nil, fmt.Errorf("%s unset: %w", EnvListenFDs, ErrNoListeners)
	case pid == "":
		return nil, fmt.Errorf("%s unset: %w", EnvListenPID, ErrNoListeners)
	}
	p, err := strconv.Atoi(pid)
	if err != nil || p <= 0 {
		return nil, fmt.Errorf("parse %s=%q: not a pid", EnvListenPID, pid)
	}
	if p != self {
		return nil, fmt.Errorf("%s %d is not this process %d: %w", EnvListenPID, p, self, ErrNoListeners)
	}
	if fds == "" {
		return nil, fmt.Errorf("%s unset: %w", EnvListenFDs, ErrNoListeners)
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 1 || n > maxParsedFDs {
		return nil, fmt.Errorf("parse %s=%q: not a count from 1 to %d", EnvListenFDs, fds, maxParsedFDs)
	}
	return splitNames(names, n), nil
}

// TakeListenFDs reads the socket activation variables of this process
// (see [ParseListenFDs]) and unsets them, also on error, so that its
// children do not inherit them.
func TakeListenFDs() ([]string, error) {
	pid, fds, names := os.Getenv(EnvListenPID), os.Getenv(EnvListenFDs), os.Getenv(EnvListenFDNames)
	for _, k := range []string{EnvListenPID, EnvListenFDs, EnvListenFDNames} {
		_ = os.Unsetenv(k) // fails only for invalid names
	}
	return ParseListenFDs(pid, fds, names, os.Getpid())
}

// splitNames returns n names from LISTEN_FDNAMES, "unknown" where missing
// or empty.
func splitNames(names string, n int) []string {
	out := make([]string, n)
	given := strings.Split(names, ":")
	for i := range out {
		out[i] = "unknown"
		if i < len(given) && given[i] != "" {
			out[i] = given[i]
		}
	}
	return out
}
