package parent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/user"
	"strconv"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// Swap commands, as the history records them (swap.Audit.Command).
const (
	cmdUpgrade    = "upgrade"
	cmdHotUpgrade = "hot-upgrade"
	cmdReload     = "reload"
	cmdRollback   = "rollback"
	cmdSwap       = "swap"
)

// admit checks a swap request before anything is staged or started: its
// message, and that the app is not locked. It returns who asked (the
// peer's uid and its name, the message), or answers on out and returns
// false.
func (s *server) admit(r *http.Request, out *stream, command string) (swap.Audit, bool) {
	a := swap.Audit{Command: command, Message: r.URL.Query().Get("message")}
	if p, _ := peerFrom(r.Context()); p.Err == nil {
		uid := p.UID
		a.UID, a.User = &uid, userName(uid)
	}
	if err := control.CheckMessage(a.Message); err != nil {
		out.fail(http.StatusBadRequest, errorBody(control.CodeBadRequest, "--message: "+err.Error()))
		return a, false
	}
	if l := s.state.get().Lock; l != nil {
		s.log.Warn("swap refused: the app is locked", append(auditAttrs(a),
			"lock_user", l.User, "lock_uid", l.UID, "lock_message", l.Message)...)
		e := errorBody(control.CodeLocked, lockedMessage(s.app, *l))
		e.Lock = l
		out.fail(http.StatusLocked, e)
		return a, false
	}
	return a, true
}

// lockedMessage tells an operator why their swap was refused and how to
// lift the lock.
func lockedMessage(app string, l control.Lock) string {
	return fmt.Sprintf("%s is locked by %s since %s: %s; nothing was staged or started; unlock with: beamdeploy unlock %s",
		app, l.Who(), l.Since.UTC().Format(time.RFC3339), l.Message, app)
}

// userName returns the name of uid, or "" when it has none.
func userName(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	return u.Username
}

// auditAttrs are the log attributes of who asked for a swap; the journal
// gets them as BEAMDEPLOY_COMMAND, _USER, _UID and _MESSAGE.
func auditAttrs(a swap.Audit) []any {
	attrs := []any{"command", a.Command, "user", a.User}
	if a.UID != nil {
		attrs = append(attrs, "uid", *a.UID)
	}
	if a.Message != "" {
		attrs = append(attrs, "message", a.Message)
	}
	return attrs
}

// lock takes (or retakes, with a new message) the app's deploy lock.
func (s *server) lock(w http.ResponseWriter, r *http.Request) {
	var req control.LockRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeBadRequest, "body must be {\"message\": TEXT}"))
		return
	}
	if err := control.CheckMessage(req.Message); err != nil || req.Message == "" {
		msg := "a lock needs a message saying why: beamdeploy lock " + s.app + " -m TEXT"
		if err != nil {
			msg = "-m: " + err.Error()
		}
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeBadRequest, msg))
		return
	}
	p, _ := peerFrom(r.Context())
	l := &control.Lock{Message: req.Message, User: userName(p.UID), UID: p.UID, Since: time.Now().UTC()}
	if _, err := s.state.setLock(l); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(control.CodeInternal, fmt.Sprintf("record the lock: %v", err)))
		return
	}
	s.log.Info("app locked", "user", l.User, "uid", l.UID, "message", l.Message)
	writeJSON(w, http.StatusOK, control.LockState{MessageType: control.TypeLock, App: s.app, Lock: l, Swap: s.machine.Status().Swap})
}

// unlock lifts the app's deploy lock; an unlocked app stays so.
func (s *server) unlock(w http.ResponseWriter, r *http.Request) {
	prev, err := s.state.setLock(nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(control.CodeInternal, fmt.Sprintf("record the unlock: %v", err)))
		return
	}
	if prev != nil {
		p, _ := peerFrom(r.Context())
		s.log.Info("app unlocked", "user", userName(p.UID), "uid", p.UID, "lock_user", prev.User, "lock_uid", prev.UID, "lock_message", prev.Message)
	}
	writeJSON(w, http.StatusOK, control.LockState{MessageType: control.TypeLock, App: s.app})
}
