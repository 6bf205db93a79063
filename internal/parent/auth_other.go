//go:build !linux

package parent

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/beamdeploy/beamdeploy/internal/units"
)

// process is not pinned on this platform.
type process struct{}

// credentials cannot identify peers on this platform: everything is refused.
func credentials(*net.UnixConn) (peer, *process) {
	return peer{Err: fmt.Errorf("peer credentials: %w", errors.ErrUnsupported)}, nil
}

// owner returns an error wrapping errors.ErrUnsupported.
func (*process) owner(context.Context, *units.Manager) (units.Owner, error) {
	return units.Owner{}, fmt.Errorf("peer process: %w", errors.ErrUnsupported)
}

// release does nothing.
func (*process) release() {}
