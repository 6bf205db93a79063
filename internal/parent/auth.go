package parent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// identifyTimeout bounds asking systemd who a peer is: a stuck D-Bus
// refuses the peer as an instance instead of holding its connection. It is
// generous because a refused instance fails: systemd answered a lookup
// after more than 2 s on a busy machine (the e2e suite, three tests at a
// time), and a restarted instance whose broker fetch was refused failed
// again. A flood of lookups is bounded by the connection gate, not here.
const identifyTimeout = 10 * time.Second

// peer is who is on the other end of a control or broker connection: the
// kernel's credentials from connect time (SO_PEERCRED, SO_PEERGROUPS) and,
// for peers that are not deployers, the unit the system manager says its
// process belongs to.
type peer struct {
	PID    int
	UID    int
	Groups []int // primary and supplementary groups
	Err    error // why the peer's credentials could not be read: it may do nothing

	Unit       string // the process's unit, as the system manager says; "" if not asked
	Invocation string // that unit's current InvocationID
	Restarts   int    // that unit's NRestarts, read for the app's instance units only
	UnitErr    error  // why the unit could not be established: the peer is no instance
}

// access is what a peer may do.
type access struct {
	deploy   bool   // root or member of config.DeployGroup
	instance bool   // a process of one of this app's instances the parent tracks
	unit     string // that instance's unit, when instance
}

// tracked is an instance invocation the parent started (or adopted after
// a restart) and still tracks: active, incoming, draining or being
// started. A hot successor runs in the same unit and invocation as the
// process it replaced, so it is the same tracked instance.
type tracked struct {
	Unit       string
	Invocation string // InvocationID; empty while starting
	Restarts   int    // the unit's NRestarts when Invocation was recorded
	Starting   bool   // the parent is starting Unit (before READY=1)
}

// trackedOf lists the instances a machine in state st tracks.
func trackedOf(app string, st swap.Status) []tracked {
	var out []tracked
	for _, i := range []*swap.Instance{st.Active, st.Incoming, st.Draining} {
		if i != nil && i.InvocationID != "" {
			out = append(out, tracked{Unit: i.Unit, Invocation: i.InvocationID, Restarts: i.Restarts})
		}
	}
	if st.Starting != "" {
		out = append(out, tracked{Unit: instanceUnit(app, st.Starting), Starting: true})
	}
	return out
}

// decide is what peer p may do with app's parent, given the gid of
// config.DeployGroup (-1 when there is none) and the instances the parent
// tracks. Root and members of config.DeployGroup deploy, by their credentials
// alone. A peer is an instance of app only if the system manager put its
// process in APP@blue.service or APP@green.service and that unit's
// invocation is one the parent tracks:
//
//   - the invocation the parent recorded when it started (or adopted) the
//     unit, which is also the one of its hot successors;
//   - any invocation while the parent is starting the unit, before
//     READY=1 (the exec shim fetches its listeners then): StartTransient
//     creates the unit and refuses a name that is loaded and running, so
//     every invocation it has meanwhile is of the parent's start;
//   - a later invocation once systemd restarted the unit by itself
//     (Restart=on-failure: NRestarts grew past the count recorded with the
//     invocation). A start or restart someone asked for resets NRestarts,
//     so an instance unit an administrator restarted behind the parent's
//     back is not taken for an instance until the next swap.
//
// Nothing else is an instance: not a unit of a user's service manager
// (the system manager places those processes in user@UID.service), not
// another app's instance, not a unit the parent stopped or never started.
// The uid never makes an instance: instances may run as any user.
func decide(app string, deployGID int, p peer, live []tracked) access {
	if p.Err != nil {
		return access{}
	}
	a := access{deploy: p.UID == 0 || (deployGID >= 0 && slices.Contains(p.Groups, deployGID))}
	if p.UnitErr != nil || p.Invocation == "" {
		return a
	}
	if _, err := colorOf(app, p.Unit); err != nil {
		return a
	}
	for _, t := range live {
		if t.Unit == p.Unit && (t.Starting || t.Invocation == p.Invocation || p.Restarts > t.Restarts) {
			a.instance, a.unit = true, p.Unit
		}
	}
	return a
}

func (p peer) String() string {
	if p.Err != nil {
		return "unidentified peer (" + p.Err.Error() + ")"
	}
	s := fmt.Sprintf("uid %d (pid %d", p.UID, p.PID)
	if p.Unit != "" {
		s += ", unit " + p.Unit
	}
	if p.UnitErr != nil {
		s += "; unit unknown: " + p.UnitErr.Error()
	}
	return s + ")"
}

// authority decides who a peer is and what it may do with the app. It is
// the one place where identity is established: every control and broker
// connection is put to it once, and handlers read its answer from the
// request's context (peerFrom).
type authority struct {
	app string
	// units asks the system manager which unit a process belongs to; nil:
	// no peer is an instance.
	units *units.Manager
	// tracked returns the instances the parent tracks now.
	tracked func() []tracked
	// ready is closed once the parent adopted the instances it found
	// running at start (see adopted): until then tracked is not the truth.
	ready     chan struct{}
	readyOnce sync.Once
	// mayBe tells whether a process with a uid can be one of the app's
	// instances at all (uidFilter).
	mayBe func(uid int) bool
	// reserved tells whether only the app's instances run with a uid
	// (instanceUID): the gate keeps room for them.
	reserved func(uid int) bool
}

func newAuthority(app string, run config.RunAs, um *units.Manager, m *swap.Machine) *authority {
	return &authority{app: app, units: um, ready: make(chan struct{}), mayBe: uidFilter(run), reserved: instanceUID(run),
		tracked: func() []tracked { return trackedOf(app, m.Status()) }}
}

// instanceUID returns which uids only the app's instances run as: a
// dynamic user's (systemd's dynamic range) or a static user's; none for a
// root app (its instances are root, which the gate never limits). The gate
// exempts them from its total, so that other users cannot fill it and lock
// the instances out.
func instanceUID(run config.RunAs) func(uid int) bool {
	switch {
	case run.Dynamic:
		return func(uid int) bool { return uid >= config.DynamicUIDMin && uid <= config.DynamicUIDMax }
	case run.User != "" && run.User != "root":
		if u, err := user.Lookup(run.User); err == nil {
			if want, err := strconv.Atoi(u.Uid); err == nil {
				return func(uid int) bool { return uid == want }
			}
		}
	}
	return func(int) bool { return false }
}

// uidFilter returns which uids a process of the app's instances can have:
// a necessary condition, checked before systemd is asked (what makes a
// peer an instance is still its unit, never its uid). It spares systemd a
// question per connection of a local user flooding the sockets. Instances
// of a dynamic user run with a uid from systemd's dynamic range; those of
// a static user with its uid; root's may take any uid.
func uidFilter(run config.RunAs) func(uid int) bool {
	if run.Dynamic {
		return instanceUID(run)
	}
	if run.User != "" && run.User != "root" {
		if _, err := user.Lookup(run.User); err == nil {
			return instanceUID(run)
		}
	}
	return func(int) bool { return true } // root's instances may take any uid; for an unknown user, systemd is asked
}

// adopted tells the authority that the tracked instances are now known.
func (au *authority) adopted() { au.readyOnce.Do(func() { close(au.ready) }) }

// authorize identifies the peer of c and decides what it may do. It asks
// the system manager about peers that are not deployers only, bounded by
// identifyTimeout.
func (au *authority) authorize(ctx context.Context, c *net.UnixConn) (peer, access) {
	p, proc := credentials(c)
	if p.Err != nil {
		return p, access{}
	}
	defer proc.release()
	gid, ok := deployGID()
	if !ok {
		gid = -1
	}
	if a := decide(au.app, gid, p, nil); a.deploy || au.units == nil || (au.mayBe != nil && !au.mayBe(p.UID)) {
		return p, a
	}
	ctx, cancel := context.WithTimeout(ctx, identifyTimeout)
	defer cancel()
	p.Unit, p.Invocation, p.Restarts, p.UnitErr = au.identify(ctx, proc)
	return p, decide(au.app, gid, p, au.tracked())
}

// identify asks the system manager for the unit of proc and, for the
// app's instance units, how often systemd restarted it; it waits until
// the parent has adopted its instances.
func (au *authority) identify(ctx context.Context, proc *process) (unit, invocation string, restarts int, err error) {
	o, err := proc.owner(ctx, au.units)
	if err != nil {
		return "", "", 0, err
	}
	if _, err := colorOf(au.app, o.Unit); err != nil {
		return o.Unit, o.InvocationID, 0, nil
	}
	if restarts, err = au.units.Restarts(ctx, o.Unit); err != nil {
		return o.Unit, o.InvocationID, 0, err
	}
	select {
	case <-au.ready:
	case <-ctx.Done():
		return o.Unit, o.InvocationID, 0, fmt.Errorf("the parent is still adopting its instances: %w", ctx.Err())
	}
	return o.Unit, o.InvocationID, restarts, nil
}

type peerKey struct{}

// verdict is what the authority said of a connection's peer.
type verdict struct {
	peer   peer
	access access
}

// peerFrom returns the peer of a control request and what it may do, as
// the gate recorded it when it admitted the connection (connContext).
func peerFrom(ctx context.Context) (peer, access) {
	v, ok := ctx.Value(peerKey{}).(verdict)
	if !ok {
		return peer{Err: errors.New("no peer recorded")}, access{}
	}
	return v.peer, v.access
}

// guard lets a request through only if its peer may: deployers always,
// instances of the app when instanceOK.
func (s *server) guard(instanceOK bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, a := peerFrom(r.Context())
		if a.deploy || (instanceOK && a.instance) {
			h(w, r)
			return
		}
		what := "deploy"
		if instanceOK {
			what = "use the control API"
		}
		writeJSON(w, http.StatusForbidden, errorBody(control.CodePermissionDenied, deniedMessage(p, what, s.app)))
	}
}

// deniedMessage tells p that it may not do what to app, and what to do.
func deniedMessage(p peer, what, app string) string {
	return fmt.Sprintf("permission denied: %s may not %s of %s: run as root, join the %s group (usermod -aG %s USER), or call from an instance of %s",
		p, what, app, config.DeployGroup, config.DeployGroup, app)
}
