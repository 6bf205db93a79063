package beamdeploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [ServeOptions].
const (
	// DefaultIdleGrace is the default [ServeOptions.IdleGrace].
	DefaultIdleGrace = 500 * time.Millisecond
	// DefaultDrainTimeout is the default [ServeOptions.DrainTimeout]. It is
	// shorter than systemd's default stop timeout of 30 s, so that Serve
	// returns before systemd sends SIGKILL.
	DefaultDrainTimeout = 20 * time.Second
)

// ErrDrainTimeout means connections were still open when the drain timeout
// expired; [Serve] closed them.
var ErrDrainTimeout = errors.New("beamdeploy: drain timed out")

// ServeOptions tunes [Serve]. The zero value uses the defaults.
type ServeOptions struct {
	// IdleGrace is how long a connection must have been idle while draining
	// (kept alive with no request in flight, or accepted with no request yet)
	// before Serve closes it. Closing an idle connection at once races with a
	// client that is just sending a request on it; a request that arrives
	// within the grace is served and answered with "Connection: close".
	// Zero or negative means DefaultIdleGrace.
	IdleGrace time.Duration

	// DrainTimeout bounds the drain. When it expires Serve closes the
	// connections still open and returns an error wrapping ErrDrainTimeout.
	// Keep it below the unit's TimeoutStopSec. Zero or negative means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
}

func (o ServeOptions) withDefaults() ServeOptions {
	if o.IdleGrace <= 0 {
		o.IdleGrace = DefaultIdleGrace
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	return o
}

// Serve serves HTTP on ln with srv until ctx is done, then drains and returns
// nil once every connection is closed. Get ctx from
// signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt): Serve installs no
// signal handlers.
//
// Draining works with a listening socket shared with other processes that go
// on accepting: Serve sends STOPPING=1 (see [Stopping]), closes ln (close(2),
// never shutdown(2), so the socket stays open for the others), answers every
// further request with "Connection: close", lets requests in flight finish,
// and closes a connection only after it has been idle for
// [ServeOptions.IdleGrace]. It does not use [http.Server.Shutdown], which
// closes idle keep-alive connections at once and so loses requests a client is
// just sending on them. When [ServeOptions.DrainTimeout] expires Serve closes
// the remaining connections and returns an error wrapping [ErrDrainTimeout].
//
// If srv.Serve fails before ctx is done, Serve returns that error at once
// without draining. Serve replaces srv.Handler and srv.ConnState with wrappers
// that call the previous ones (a nil Handler means [http.DefaultServeMux]);
// do not change them, or use srv elsewhere, while Serve runs. srv cannot be
// served again afterwards. Hijacked connections are not tracked.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, opts ServeOptions) error {
	opts = opts.withDefaults()
	d := newDrainer(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	_ = Stopping() // best effort: systemd stops the unit whether or not it heard STOPPING=1
	d.startDraining()
	_ = ln.Close() // close, never shutdown(2): other processes still accept on this socket
	<-errc         // srv.Serve returns because we closed ln; that error is expected
	return d.wait(opts.IdleGrace, opts.DrainTimeout)
}

// drainer tracks an http.Server's connections and drains them.
type drainer struct {
	draining atomic.Bool
	changed  chan struct{} // a connection changed state; capacity 1

	mu         sync.Mutex // guards conns, drainStart
	conns      map[net.Conn]*connInfo
	drainStart time.Time
}

type connInfo struct {
	state   http.ConnState
	since   time.Time // when state was entered
	closing bool      // the drainer closed it
}

// newDrainer installs its handler and ConnState wrappers on srv.
func newDrainer(srv *http.Server) *drainer {
	d := &drainer{changed: make(chan struct{}, 1), conns: make(map[net.Conn]*connInfo)}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			// The server closes the connection after this response, and the
			// client knows not to reuse it: no race with its next request.
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
		if ci := d.conns[c]; ci != nil {
			ci.state, ci.since = s, time.Now()
		} else {
			d.conns[c] = &connInfo{state: s, since: time.Now()}
		}
	}
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *drainer) startDraining() {
	d.mu.Lock()
	d.drainStart = time.Now()
	d.mu.Unlock()
	d.draining.Store(true)
}

// wait closes connections as they turn idle until none is left or timeout
// expires.
func (d *drainer) wait(grace, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(min(max(grace/4, 5*time.Millisecond), 100*time.Millisecond))
	defer tick.Stop()
	for d.closeIdle(grace) > 0 {
		select {
		case <-d.changed:
		case <-tick.C:
		case <-deadline.C:
			if n := d.closeAll(); n > 0 {
				return fmt.Errorf("drain: closed %d connections still open after %s: %w", n, timeout, ErrDrainTimeout)
			}
			return nil
		}
	}
	return nil
}

// closeIdle closes the connections idle for grace since draining started and
// returns how many connections are still tracked.
func (d *drainer) closeIdle(grace time.Duration) int {
	now := time.Now()
	var idle []net.Conn
	d.mu.Lock()
	for c, ci := range d.conns {
		if ci.closing || (ci.state != http.StateIdle && ci.state != http.StateNew) {
			continue
		}
		if now.Sub(later(ci.since, d.drainStart)) >= grace {
			ci.closing = true
			idle = append(idle, c)
		}
	}
	n := len(d.conns)
	d.mu.Unlock()
	for _, c := range idle {
		_ = c.Close() // the server sees the closed conn and reports StateClosed
	}
	return n
}

// closeAll closes every tracked connection and returns how many there were.
func (d *drainer) closeAll() int {
	d.mu.Lock()
	conns := make([]net.Conn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.Close() // forced: the drain timed out
	}
	return len(conns)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
