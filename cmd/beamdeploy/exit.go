package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// Exit codes; documented in the README and in exitStatusHelp.
const (
	exitOK             = 0
	exitFailure        = 1
	exitUsage          = 2
	exitRolledBack     = 3
	exitNotRunning     = 4
	exitSwapInProgress = 5
	exitReleaseInUse   = 6
	exitLocked         = 7
	exitInterrupted    = 130
)

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, swap.ErrSwapInProgress):
		return exitSwapInProgress
	case errors.Is(err, control.ErrReleaseInUse):
		return exitReleaseInUse
	case errors.Is(err, control.ErrLocked):
		return exitLocked
	case errors.Is(err, swap.ErrRolledBack):
		return exitRolledBack
	case errors.Is(err, control.ErrNotRunning):
		return exitNotRunning
	}
	return exitFailure
}

// exit prints err (if any) and returns the process exit code.
func (g *globals) exit(err error) int {
	code := exitCode(err)
	if err == nil {
		return code
	}
	if g.json {
		msg := map[string]any{"message_type": "exit_error", "code": code, "message": err.Error()}
		var ce *control.Error
		if errors.As(err, &ce) && len(ce.Journal) > 0 {
			msg["unit"], msg["journal"] = ce.Unit, ce.Journal
		}
		_ = json.NewEncoder(g.stderr).Encode(msg) // stderr gone: nothing left to tell
		return code
	}
	fmt.Fprintf(g.stderr, "beamdeploy: %v\n", err)
	var ce *control.Error
	if errors.As(err, &ce) && len(ce.Journal) > 0 {
		fmt.Fprintf(g.stderr, "\nlast %d journal lines of %s:\n", len(ce.Journal), ce.Unit)
		for _, l := range ce.Journal {
			fmt.Fprintf(g.stderr, "  %s\n", l)
		}
	}
	return code
}
