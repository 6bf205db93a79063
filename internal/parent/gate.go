package parent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
)

// Both sockets are open to every local user (mode 0666). Each goes
// through a gate (internal/gate, with its default limits): root and
// members of config.DeployGroup are never limited; every other peer counts
// against its uid (at most gate.DefaultPerUID connections) and against
// all of them (gate.DefaultTotal), and is identified by the authority
// once per connection, at most gate.DefaultLookupsPerUID at a time per uid
// and gate.DefaultLookups in all, within gate.DefaultLookupTimeout. A
// peer that may do nothing is answered and disconnected at once.
const (
	// refusalLogEvery spaces the log lines about refused connections on
	// each socket: the first is logged at once, later ones are counted
	// into the next line, so that a flood does not flood the journal.
	refusalLogEvery = 10 * time.Second
)

// controlGate admits the control socket's connections: deployers and the
// app's instances. A refused peer gets a canned HTTP answer.
func (d *daemon) controlGate(ln *net.UnixListener) (*gate.Listener[verdict], error) {
	logged := &refusalLog{log: d.log, socket: "control"}
	return gate.Listen(ln, gate.Config[verdict]{
		Privileged: privileged,
		Reserved:   func(c gate.Cred) bool { return d.auth.reserved != nil && d.auth.reserved(c.UID) },
		Authorize: func(ctx context.Context, c *net.UnixConn) (verdict, bool) {
			p, a := d.auth.authorize(ctx, c)
			return verdict{p, a}, a.deploy || a.instance
		},
		Refuse: refuseControl(d.opts.App, logged),
	})
}

// refuseControl answers a refused control connection with a canned HTTP
// error, which the CLI prints.
func refuseControl(app string, logged *refusalLog) func(*net.UnixConn, gate.Cred, verdict, error) {
	busy := &busyAnswers{app: app}
	return func(c *net.UnixConn, cred gate.Cred, v verdict, err error) {
		logged.note(cred, v, err)
		if errors.Is(err, gate.ErrTooMany) {
			_, _ = c.Write(busy.get(cred.UID)) // a peer that went away needs no answer
			return
		}
		awaitRequestHead(c)
		status, body := refusal(app, cred, v, err)
		_, _ = c.Write(canned(status, body)) // as above
	}
}

// busyAnswers keeps the answers to connections over the gate's limits, per
// uid: a flood is refused thousands of times a second, and building each
// answer anew made most of the parent's garbage during one, so most of its
// garbage collections, whose pauses stall every request.
type busyAnswers struct {
	app   string
	mu    sync.Mutex // guards byUID
	byUID map[int][]byte
}

// busyAnswersMax bounds busyAnswers: it starts afresh when full.
const busyAnswersMax = 16

func (b *busyAnswers) get(uid int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, ok := b.byUID[uid]; ok {
		return a
	}
	if b.byUID == nil || len(b.byUID) >= busyAnswersMax {
		b.byUID = map[int][]byte{}
	}
	a := canned(refusal(b.app, gate.Cred{UID: uid}, verdict{}, gate.ErrTooMany))
	b.byUID[uid] = a
	return a
}

// Before a refused peer is answered, the parent reads what it sends of its
// request for a moment: an HTTP client that is answered before it has
// written its request sees a broken pipe, not the answer (curl, Python,
// Go's net/http). The peer holds its place in the gate's limits meanwhile,
// so a flood cannot make these reads pile up; a peer over its limits is
// answered at once.
const (
	requestHeadWait = 250 * time.Millisecond
	requestHeadMax  = 64 << 10
)

// awaitRequestHead reads from c until the end of an HTTP request head, at
// most requestHeadMax bytes, for at most requestHeadWait.
func awaitRequestHead(c *net.UnixConn) {
	_ = c.SetReadDeadline(time.Now().Add(requestHeadWait)) // cannot fail on an open socket
	buf := make([]byte, 4096)
	var tail []byte // the last bytes read, to find the head's end across reads
	for read := 0; read < requestHeadMax; {
		n, err := c.Read(buf)
		read += n
		tail = append(tail, buf[:n]...)
		if err != nil || bytes.Contains(tail, []byte("\r\n\r\n")) {
			return
		}
		tail = tail[max(0, len(tail)-3):]
	}
}

// brokerGate admits the fd broker's connections: the app's instances (and
// root, for debugging). A refused peer is told why, without descriptors,
// and disconnected; the exec shim reports it.
func (d *daemon) brokerGate(ln *net.UnixListener) (*gate.Listener[verdict], error) {
	logged := &refusalLog{log: d.log, socket: "broker"}
	return gate.Listen(ln, gate.Config[verdict]{
		Privileged: privileged,
		Reserved:   func(c gate.Cred) bool { return d.auth.reserved != nil && d.auth.reserved(c.UID) },
		Authorize: func(ctx context.Context, c *net.UnixConn) (verdict, bool) {
			p, a := d.auth.authorize(ctx, c)
			return verdict{p, a}, a.instance || (p.Err == nil && p.UID == 0)
		},
		Refuse: func(c *net.UnixConn, cred gate.Cred, v verdict, err error) {
			logged.note(cred, v, err)
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))      // a small message on a fresh socket
			_ = sockact.Refuse(c, brokerRefusal(d.opts.App, v, err)) // a peer that went away needs no reason
		},
	})
}

// brokerRefusal says why a peer gets no listeners.
func brokerRefusal(app string, v verdict, err error) error {
	if err != nil {
		return fmt.Errorf("refused by the parent of %s: %w", app, err)
	}
	return fmt.Errorf("permission denied: %s is not an instance of %s: only its instance units get its listening sockets", v.peer, app)
}

// privileged exempts root and deployers from the gate's limits, from the
// kernel's credentials alone.
func privileged(c gate.Cred) bool {
	return isDeployer(c.UID, append([]int{c.GID}, c.Groups...))
}

// isDeployer reports whether a process with uid and groups (primary and
// supplementary) may deploy: root or a member of config.DeployGroup.
func isDeployer(uid int, groups []int) bool {
	if uid == 0 {
		return true
	}
	gid, ok := deployGID()
	return ok && slices.Contains(groups, gid)
}

// groupFile is where the gid of config.DeployGroup comes from (the binary is
// built without cgo, so os/user reads it and nothing else).
const groupFile = "/etc/group"

// deployGroup caches the gid of config.DeployGroup for as long as groupFile does
// not change: the gate asks for every connection of a peer other than
// root.
var deployGroup struct {
	mu   sync.Mutex // guards file, gid, ok
	file os.FileInfo
	gid  int
	ok   bool // the group exists
}

func deployGID() (int, bool) {
	fi, err := os.Stat(groupFile)
	deployGroup.mu.Lock()
	defer deployGroup.mu.Unlock()
	if err != nil || deployGroup.file == nil || !os.SameFile(fi, deployGroup.file) ||
		!fi.ModTime().Equal(deployGroup.file.ModTime()) || fi.Size() != deployGroup.file.Size() {
		deployGroup.file, deployGroup.ok = fi, false
		if err != nil {
			deployGroup.file = nil // look again next time
		}
		if g, err := user.LookupGroup(config.DeployGroup); err == nil {
			deployGroup.gid, err = strconv.Atoi(g.Gid)
			deployGroup.ok = err == nil
		}
	}
	return deployGroup.gid, deployGroup.ok
}

// connContext hands the gate's verdict on a control connection to its
// requests (peerFrom): the peer is identified once per connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	gc, ok := c.(*gate.Conn[verdict])
	if !ok {
		return context.WithValue(ctx, peerKey{}, verdict{peer: peer{Err: errors.New("connection did not pass the gate")}})
	}
	ctx = context.WithValue(ctx, connTimesKey{}, &connTimes{accepted: gc.Accepted, admitted: gc.Admitted})
	return context.WithValue(ctx, peerKey{}, gc.Verdict)
}

// refusal is the answer to a control connection the gate refused.
func refusal(app string, cred gate.Cred, v verdict, err error) (int, *control.Error) {
	who := fmt.Sprintf("uid %d (pid %d)", cred.UID, cred.PID)
	switch {
	case errors.Is(err, gate.ErrTooMany): // the same answer for every process of the uid (busyAnswers)
		return http.StatusServiceUnavailable, errorBody(control.CodeBusy, fmt.Sprintf(
			"too many connections: uid %d may have at most %d connections to the parent of %s at a time, all users other than root and the %s group %d together; close some and retry",
			cred.UID, gate.DefaultPerUID, app, config.DeployGroup, gate.DefaultTotal))
	case errors.Is(err, gate.ErrBusy):
		return http.StatusServiceUnavailable, errorBody(control.CodeBusy, fmt.Sprintf(
			"the parent of %s could not identify %s within %s: it is busy; retry", app, who, gate.DefaultLookupTimeout))
	}
	p := v.peer
	if p.PID == 0 && p.Err == nil {
		p.Err = err // the gate could not even read the peer's credentials
	}
	return http.StatusForbidden, errorBody(control.CodePermissionDenied, deniedMessage(p, "use the control API", app))
}

// canned is a complete HTTP response with e, for a connection whose
// request was never read; the caller closes the connection after it. (The
// gate set a write deadline: writing it does not block.)
func canned(status int, e *control.Error) []byte {
	body, _ := json.Marshal(e) // plain strings
	body = append(body, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	return append([]byte(head), body...)
}

// refusalLog logs the refused connections of one socket, at most one line
// per refusalLogEvery.
type refusalLog struct {
	log    *slog.Logger
	socket string
	mu     sync.Mutex // guards last, quiet
	last   time.Time
	quiet  int // refusals not logged since last
}

func (r *refusalLog) note(cred gate.Cred, v verdict, err error) {
	r.mu.Lock()
	if !r.last.IsZero() && time.Since(r.last) < refusalLogEvery {
		r.quiet++
		r.mu.Unlock()
		return
	}
	quiet := r.quiet
	r.last, r.quiet = time.Now(), 0
	r.mu.Unlock()
	r.log.Warn("refused connection", "socket", r.socket, "uid", cred.UID, "pid", cred.PID, "peer", v.peer.String(),
		"reason", err.Error(), "refused_unlogged", quiet)
}
