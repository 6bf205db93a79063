package parent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"slices"
	"strconv"

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
	a := access{deploy: p.UID == 0}
	if g, err := user.LookupGroup(DeployGroup); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil && slices.Contains(p.Groups, gid) {
			a.deploy = true
		}
	}
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

type peerKey struct{}

// connContext records the peer of every control connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

// guard lets a request through only if its peer may: deployers always,
// instances of the app when instanceOK.
func (s *server) guard(instanceOK bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		a := classify(s.app, p)
		if a.deploy || (instanceOK && a.instance) {
			h(w, r)
			return
		}
		what := "deploy"
		if instanceOK {
			what = "use the control API"
		}
		msg := fmt.Sprintf("permission denied: %s may not %s of %s: run as root, join the %s group (usermod -aG %s USER), or call from an instance of %s",
			p, what, s.app, DeployGroup, DeployGroup, s.app)
		writeJSON(w, http.StatusForbidden, errorBody(control.CodePermissionDenied, msg))
	}
}
