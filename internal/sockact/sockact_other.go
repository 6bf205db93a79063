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

// MsgConn is a connection that carries descriptors: a *net.UnixConn, or
// a type embedding one.
type MsgConn interface {
	WriteMsgUnix(b, oob []byte, addr *net.UnixAddr) (n, oobn int, err error)
}

// Refuse returns an error wrapping errors.ErrUnsupported.
func Refuse(*net.UnixConn, error) error { return errUnsupported }

// Send returns an error wrapping errors.ErrUnsupported.
func Send(MsgConn, []FD) error { return errUnsupported }

// Fetch returns an error wrapping errors.ErrUnsupported.
func Fetch(string, time.Duration) ([]FD, error) { return nil, errUnsupported }

// Place returns an error wrapping errors.ErrUnsupported.
func Place([]FD) ([]FD, error) { return nil, errUnsupported }

// Exec returns an error wrapping errors.ErrUnsupported.
func Exec([]FD, []string, []string) error { return errUnsupported }

// Serve returns an error wrapping errors.ErrUnsupported.
func Serve(context.Context, net.Listener, []FD) error {
	return errUnsupported
}
