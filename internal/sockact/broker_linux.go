package sockact

import (
	"context"
	"errors"
	"net"
	"time"
)

// sendTimeout bounds sending the descriptors on one connection: a small
// message on a fresh socket, which does not block.
const sendTimeout = time.Second

// Serve is the fd broker: it sends fds on every connection ln accepts and
// closes it. ln decides who gets them: the parent passes a gate that
// admits only the app's instances. Accepted connections must be
// *net.UnixConn or embed one. Serve returns when ctx ends or ln fails; it
// closes ln.
func Serve(ctx context.Context, ln net.Listener, fds []FD) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // unblocks Accept
	defer stop()
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			mc, ok := conn.(MsgConn)
			if !ok {
				return // not a unix socket: nothing can carry descriptors
			}
			_ = conn.SetWriteDeadline(time.Now().Add(sendTimeout)) // cannot fail on an open socket
			_ = Send(mc, fds)                                      // the instance reports its own failure to start
		}()
	}
}
