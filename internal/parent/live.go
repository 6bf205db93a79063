package parent

import (
	"context"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// Bounds of status's view of the active instance (liveActive).
const (
	// liveAskTimeout bounds asking systemd about the active unit on behalf
	// of status: past it, status answers with what the parent recorded.
	liveAskTimeout = 300 * time.Millisecond
	// liveMaxAge is how long systemd's answer is used while its main
	// process runs: the app may also name another main process
	// (MAINPID=) without the old one exiting.
	liveMaxAge = 10 * time.Second
)

// liveActive is status's view of the active instance as systemd sees it:
// systemd may have restarted the unit's process (Restart=on-failure) since
// the parent recorded it. It keeps systemd's last answer and watches that
// answer's main process, so that status answers from memory and asks
// systemd only when the process exited, the parent's record changed (a
// swap, a hot upgrade) or the answer is liveMaxAge old: root's status does
// not wait for systemd, which a flood of identity lookups and a busy
// machine can slow down, on every call.
type liveActive struct {
	units unitLookup
	now   func() time.Time

	mu   sync.Mutex // guards seen
	seen *liveSeen  // nil: nothing usable
}

// liveSeen is systemd's answer about the active unit.
type liveSeen struct {
	record swap.Instance // the parent's record it was asked for
	unit   units.Unit
	proc   *watchedProcess // unit.MainPID; nil when it could not be watched
	at     time.Time
}

func newLiveActive(um unitLookup) *liveActive {
	return &liveActive{units: um, now: time.Now}
}

// apply updates a, the parent's record of the active instance, with what
// systemd says of its unit: the main process and, when systemd restarted
// the unit, its invocation and start. When systemd does not answer within
// liveAskTimeout, or the unit is not running, a is left as recorded.
func (l *liveActive) apply(ctx context.Context, a *swap.Instance) {
	u, ok := l.cached(*a)
	if !ok {
		if u, ok = l.ask(ctx, *a); !ok {
			return
		}
	}
	a.PID = u.MainPID
	if u.InvocationID != a.InvocationID {
		a.InvocationID, a.Since = u.InvocationID, u.Since
	}
}

// cached returns the last answer about a's unit if it still holds.
func (l *liveActive) cached(a swap.Instance) (units.Unit, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen
	if s == nil || !sameRecord(s.record, a) || s.proc == nil || l.now().Sub(s.at) >= liveMaxAge || s.proc.exited() {
		return units.Unit{}, false
	}
	return s.unit, true
}

// ask asks systemd about a's unit and keeps the answer.
func (l *liveActive) ask(ctx context.Context, a swap.Instance) (units.Unit, bool) {
	ctx, cancel := context.WithTimeout(ctx, liveAskTimeout)
	defer cancel()
	u, err := l.units.Unit(ctx, a.Unit)
	if err != nil || !u.Running() || u.MainPID == 0 {
		return units.Unit{}, false
	}
	s := &liveSeen{record: a, unit: u, proc: watchProcess(u.MainPID), at: l.now()}
	l.mu.Lock()
	old := l.seen
	l.seen = s
	l.mu.Unlock()
	if old != nil {
		old.proc.close()
	}
	return u, true
}

// sameRecord reports whether a and b are the same record of the active
// instance: same unit, invocation and main process.
func sameRecord(a, b swap.Instance) bool {
	return a.Unit == b.Unit && a.InvocationID == b.InvocationID && a.PID == b.PID
}
