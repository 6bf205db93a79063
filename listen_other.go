//go:build !linux

package beamdeploy

import (
	"errors"
	"fmt"
)

// fdListeners is only implemented on Linux.
func fdListeners(names []string) ([]NamedListener, error) {
	return nil, fmt.Errorf("use %d inherited fds: %w", len(names), errors.ErrUnsupported)
}
