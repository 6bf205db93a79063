package sockact

import (
	"fmt"
	"strings"
	"time"
)

// TraceEnv, when set in an instance's environment (a drop-in's
// Environment=), makes the exec shim write its Trace as one line to
// stderr, the unit's journal, and unset it before the app starts.
// `make bench` sets it to split a start's time between systemd, the shim
// and the app.
const TraceEnv = "BEAMDEPLOY_EXEC_TRACE"

// Trace is when the exec shim started (its main package initialised,
// after the Go runtime), had the listeners (from systemd or the fd
// broker) and exec'd the app: readings of CLOCK_MONOTONIC, the clock of
// systemd's *TimestampMonotonic unit properties.
type Trace struct {
	Main, Listeners, Exec time.Duration
}

const tracePrefix = "beamdeploy exec trace:"

// String formats t as the shim's trace line.
func (t Trace) String() string {
	return fmt.Sprintf("%s main=%.6f listeners=%.6f exec=%.6f", tracePrefix, t.Main.Seconds(), t.Listeners.Seconds(), t.Exec.Seconds())
}

// ParseTrace reads a line written by Trace.String; ok is false for any
// other line.
func ParseTrace(line string) (t Trace, ok bool) {
	_, rest, found := strings.Cut(line, tracePrefix)
	if !found {
		return Trace{}, false
	}
	var m, l, e float64
	if _, err := fmt.Sscanf(rest, " main=%f listeners=%f exec=%f", &m, &l, &e); err != nil {
		return Trace{}, false
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)).Round(time.Microsecond) }
	return Trace{Main: sec(m), Listeners: sec(l), Exec: sec(e)}, true
}
