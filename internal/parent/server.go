package parent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// server answers the control API.
type server struct {
	app       string
	machine   *swap.Machine
	releases  *release.Store
	state     *stateFile
	listeners []string
	systemd   int
	log       *slog.Logger
	onSwap    func(swap.Result) // after every swap
	handoff   *handoff.Store
	exec      []string // the app's command, for release checks
	hot       *hotBoard
	units     *units.Manager // nil in tests without systemd
	live      *liveActive    // the active instance as systemd sees it; nil in tests without systemd
	fdPath    string         // how instances get their listeners: "systemd" or "broker"

	follow followers // progress of recent swaps, for beamdeploy wait
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	// Deploy operations: root and the beamdeploy group. Reads, handoff and
	// peers: also the app's own instances.
	mux.HandleFunc("GET "+control.PathStatus, s.timed(s.guard(true, s.status)))
	mux.HandleFunc("POST "+control.PathUpgrade, s.guard(false, s.upgrade))
	mux.HandleFunc("POST "+control.PathReload, s.guard(false, s.reload))
	mux.HandleFunc("POST "+control.PathSwap, s.guard(false, s.swapTo))
	mux.HandleFunc("GET "+control.PathReleases, s.timed(s.guard(true, s.releasesHandler)))
	mux.HandleFunc("POST "+control.PathStage, s.guard(false, s.stageHandler))
	mux.HandleFunc("POST "+control.PathRollback, s.guard(false, s.rollbackHandler))
	mux.HandleFunc("POST "+control.PathHotUpgrade, s.guard(false, s.hotUpgrade))
	mux.HandleFunc("GET "+control.PathWait, s.guard(true, s.waitHandler))
	mux.HandleFunc("GET "+control.PathHotWait, s.guard(true, s.hotWait))
	mux.HandleFunc("POST "+control.PathHotReport, s.guard(true, s.hotReport))
	mux.HandleFunc("POST "+control.PathLock, s.guard(false, s.lock))
	mux.HandleFunc("DELETE "+control.PathLock, s.guard(false, s.unlock))
	s.handoffRoutes(mux)
	return withDeadlines(requestTimeout, mux)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st := s.machine.Status()
	if a := st.Active; a != nil && !st.Upgrading && s.live != nil {
		s.live.apply(r.Context(), a)
	}
	writeJSON(w, http.StatusOK, control.Status{
		MessageType: control.TypeStatus, App: s.app,
		Upgrading: st.Upgrading, Adopting: st.Adopting, Phase: st.Phase, Swap: st.Swap, Target: st.Target,
		Active: st.Active, Draining: st.Draining, LastSwap: st.Last, History: s.machine.Record().History,
		ParentPID: os.Getpid(), Systemd: s.systemd, FDPath: s.fdPath, Listeners: s.listeners, Now: time.Now().UTC(),
		Lock: s.state.get().Lock,
	})
}

// uploadStream checks an upload's file name and opens the progress
// stream, which goes out while the tarball is still being read. On error
// it answers and returns nil.
func uploadStream(w http.ResponseWriter, r *http.Request) *stream {
	if _, _, err := release.ParseUpload(r.URL.Query().Get("filename"), r.URL.Query().Get("version")); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeInvalidRelease, err.Error()))
		return nil
	}
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody(control.CodeInternal, err.Error()))
		return nil
	}
	return newStream(w)
}

func (s *server) upgrade(w http.ResponseWriter, r *http.Request) {
	out := uploadStream(w, r)
	if out == nil {
		return
	}
	who, ok := s.admit(r, out, cmdUpgrade)
	if !ok {
		return
	}
	unpin := func() {}
	s.runOp(r, out, s.machine.Swap, swap.Request{Audit: who, Prepare: func(ctx context.Context) (string, error) {
		rel, err := s.stageForSwap(ctx, r, out, &unpin)
		return rel.Version, err
	}}, func() { unpin() })
}

func (s *server) reload(w http.ResponseWriter, r *http.Request) {
	out := newStream(w)
	who, ok := s.admit(r, out, cmdReload)
	if !ok {
		return
	}
	s.run(r, out, swap.Request{Audit: who, Prepare: func(context.Context) (string, error) { return s.reloadTarget() }})
}

func (s *server) swapTo(w http.ResponseWriter, r *http.Request) {
	var req control.SwapRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Release == "" {
		writeJSON(w, http.StatusBadRequest, errorBody(control.CodeBadRequest, "body must be {\"release\": VERSION}"))
		return
	}
	out := newStream(w)
	who, ok := s.admit(r, out, cmdSwap)
	if !ok {
		return
	}
	s.run(r, out, swap.Request{Audit: who, Prepare: func(context.Context) (string, error) {
		if _, err := s.releases.Get(req.Release); err != nil {
			return "", err
		}
		return req.Release, nil
	}})
}

// reloadTarget is what a reload swaps to (swap.Machine.ReloadTarget).
func (s *server) reloadTarget() (string, error) {
	target, err := s.machine.ReloadTarget()
	if err == nil && target == "" {
		err = fmt.Errorf("%w: nothing to reload: no release is staged; upload one with: beamdeploy upgrade %s TARBALL", release.ErrNotFound, s.app)
	}
	return target, err
}

// run executes one blue-green swap and streams its progress and outcome.
func (s *server) run(r *http.Request, out *stream, req swap.Request) {
	s.runOp(r, out, s.machine.Swap, req, nil)
}

// swapOp is (*swap.Machine).Swap or HotUpgrade.
type swapOp func(context.Context, swap.Request, func(swap.Event)) (swap.Result, error)

// runOp executes one swap of the machine and streams its progress and
// outcome to out; done, when non-nil, runs once the swap ended. The
// request's context cancels the swap: a client that goes away before the
// cutover rolls it back. With ?detach=1 the swap runs on its own instead:
// once its Prepare succeeded (an upload is read and staged), out gets a
// control.Detached message and ends, and runOp returns while the swap
// goes on to its end. Its progress and result go to followers (waitHandler)
// either way.
func (s *server) runOp(r *http.Request, out *stream, op swapOp, req swap.Request, done func()) {
	if r.URL.Query().Get("detach") != "1" {
		s.runSwap(r.Context(), out, op, req)
		if done != nil {
			done()
		}
		return
	}
	detached := make(chan struct{})
	prepare := req.Prepare
	req.Prepare = func(ctx context.Context) (string, error) {
		rel, err := prepare(ctx)
		if err == nil {
			out.detach(control.Detached{MessageType: control.TypeDetached, App: s.app, Swap: swap.IDFromContext(ctx), Release: rel})
			close(detached)
		}
		return rel, err
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		s.runSwap(context.WithoutCancel(r.Context()), out, op, req)
		if done != nil {
			done()
		}
	}()
	select {
	case <-detached:
	case <-ended: // refused, or failed before it could detach: out has the error
	}
}

// runSwap runs op, recording its progress and outcome for followers and
// streaming them to out. req.Prepare must be set.
func (s *server) runSwap(ctx context.Context, out *stream, op swapOp, req swap.Request) {
	prepare := req.Prepare
	req.Prepare = func(ctx context.Context) (string, error) {
		out.followedBy(s.follow.get(swap.IDFromContext(ctx), true))
		return prepare(ctx)
	}
	res, err := op(ctx, req, func(e swap.Event) {
		s.log.Info(e.Message, "swap", e.Swap, "phase", e.Phase.String(), "unit", e.Unit, "release", e.Release)
		out.progress(e)
	})
	if errors.Is(err, swap.ErrSwapInProgress) || errors.Is(err, swap.ErrShuttingDown) {
		out.fail(failure(err))
		return
	}
	if s.onSwap != nil {
		s.onSwap(res)
	}
	if err != nil {
		s.log.Error("swap failed", append([]any{"swap", res.ID, "release", res.Release, "sha256", res.SHA256, "err", err}, auditAttrs(res.Audit)...)...)
		status, e := failure(err)
		e.Result = &res
		var se *StartError
		if errors.As(err, &se) {
			e.Unit, e.Journal = se.Unit, se.Journal
		}
		s.follow.get(res.ID, true).end(e)
		out.fail(status, e)
		return
	}
	s.log.Info("swap done", append([]any{"swap", res.ID, "release", res.Release, "sha256", res.SHA256,
		"ready", res.Ready, "stop", res.Stop, "total", res.Total}, auditAttrs(res.Audit)...)...)
	s.prune()
	final := control.Result{MessageType: control.TypeResult, Result: res}
	s.follow.get(res.ID, true).end(final)
	out.send(final)
}

// failure is the HTTP status and error body for err, from the one error
// table (control.CodeOf).
func failure(err error) (int, *control.Error) {
	code, status := control.CodeOf(err)
	return status, errorBody(code, err.Error())
}

func errorBody(code, msg string) *control.Error {
	return &control.Error{MessageType: control.TypeError, Code: code, Message: msg}
}

func stagingEvent(n, total int64, took time.Duration) swap.Event {
	msg := fmt.Sprintf("staging: %.1f MB read", float64(n)/1e6)
	if total > 0 {
		msg = fmt.Sprintf("staging: %.1f of %.1f MB", float64(n)/1e6, float64(total)/1e6)
	}
	return swap.Event{Phase: swap.PhasePreparing, Elapsed: took, Message: msg}
}

func stagedEvent(rel release.Release, took time.Duration) swap.Event {
	if rel.Reused {
		return swap.Event{Phase: swap.PhasePreparing, Release: rel.Version, Elapsed: took,
			Message: fmt.Sprintf("release %s already staged with the same content", rel.Version)}
	}
	return swap.Event{Phase: swap.PhasePreparing, Release: rel.Version, Elapsed: took,
		Message: fmt.Sprintf("staged release %s: %d files, %.1f MB unpacked in %s (%.0f MB/s)",
			rel.Version, rel.Files, float64(rel.Size)/1e6, took.Round(time.Millisecond), float64(rel.Size)/1e6/max(took.Seconds(), 1e-6))}
}

// stream writes newline-delimited JSON messages, flushing each within
// streamWriteTimeout. Until the first message it can still answer with a
// plain HTTP error.
type stream struct {
	mu       sync.Mutex // guards w, started, closed, followed
	w        http.ResponseWriter
	started  bool
	closed   bool      // detached: the handler returned, w is not to be used
	followed *followed // records the progress for followers; nil: not recorded
}

// newStream lifts the request's deadlines: a stream lasts as long as its
// swap, and the connection's read side then only tells whether the client
// went away, which cancels the swap. (An upload's body sets its own read
// deadlines: uploadBody.)
func newStream(w http.ResponseWriter) *stream {
	longPoll(w, 0)
	return &stream{w: w}
}

func (s *stream) progress(e swap.Event) { s.event(e, false) }

// staging sends upload progress, which followers only get the latest of.
func (s *stream) staging(e swap.Event) { s.event(e, true) }

func (s *stream) event(e swap.Event, transient bool) {
	s.mu.Lock()
	f := s.followed
	s.mu.Unlock()
	if f != nil {
		f.add(e, transient)
	}
	s.send(control.Progress{MessageType: control.TypeProgress, Event: e})
}

// followedBy has s record the progress it sends in f from now on.
func (s *stream) followedBy(f *followed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followed = f
}

// detach sends d as the stream's last message; the handler may return
// then, and s drops what is sent later (followers still get it).
func (s *stream) detach(d control.Detached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendLocked(d)
	s.closed = true
}

func (s *stream) send(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendLocked(v)
}

func (s *stream) sendLocked(v any) {
	if s.closed {
		return
	}
	_ = http.NewResponseController(s.w).SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // as in setDeadlines
	if !s.started {
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	_ = json.NewEncoder(s.w).Encode(v) // a client gone or stalled (streamWriteTimeout) cancels the request's context
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *stream) fail(status int, e *control.Error) {
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if !started {
		// The request's body may be unread (an upload refused before it was
		// read): with full duplex on, net/http then panics when it reads the
		// next request on this connection, and the client may see a reset
		// instead of this answer. Closing the connection after it avoids that.
		s.w.Header().Set("Connection", "close")
		writeJSON(s.w, status, e)
		return
	}
	s.send(e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // nothing to do for a client that went away
}
