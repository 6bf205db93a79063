package parent

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// DeployGroup is the group whose members may deploy (besides root).
const DeployGroup = "beamdeploy"

// peer is who is on the other end of a control or broker connection,
// from SO_PEERCRED at connect time.
type peer struct {
	PID    int
	UID    int
	Groups []int  // primary and supplementary groups
	Unit   string // systemd unit of the process ("" if none found)
	Err    error  // why the peer could not be identified
}

// access is what a peer may do.
type access struct {
	deploy   bool // root or member of DeployGroup
	instance bool // a process of one of this app's instance units
}

// classify decides what p may do with app's parent.
func classify(app string, p peer) access {
	if p.Err != nil {
		return access{}
	}
	a := access{deploy: isDeployer(p.UID, p.Groups)}
	_, err := colorOf(app, p.Unit)
	a.instance = err == nil && p.Unit != ""
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
	return s + ")"
}

// authority decides who a peer is and what it may do with the app. It is
// the one place where identity is established: every control and broker
// connection is put to it once, and handlers read its answer from the
// request's context (peerFrom).
type authority struct {
	app string
}

// authorize identifies the peer of c and decides what it may do.
func (au *authority) authorize(_ context.Context, c *net.UnixConn) (peer, access) {
	p := peerOf(c)
	return p, classify(au.app, p)
}

type peerKey struct{}

// verdict is what the authority said of a connection's peer.
type verdict struct {
	peer   peer
	access access
}

// peerFrom returns the peer of a control request and what it may do.
func peerFrom(ctx context.Context) (peer, access) {
	v, _ := ctx.Value(peerKey{}).(verdict)
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
		p, what, app, DeployGroup, DeployGroup, app)
}
