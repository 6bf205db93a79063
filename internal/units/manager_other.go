//go:build !linux

package units

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var errUnsupported = fmt.Errorf("units: systemd is only available on Linux: %w", errors.ErrUnsupported)

// Manager is unavailable on this platform.
type Manager struct{}

// Dial returns an error wrapping errors.ErrUnsupported.
func Dial(context.Context) (*Manager, error) { return nil, errUnsupported }

// Close does nothing.
func (m *Manager) Close() error { return nil }

// Journal returns an error wrapping errors.ErrUnsupported.
func Journal(context.Context, string, string, int, int) ([]string, error) {
	return nil, errUnsupported
}

// JournalSince returns an error wrapping errors.ErrUnsupported.
func JournalSince(context.Context, string, time.Time, int) ([]string, error) {
	return nil, errUnsupported
}

// Version returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Version(context.Context) (int, error) { return 0, errUnsupported }

// Reload returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Reload(context.Context) error { return errUnsupported }

// ResetFailed returns an error wrapping errors.ErrUnsupported.
func (m *Manager) ResetFailed(context.Context, string) error { return errUnsupported }

// Unit returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Unit(context.Context, string) (Unit, error) { return Unit{}, errUnsupported }

// List returns an error wrapping errors.ErrUnsupported.
func (m *Manager) List(context.Context, string) ([]Unit, error) { return nil, errUnsupported }

// StartTransient returns an error wrapping errors.ErrUnsupported.
func (m *Manager) StartTransient(context.Context, string, Spec) (Unit, error) {
	return Unit{}, errUnsupported
}

// Start returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Start(context.Context, string) (Unit, error) { return Unit{}, errUnsupported }

// Stop returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Stop(context.Context, string) (Unit, error) { return Unit{}, errUnsupported }

// Enable returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Enable(context.Context, ...string) error { return errUnsupported }

// JobType returns an error wrapping errors.ErrUnsupported.
func (m *Manager) JobType(context.Context, string) (string, error) { return "", errUnsupported }

// Disable returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Disable(context.Context, ...string) error { return errUnsupported }

// ProcessOwner returns an error wrapping errors.ErrUnsupported.
func (m *Manager) ProcessOwner(context.Context, int, int) (Owner, error) {
	return Owner{}, errUnsupported
}

// Restarts returns an error wrapping errors.ErrUnsupported.
func (m *Manager) Restarts(context.Context, string) (int, error) { return 0, errUnsupported }

// Monotonic returns 0: no CLOCK_MONOTONIC reading on this platform.
func Monotonic() time.Duration { return 0 }
