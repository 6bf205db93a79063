package units

import (
	"errors"
	"fmt"
)

// ErrNoSuchUnit is returned when a unit is not loaded.
var ErrNoSuchUnit = errors.New("units: no such unit")

// ErrUnitActive is returned by StartTransient when a unit of that name is
// already running.
var ErrUnitActive = errors.New("units: unit already active")

// ErrUnitLoaded is returned by StartTransient when a stopped unit of that
// name is still loaded after UnloadTimeout, so that the name cannot be
// reused yet.
var ErrUnitLoaded = errors.New("units: a stopped unit of that name is still loaded")

// ErrJobFailed is matched (with errors.Is) by every *JobError.
var ErrJobFailed = errors.New("units: job failed")

// JobError reports a start or stop job that did not finish with "done".
type JobError struct {
	Unit   string // unit name, e.g. "hello@green.service"
	Job    string // "start" or "stop"
	Result string // systemd job result: "failed", "timeout", "canceled", "dependency", ...
	// Exit describes how the main process ended ("exited with status 3",
	// "killed by signal 9") when systemd still knew it; empty otherwise.
	Exit string
	// ServiceResult is the unit's Result property ("exit-code", "timeout",
	// "signal", "protocol", ...) when known.
	ServiceResult string
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("%s job for %s finished with result %q", e.Job, e.Unit, e.Result)
	if e.ServiceResult != "" && e.ServiceResult != "success" {
		msg += fmt.Sprintf(" (service result %q)", e.ServiceResult)
	}
	if e.Exit != "" {
		msg += ": main process " + e.Exit
	}
	return msg
}

// Is reports whether target is ErrJobFailed.
func (e *JobError) Is(target error) bool { return target == ErrJobFailed }
