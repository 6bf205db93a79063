//go:build faults

package main

// The end-to-end tests' build (go build -tags faults): knobs, read from
// the environment, that make hello misbehave.
//
//	HELLO_CRASH_AT_START=1   print a message to stderr and exit 3 before listening
//	HELLO_NO_READY=1         serve, but never send READY=1
//	HELLO_IGNORE_SIGTERM=1   ignore SIGTERM entirely and never drain (SIGKILL ends it)
//	HELLO_READY_DELAY=<dur>  wait this long (e.g. 2s) before sending READY=1
//	HELLO_NO_HOT=1           do not register for hot upgrades
//	HELLO_FAIL_AFTER=<dur>   this long after READY=1, stop accepting, finish the
//	                         requests in flight and exit 4 (a fatal error found
//	                         after start-up); with HELLO_FAIL_ONCE=<path>, only
//	                         if path does not exist yet (it is created)

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beamdeploy/beamdeploy"
)

// crashAtStart returns 3 with HELLO_CRASH_AT_START=1, else 0.
func crashAtStart() int {
	if os.Getenv("HELLO_CRASH_AT_START") != "1" {
		return 0
	}
	fmt.Fprintln(os.Stderr, "hello: crashing at start as asked by HELLO_CRASH_AT_START=1")
	return 3
}

// signalContext is done on SIGTERM or SIGINT; with HELLO_IGNORE_SIGTERM=1
// SIGTERM is ignored and the context is never done.
func signalContext() (context.Context, context.CancelFunc) {
	if os.Getenv("HELLO_IGNORE_SIGTERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		return context.WithCancel(context.Background())
	}
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// hotUpgrades accepts hot upgrades unless HELLO_NO_HOT=1.
func hotUpgrades(ctx context.Context) context.Context {
	if os.Getenv("HELLO_NO_HOT") == "1" {
		return ctx
	}
	return beamdeploy.HotUpgrades(ctx)
}

// ready sends READY=1, after HELLO_READY_DELAY, unless HELLO_NO_READY=1.
func ready(ctx context.Context) error {
	if os.Getenv("HELLO_NO_READY") == "1" {
		return nil
	}
	if v := os.Getenv("HELLO_READY_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("parse HELLO_READY_DELAY: %w", err)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
	}
	return beamdeploy.Ready()
}

// failAfter arranges the HELLO_FAIL_AFTER exit: it calls stop (which
// drains the server) after the delay and reports that it did.
func failAfter(stop func(), log *slog.Logger) *atomic.Bool {
	var failed atomic.Bool
	d, err := time.ParseDuration(os.Getenv("HELLO_FAIL_AFTER"))
	if err != nil {
		return &failed
	}
	if once := os.Getenv("HELLO_FAIL_ONCE"); once != "" {
		f, err := os.OpenFile(once, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return &failed // failed before (or cannot tell): serve normally
		}
		f.Close()
	}
	time.AfterFunc(d, func() {
		log.Error("fatal error after start-up, as asked by HELLO_FAIL_AFTER; exiting with status 4", "after", d)
		failed.Store(true)
		stop()
	})
	return &failed
}
