//go:build !linux

package parent

import (
	"errors"
	"fmt"
	"net"
)

// peerOf cannot identify peers on this platform: everything is refused.
func peerOf(net.Conn) peer {
	return peer{Err: fmt.Errorf("peer credentials: %w", errors.ErrUnsupported)}
}
