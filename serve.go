package beamdeploy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [ServeOptions].
const (
	// DefaultIdleGrace was the default [ServeOptions.IdleGrace].
	//
	// Deprecated: Serve no longer closes idle connections before the drain
	// deadline.
	DefaultIdleGrace = 500 * time.Millisecond
	// DefaultDrainTimeout is the default [ServeOptions.DrainTimeout] of an
	// app that is not told its stop timeout (EnvDrainTimeout). It is
	// shorter than systemd's default stop timeout of 30 s, so that Serve
	// returns before systemd sends SIGKILL.
	DefaultDrainTimeout = 20 * time.Second
	// MaxDrainMargin caps the part of the stop timeout that Serve leaves
	// for what follows the drain; see [ServeOptions.DrainTimeout].
	MaxDrainMargin = 5 * time.Second
)

// ErrDrainTimeout means requests were still in flight when the drain
// timeout expired; [Serve] closed their connections.
var ErrDrainTimeout = errors.New("beamdeploy: drain timed out")

// ServeOptions tunes [Serve]. The zero value uses the defaults.
type ServeOptions struct {
	// IdleGrace is ignored.
	//
	// Deprecated: Serve no longer closes a connection because it was idle
	// for a while: that races with a client reusing it in the same
	// instant. Idle connections stay open until the client uses them
	// (the answer says "Connection: close") or closes them, or until the
	// drain deadline.
	IdleGrace time.Duration

	// DrainTimeout bounds the drain. When it expires Serve closes the
	// connections still open; if requests were in flight on them it
	// returns an error wrapping ErrDrainTimeout.
	//
	// Zero or negative means: the stop timeout that beamdeploy gives its
	// instances in EnvDrainTimeout (the unit's TimeoutStopSec, the app's
	// drain_timeout) less a quarter of it, at most MaxDrainMargin, so that
	// Serve closes what is left and the app can exit before systemd sends
	// SIGKILL (30 s gives 25 s, 10 s gives 7.5 s); DefaultDrainTimeout
	// when that variable is unset or invalid.
	DrainTimeout time.Duration
}

func (o ServeOptions) withDefaults() ServeOptions {
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
		if stop, err := time.ParseDuration(os.Getenv(EnvDrainTimeout)); err == nil && stop > 0 {
			o.DrainTimeout = stop - min(stop/4, MaxDrainMargin)
		}
	}
	return o
}

// Serve serves HTTP on ln with srv until ctx is done, then drains and returns
// nil once every connection is closed. Get ctx from
// signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt): Serve installs no
// signal handlers.
//
// Draining works with a listening socket shared with other processes that go
// on accepting, and loses no request that reaches this process while there
// is time left: Serve sends STOPPING=1 (see [Stopping]), closes ln (close(2),
// never shutdown(2), so the socket stays open for the others), lets requests
// in flight finish, and answers every further request with
// "Connection: close", after which the server closes that connection. It
// never closes a keep-alive connection that is idle: its client may be
// sending the next request on it in that very instant, and a POST that
// meets a closed connection is lost (clients do not retry it). An idle
// connection ends when its client uses it (and is told to close it) or
// closes it. Only when [ServeOptions.DrainTimeout] expires does Serve close
// the connections still open; if requests were in flight on them, it
// returns an error wrapping [ErrDrainTimeout]. For the same reason Serve
// does not use [http.Server.Shutdown] or [http.Server.SetKeepAlivesEnabled],
// which close idle connections at once; Shutdown also drops requests that
// arrive on them afterwards.
//
// If srv serves unencrypted HTTP/2 (srv.Protocols includes
// UnencryptedHTTP2, h2c), Serve sends each HTTP/2 connection a GOAWAY when
// the drain starts: its client opens no new streams on it (it sends them to
// the other instance instead), the streams in flight finish, and the
// connection closes. For that Serve hands srv's HTTP/2 connections to a
// second server of its own (through srv.TLSNextProto, which must be nil;
// otherwise HTTP/2 connections learn of the drain from the
// "Connection: close" of their next response, which net/http turns into a
// GOAWAY).
//
// If srv.Serve fails before ctx is done, Serve returns that error at once
// without draining. Serve replaces srv.Handler and srv.ConnState with wrappers
// that call the previous ones (a nil Handler means [http.DefaultServeMux]);
// do not change them, or use srv elsewhere, while Serve runs. srv cannot be
// served again afterwards. Hijacked connections are not tracked.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, opts ServeOptions) error {
	opts = opts.withDefaults()
	d := newDrainer(srv)
	h2 := serveHTTP2Apart(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// Draining before STOPPING=1: whoever hears STOPPING=1 (systemd, a
	// test) and then uses an idle connection gets Connection: close.
	d.startDraining()
	draining.Store(true) // a successor that did not claim the unit will not now (Ready)
	_ = Stopping()       // best effort: systemd stops the unit whether or not it heard STOPPING=1
	_ = ln.Close()       // close, never shutdown(2): other processes still accept on this socket
	<-errc               // srv.Serve returns because we closed ln; that error is expected
	if h2 != nil {
		// GOAWAY to every HTTP/2 connection. h2 holds no listener and no
		// HTTP/1 connection, so this returns at once.
		_ = h2.Shutdown(context.Background())
	}
	return d.wait(opts.DrainTimeout)
}

// unencryptedHTTP2 is the srv.TLSNextProto key under which net/http hands
// over the connections that start with the HTTP/2 preface (h2c). net/http
// does not export it.
const unencryptedHTTP2 = "unencrypted_http2"

// serveHTTP2Apart has srv's HTTP/2 connections served by a second server,
// configured like srv, and returns that server: its Shutdown sends them all
// GOAWAY and leaves srv's HTTP/1 connections alone. It returns nil, and
// changes nothing, when srv does not serve unencrypted HTTP/2, brings its
// own HTTP/2 (TLSNextProto is set), or net/http no longer hands h2c
// connections over this way.
func serveHTTP2Apart(srv *http.Server) *http.Server {
	if srv.Protocols == nil || !srv.Protocols.UnencryptedHTTP2() || srv.TLSNextProto != nil {
		return nil
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Server{
		ConnState: srv.ConnState, ErrorLog: srv.ErrorLog, MaxHeaderBytes: srv.MaxHeaderBytes, HTTP2: srv.HTTP2,
		ReadTimeout: srv.ReadTimeout, WriteTimeout: srv.WriteTimeout, IdleTimeout: srv.IdleTimeout,
		Protocols: &p,
	}
	_ = h2.Serve(noListener{}) // only sets up h2's HTTP/2 (h2.TLSNextProto), then returns the Accept error
	h2c, tlsH2 := h2.TLSNextProto[unencryptedHTTP2], h2.TLSNextProto["h2"]
	if h2c == nil || tlsH2 == nil {
		return nil
	}
	// Both keys: with an "h2" entry srv does not set up HTTP/2 itself,
	// which would replace these.
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		unencryptedHTTP2: func(_ *http.Server, c *tls.Conn, h http.Handler) { h2c(h2, c, h) },
		"h2":             func(_ *http.Server, c *tls.Conn, h http.Handler) { tlsH2(h2, c, h) },
	}
	return h2
}

// noListener is a listener whose Accept fails at once.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{} }

// drainer tracks an http.Server's connections and drains them.
type drainer struct {
	draining atomic.Bool
	changed  chan struct{} // a connection changed state; capacity 1

	mu    sync.Mutex // guards conns
	conns map[net.Conn]http.ConnState
}

// newDrainer installs its handler and ConnState wrappers on srv.
func newDrainer(srv *http.Server) *drainer {
	d := &drainer{changed: make(chan struct{}, 1), conns: make(map[net.Conn]http.ConnState)}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			// HTTP/1: the server closes the connection after this
			// response, and the client knows not to reuse it, so there
			// is no race with its next request. HTTP/2: net/http sends
			// GOAWAY instead.
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
	hook := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.track(c, s)
		if hook != nil {
			hook(c, s)
		}
	}
	return d
}

func (d *drainer) track(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(d.conns, c)
	default:
		d.conns[c] = s
	}
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *drainer) startDraining() { d.draining.Store(true) }

// wait returns once no connection is left, or closes those left when
// timeout expires.
func (d *drainer) wait(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for d.open() > 0 {
		select {
		case <-d.changed:
		case <-deadline.C:
			if n := d.closeAll(); n > 0 {
				return fmt.Errorf("drain: cut %d requests still in flight after %s: %w", n, timeout, ErrDrainTimeout)
			}
			return nil
		}
	}
	return nil
}

func (d *drainer) open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// closeAll closes every tracked connection and returns how many of them
// had a request in flight.
func (d *drainer) closeAll() int {
	d.mu.Lock()
	conns := make([]net.Conn, 0, len(d.conns))
	active := 0
	for c, s := range d.conns {
		conns = append(conns, c)
		if s == http.StateActive {
			active++
		}
	}
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.Close() // forced: the drain deadline passed
	}
	return active
}
