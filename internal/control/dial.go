package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Client-side bounds of the control connection.
const (
	// IdleConnTimeout closes the client's idle keep-alive connections
	// well before the parent closes them (after 30 s), so that a request
	// never goes out on a connection the parent is closing.
	IdleConnTimeout = 10 * time.Second
	// backlogWait bounds how long dial retries while the socket's listen
	// backlog is full (EAGAIN): the parent accepts and refuses a flood of
	// connections quickly, so room comes back soon.
	backlogWait = 10 * time.Second
	// backlogRetry is the pause between those attempts.
	backlogRetry = 5 * time.Millisecond
)

// dialUnix connects to the socket at path, retrying while its backlog is
// full.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	give := time.Now().Add(backlogWait)
	for {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return newAnsweredConn(c), nil
		}
		if !errors.Is(err, syscall.EAGAIN) {
			return nil, err
		}
		if time.Now().After(give) {
			return nil, fmt.Errorf("the backlog of %s stayed full for %s: the parent is overloaded or flooded with connections; retry: %w", path, backlogWait, err)
		}
		select {
		case <-time.After(backlogRetry):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// answeredConn lets the HTTP transport read the parent's answer to a
// connection it refused at accept (permission denied, too many
// connections): a short answer written before the request was read,
// then the connection is closed.
//
// Reads wait for the first write: the transport reads a connection from
// the moment it is dialed, and would discard an answer that arrives
// before its request went out as unsolicited. Writes that fail because
// the parent closed its end (EPIPE, ECONNRESET) pretend to succeed: the
// transport then reads the answer, or EOF if there is none, rather than
// give up on the write error while the answer waits to be read (an
// upload's body above all).
type answeredConn struct {
	net.Conn
	once    sync.Once
	written chan struct{} // closed at the first write
}

func newAnsweredConn(c net.Conn) *answeredConn {
	return &answeredConn{Conn: c, written: make(chan struct{})}
}

func (c *answeredConn) Read(p []byte) (int, error) {
	<-c.written
	return c.Conn.Read(p)
}

func (c *answeredConn) Write(p []byte) (int, error) {
	defer c.once.Do(func() { close(c.written) })
	n, err := c.Conn.Write(p)
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return len(p), nil
	}
	return n, err
}

// Close also ends a Read waiting for the first write.
func (c *answeredConn) Close() error {
	c.once.Do(func() { close(c.written) })
	return c.Conn.Close()
}
