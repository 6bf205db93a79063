//go:build !linux

package sockact

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

var errUnsupported = fmt.Errorf("sockact: fd passing is only implemented on Linux: %w", errors.ErrUnsupported)

// Inherited returns an error wrapping errors.ErrUnsupported.
func Inherited() ([]FD, error) { return nil, errUnsupported }

// Send returns an error wrapping errors.ErrUnsupported.
func Send(*net.UnixConn, []FD) error { return errUnsupported }

// Fetch returns an error wrapping errors.ErrUnsupported.
func Fetch(string, time.Duration) ([]FD, error) { return nil, errUnsupported }

// Place returns an error wrapping errors.ErrUnsupported.
func Place([]FD) ([]FD, error) { return nil, errUnsupported }

// Exec returns an error wrapping errors.ErrUnsupported.
func Exec([]FD, []string, []string) error { return errUnsupported }

// Serve returns an error wrapping errors.ErrUnsupported.
func Serve(context.Context, *net.UnixListener, []FD, func(*net.UnixConn) error) error {
	return errUnsupported
}
