package sockact

import (
	"context"
	"errors"
	"net"
)

// Serve is the fd broker: it answers every connection on ln with fds and
// closes it. authorize, when non-nil, vets each peer first; a refused peer
// gets the error's text instead of descriptors (Fetch returns it, wrapped
// in ErrRefused). Serve returns when ctx ends or ln fails; it closes ln.
func Serve(ctx context.Context, ln *net.UnixListener, fds []FD, authorize func(*net.UnixConn) error) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // unblocks Accept
	defer stop()
	defer ln.Close()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			if authorize != nil {
				if err := authorize(conn); err != nil {
					_ = refuse(conn, err) // a peer that went away needs no reason
					return
				}
			}
			_ = Send(conn, fds) // the instance reports its own failure to start
		}()
	}
}
