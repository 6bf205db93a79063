package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// Exit codes of the CLI's own; the parent's failures get theirs from
// control's error table (control.ExitCode). All are documented in the
// README and in exitStatusHelp.
const (
	exitOK          = control.ExitOK
	exitFailure     = control.ExitFailure
	exitUsage       = 2
	exitInterrupted = 130
)

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode maps err to the process's exit status. urfave/cli's own errors
// that carry an exit code (help for an unknown command) are usage errors
// too; no command of ours returns one.
func exitCode(err error) int {
	var ue *usageError
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.As(err, &ec):
		return exitUsage
	}
	return control.ExitCode(err)
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
