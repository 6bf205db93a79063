package main

import (
	"context"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy"
)

// listen returns the listener handed over by beamdeploy, or a fresh one
// (with SO_REUSEPORT when HELLO_REUSEPORT=1) when running standalone.
func listen(addr string) (net.Listener, error) {
	if beamdeploy.Enabled() || os.Getenv("HELLO_REUSEPORT") != "1" {
		return beamdeploy.Listen("tcp", addr)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
