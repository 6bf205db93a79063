// Package gate admits connections to a unix socket that every local user
// may connect to (the parent's control socket and fd broker), so that a
// flood of connections from unprivileged users cannot starve anyone else.
//
// A [Listener] accepts in a goroutine of its own and decides each
// connection before its server sees it:
//
//   - The socket's listen backlog is short ([Limits.Backlog]): everyone
//     waits in that one kernel queue, so its length bounds how long a
//     flood delays root.
//   - The kernel's record of the peer (SO_PEERCRED, SO_PEERGROUPS) is read
//     at once. A privileged peer ([Config.Privileged]: root, deployers) is
//     exempt from every limit.
//   - An unprivileged peer is counted against its uid and against all
//     unprivileged peers ([Limits.PerUID], [Limits.Total]) from accept to
//     close; beyond either limit it is refused at once.
//   - Every peer is then identified by [Config.Authorize] (which may cost a
//     D-Bus round trip), once per connection. At most [Limits.Lookups]
//     identifications of unprivileged peers run at once, at most
//     [Limits.LookupsPerUID] of one uid; the others wait, and one not done
//     within [Limits.LookupTimeout] is refused.
//   - A refused connection gets a short answer ([Config.Refuse]) and is
//     closed at once; an admitted one is returned by Accept as a [*Conn]
//     carrying the verdict.
//
// So an unprivileged user holds at most PerUID connections (only while
// they wait to be identified, if the user may do nothing) and at most
// LookupsPerUID identifications, whatever it opens.
package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reasons for refusing a connection, passed to [Config.Refuse].
var (
	// ErrRefused means Authorize refused the peer, or the peer's
	// credentials could not be read.
	ErrRefused = errors.New("gate: permission denied")
	// ErrTooMany means the peer's uid, or all unprivileged peers together,
	// had as many connections as the limits allow.
	ErrTooMany = errors.New("gate: too many connections")
	// ErrBusy means the peer could not be identified within
	// Limits.LookupTimeout.
	ErrBusy = errors.New("gate: peer not identified in time")
)

// Defaults for the zero fields of [Limits]. A real instance of an app
// holds a few connections to its parent (the hot-upgrade poll, the
// cutover wait, a handoff call; blue, green and a hot successor share a
// uid), far below PerUID.
const (
	// DefaultPerUID bounds the connections of one unprivileged uid, open
	// or waiting to be identified.
	DefaultPerUID = 64
	// DefaultTotal bounds the connections of all unprivileged peers.
	DefaultTotal = 512
	// DefaultLookups bounds the identifications of unprivileged peers
	// running at once (each may be a D-Bus call).
	DefaultLookups = 32
	// DefaultLookupsPerUID bounds those of one uid, so that one user
	// cannot take every lookup.
	DefaultLookupsPerUID = 4
	// DefaultLookupTimeout bounds the identification of one peer, the
	// wait for a lookup slot included. Generous: systemd has taken more than
	// 2 s to answer on a busy machine, and a refused instance fails.
	DefaultLookupTimeout = 10 * time.Second
	// DefaultBacklog bounds the connections the kernel queues before the
	// gate accepts them. Everyone waits in that one queue, so a short one
	// bounds how long root waits behind a flood (128 connections take the
	// gate milliseconds); once it is full, connect(2) fails with EAGAIN
	// at once and the client retries (control.Client does).
	DefaultBacklog = 128
)

// refuseTimeout bounds writing the answer to a refused connection. The
// answer is small and the socket fresh, so it does not block; the
// deadline is there so that it can never hold the accept loop.
const refuseTimeout = 100 * time.Millisecond

// acceptBackoffMax bounds the pause after a failed accept (out of
// descriptors): the listener retries rather than give up.
const acceptBackoffMax = time.Second

// Limits bound unprivileged peers. Zero or negative fields mean the
// defaults.
type Limits struct {
	PerUID        int
	Total         int
	Lookups       int
	LookupsPerUID int
	LookupTimeout time.Duration
	Backlog       int // of the socket, for all peers
}

func (l Limits) withDefaults() Limits {
	if l.PerUID <= 0 {
		l.PerUID = DefaultPerUID
	}
	if l.Total <= 0 {
		l.Total = DefaultTotal
	}
	if l.Lookups <= 0 {
		l.Lookups = DefaultLookups
	}
	if l.LookupsPerUID <= 0 {
		l.LookupsPerUID = DefaultLookupsPerUID
	}
	if l.LookupTimeout <= 0 {
		l.LookupTimeout = DefaultLookupTimeout
	}
	if l.Backlog <= 0 {
		l.Backlog = DefaultBacklog
	}
	return l
}

// Cred is the kernel's record of a peer, taken when it connected.
type Cred struct {
	PID    int
	UID    int
	GID    int
	Groups []int // supplementary groups
}

// Config says whom a Listener admits. V is the verdict Authorize returns
// and admitted connections carry.
type Config[V any] struct {
	Limits Limits
	// Privileged reports whether a peer is exempt from the limits, from
	// its credentials alone; nil means nobody is.
	Privileged func(Cred) bool
	// Reserved reports whether an unprivileged peer's connections count
	// against its uid's limit only, not against the total: the uids the
	// app's own instances run as, so that other users together filling
	// the total cannot lock the instances out. nil means nobody's.
	Reserved func(Cred) bool
	// Authorize identifies the peer of c and decides whether it may use
	// the socket. It is called once per connection, in a goroutine of its
	// own, with a ctx that ends after Limits.LookupTimeout or when the
	// listener is closed; it must return soon after ctx ends.
	Authorize func(ctx context.Context, c *net.UnixConn) (V, bool)
	// Refuse, when set, answers a refused connection just before the gate
	// closes it. err wraps ErrRefused (v is Authorize's verdict, or the
	// zero V when the credentials could not be read), ErrTooMany or
	// ErrBusy (v is the zero V). The write deadline of c is set; Refuse
	// must not block otherwise.
	Refuse func(c *net.UnixConn, cred Cred, v V, err error)
}

// Stats count what a Listener did.
type Stats struct {
	Accepted int64 // connections accepted from the socket
	Admitted int64 // returned by Accept
	Refused  int64 // refused by Authorize (ErrRefused)
	TooMany  int64 // refused by the connection limits (ErrTooMany)
	Busy     int64 // not identified in time (ErrBusy)
	Open     int   // unprivileged connections open or being identified now
}

// Listener admits connections of a unix listener (see the package
// comment). It implements net.Listener; its Accept returns *Conn[V].
type Listener[V any] struct {
	ln       *net.UnixListener
	cfg      Config[V]
	lim      Limits
	ctx      context.Context // ends at Close; the parent of lookup contexts
	cancel   context.CancelFunc
	ready    chan *Conn[V] // admitted connections, to Accept
	loopDone chan struct{} // closed when the accept loop ended
	err      error         // why the accept loop ended; set before loopDone closes
	once     sync.Once

	lookups chan struct{} // one token per running lookup of an unprivileged peer

	mu    sync.Mutex // guards uids, total
	uids  map[int]*bucket
	total int

	accepted, admitted, refused, tooMany, busy atomic.Int64
}

// bucket is what one unprivileged uid holds.
type bucket struct {
	open     int           // connections open or being identified
	lookups  chan struct{} // one token per running lookup
	reserved bool          // its connections do not count against the total
}

// Listen sets the listen backlog of ln (Limits.Backlog) and starts
// admitting its connections. Closing the Listener closes ln.
func Listen[V any](ln *net.UnixListener, cfg Config[V]) (*Listener[V], error) {
	lim := cfg.Limits.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener[V]{ln: ln, cfg: cfg, lim: lim, ctx: ctx, cancel: cancel,
		ready: make(chan *Conn[V]), loopDone: make(chan struct{}),
		lookups: make(chan struct{}, lim.Lookups), uids: map[int]*bucket{}}
	if err := setBacklog(ln, lim.Backlog); err != nil {
		cancel()
		return nil, err
	}
	go l.loop()
	return l, nil
}

// setBacklog sets the listen backlog of ln (listen(2) again on a socket
// that listens changes its backlog).
func setBacklog(ln *net.UnixListener, n int) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("set the listen backlog of %s: %w", ln.Addr(), err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), n) }); err != nil {
		return fmt.Errorf("set the listen backlog of %s: %w", ln.Addr(), err)
	}
	if lerr != nil {
		return fmt.Errorf("set the listen backlog of %s: %w", ln.Addr(), lerr)
	}
	return nil
}

// Accept returns the next admitted connection, a *Conn[V].
func (l *Listener[V]) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn returns the next admitted connection. After Close, or once
// the socket failed, it returns an error (net.ErrClosed after Close).
func (l *Listener[V]) AcceptConn() (*Conn[V], error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.loopDone:
		return nil, l.err
	}
}

// Close closes the socket and every connection not yet returned by Accept.
// Connections already returned stay open.
func (l *Listener[V]) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.ln.Close()
		<-l.loopDone
	})
	return err
}

// Addr returns the socket's address.
func (l *Listener[V]) Addr() net.Addr { return l.ln.Addr() }

// Stats returns what the listener did so far.
func (l *Listener[V]) Stats() Stats {
	l.mu.Lock()
	open := l.total
	l.mu.Unlock()
	return Stats{Accepted: l.accepted.Load(), Admitted: l.admitted.Load(), Refused: l.refused.Load(),
		TooMany: l.tooMany.Load(), Busy: l.busy.Load(), Open: open}
}

func (l *Listener[V]) loop() {
	defer close(l.loopDone)
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			if l.ctx.Err() != nil {
				l.err = net.ErrClosed
				return
			}
			if !temporary(err) {
				l.err = fmt.Errorf("accept on %s: %w", l.ln.Addr(), err)
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
			}
			continue
		}
		backoff = 0
		l.accepted.Add(1)
		l.admit(c, time.Now())
	}
}

// temporary reports whether accept may succeed again later: the process
// or the system is out of descriptors or memory for the moment.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admit decides what happens to c, without blocking the accept loop.
func (l *Listener[V]) admit(c *net.UnixConn, at time.Time) {
	var zero V
	cred, err := PeerCred(c)
	if err != nil {
		l.refuse(c, Cred{}, zero, fmt.Errorf("%w: %w", ErrRefused, err))
		return
	}
	if l.cfg.Privileged != nil && l.cfg.Privileged(cred) {
		go l.decide(c, cred, nil, at)
		return
	}
	b := l.take(cred.UID, l.cfg.Reserved != nil && l.cfg.Reserved(cred))
	if b == nil {
		l.refuse(c, cred, zero, ErrTooMany)
		return
	}
	go l.decide(c, cred, b, at)
}

// decide identifies the peer of c and hands c to Accept or refuses it.
// b is the peer's bucket, nil for a privileged peer.
func (l *Listener[V]) decide(c *net.UnixConn, cred Cred, b *bucket, at time.Time) {
	var zero V
	release := func() {}
	if b != nil {
		release = sync.OnceFunc(func() { l.put(cred.UID, b) })
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.lim.LookupTimeout)
	defer cancel()
	v, ok, err := l.lookup(ctx, c, b)
	if err != nil {
		l.refuse(c, cred, zero, err)
		release()
		return
	}
	if !ok {
		err = ErrRefused
		if ctx.Err() != nil && l.ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
		}
		l.refuse(c, cred, v, err)
		release()
		return
	}
	gc := &Conn[V]{UnixConn: c, Cred: cred, Verdict: v, Accepted: at, Admitted: time.Now(), release: release}
	select {
	case l.ready <- gc:
		l.admitted.Add(1)
	case <-l.ctx.Done():
		_ = gc.Close() // the listener is closed: nobody will serve it
	}
}

// lookup runs Authorize, within the lookup limits for an unprivileged
// peer (b != nil).
func (l *Listener[V]) lookup(ctx context.Context, c *net.UnixConn, b *bucket) (V, bool, error) {
	var zero V
	if b != nil {
		select {
		case b.lookups <- struct{}{}:
		case <-ctx.Done():
			return zero, false, fmt.Errorf("%w: waiting for a lookup of this user: %w", ErrBusy, ctx.Err())
		}
		defer func() { <-b.lookups }()
		select {
		case l.lookups <- struct{}{}:
		case <-ctx.Done():
			return zero, false, fmt.Errorf("%w: waiting for a lookup: %w", ErrBusy, ctx.Err())
		}
		defer func() { <-l.lookups }()
	}
	v, ok := l.cfg.Authorize(ctx, c)
	return v, ok, nil
}

// take counts a new connection of uid; nil if that exceeds a limit. A
// reserved uid's connections do not count against the total.
func (l *Listener[V]) take(uid int, reserved bool) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.uids[uid]
	if (!reserved && l.total >= l.lim.Total) || b != nil && b.open >= l.lim.PerUID {
		return nil
	}
	if b == nil {
		b = &bucket{lookups: make(chan struct{}, l.lim.LookupsPerUID), reserved: reserved}
		l.uids[uid] = b
	}
	b.open++
	if !b.reserved {
		l.total++
	}
	return b
}

// put uncounts a connection of uid.
func (l *Listener[V]) put(uid int, b *bucket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b.open--
	if !b.reserved {
		l.total--
	}
	if b.open == 0 {
		delete(l.uids, uid) // no connection of uid holds b's tokens any more
	}
}

// refuse answers c (Config.Refuse) and closes it.
func (l *Listener[V]) refuse(c *net.UnixConn, cred Cred, v V, err error) {
	switch {
	case errors.Is(err, ErrTooMany):
		l.tooMany.Add(1)
	case errors.Is(err, ErrBusy):
		l.busy.Add(1)
	default:
		l.refused.Add(1)
	}
	if l.cfg.Refuse != nil {
		_ = c.SetWriteDeadline(time.Now().Add(refuseTimeout)) // cannot fail on an open socket
		l.cfg.Refuse(c, cred, v, err)
	}
	_ = c.Close() // refused: nothing more to say
}

// Conn is an admitted connection: the peer's credentials and the verdict
// of Config.Authorize. Closing it frees its place in the limits.
type Conn[V any] struct {
	*net.UnixConn
	Cred     Cred
	Verdict  V
	Accepted time.Time // when the gate accepted it from the socket
	Admitted time.Time // when Authorize admitted it
	release  func()
}

// Close closes the connection and frees its place in the limits.
func (c *Conn[V]) Close() error {
	err := c.UnixConn.Close()
	c.release()
	return err
}
