//go:build !faults

package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/beamdeploy/beamdeploy"
)

// The plain build: no fault knobs (see faults.go for the tests' build).

func crashAtStart() int { return 0 }

// signalContext is done on SIGTERM or SIGINT.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// hotUpgrades accepts hot upgrades (beamdeploy hot-upgrade).
func hotUpgrades(ctx context.Context) context.Context { return beamdeploy.HotUpgrades(ctx) }

// ready sends READY=1.
func ready(context.Context) error { return beamdeploy.Ready() }

// failAfter never fails.
func failAfter(func(), *slog.Logger) *atomic.Bool { return new(atomic.Bool) }
