//go:build !linux

package gate

import (
	"errors"
	"fmt"
	"net"
)

// PeerCred returns an error wrapping errors.ErrUnsupported: peer
// credentials are only read on Linux, so every connection is refused.
func PeerCred(*net.UnixConn) (Cred, error) {
	return Cred{}, fmt.Errorf("peer credentials: %w", errors.ErrUnsupported)
}
