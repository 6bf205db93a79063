package swap

import (
	"context"
	"fmt"
	"time"
)

// rollbackTimeout bounds stopping a new instance after a failed swap when
// the caller's context is already gone.
const rollbackTimeout = 5 * time.Minute

// RollbackError is returned when a swap failed before the old instance was
// stopped: the new instance was stopped and the old one keeps serving. It
// matches ErrRolledBack and unwraps to the cause (ErrStartFailed,
// ErrHookFailed, a Prepare error, or the context's error).
type RollbackError struct {
	Phase Phase // where it failed
	Err   error
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("swap rolled back during %s: %v", e.Phase, e.Err)
}

func (e *RollbackError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRolledBack.
func (e *RollbackError) Is(target error) bool { return target == ErrRolledBack }

type idKey struct{}

// IDFromContext returns the id of the swap on whose behalf Runtime.Start
// or Request.Prepare was called, or "".
func IDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
	return id
}

// run is one swap in flight.
type run struct {
	m        *Machine
	res      Result
	progress func(Event)
	unpin    func() // the target's pin, released when the swap ended
}

func (r *run) emit(p Phase, unit, release, format string, args ...any) {
	if r.progress == nil {
		return
	}
	r.progress(Event{Swap: r.res.ID, Phase: p, Unit: unit, Release: release,
		Elapsed: r.m.opts.Now().Sub(r.res.Started), Message: fmt.Sprintf(format, args...)})
}

// Swap runs one blue-green swap and returns when it is over: on success,
// once the old instance is gone. progress, when non-nil, is called from
// Swap's goroutine with each step. See the package doc for the failure
// semantics. Cancelling ctx before the old instance is stopped rolls the
// swap back; after that, the swap completes regardless.
func (m *Machine) Swap(ctx context.Context, req Request, progress func(Event)) (Result, error) {
	if err := m.awaitRestore(ctx); err != nil {
		return Result{}, err
	}
	return m.run(ctx, KindBlueGreen, req, progress)
}

// HotUpgrade has the active instance's process hand its unit over to a
// new process running the target release (Runtime.Handover): same unit,
// no second instance. It is exclusive with swaps like Swap is. On failure
// the old process keeps serving and the error matches ErrRolledBack.
func (m *Machine) HotUpgrade(ctx context.Context, req Request, progress func(Event)) (Result, error) {
	if err := m.awaitRestore(ctx); err != nil {
		return Result{}, err
	}
	return m.run(ctx, KindHot, req, progress)
}

func (m *Machine) run(ctx context.Context, kind string, req Request, progress func(Event)) (Result, error) {
	ctx, r, err := m.begin(ctx, kind, req.Audit)
	if err != nil {
		return Result{}, err
	}
	r.progress = progress
	if kind == KindHot {
		err = r.hot(ctx, req)
	} else {
		err = r.do(ctx, req)
	}
	r.res.Total = m.opts.Now().Sub(r.res.Started)
	r.res.OK = err == nil
	if err != nil {
		r.res.Error = err.Error()
	}
	m.end(r.res)
	m.repin() // the active release (the target after a success), before the target's pin goes
	if r.unpin != nil {
		r.unpin()
	}
	if serr := m.save(); serr != nil {
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("save state: %v", serr))
	}
	return r.res, err
}

func joinWarning(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// prepare runs the request's Prepare and returns the target release,
// pinned (Options.Releases) until the swap ends.
func (r *run) prepare(ctx context.Context, req Request) (string, error) {
	release := req.Release
	if req.Prepare != nil {
		rel, err := req.Prepare(context.WithValue(ctx, idKey{}, r.res.ID))
		if err != nil {
			return "", &RollbackError{Phase: PhasePreparing, Err: err}
		}
		release = rel
	}
	if store := r.m.opts.Releases; store != nil {
		unpin, err := store.Pin(release, PinHolder(r.res.ID))
		if err != nil {
			return "", &RollbackError{Phase: PhasePreparing, Err: err}
		}
		r.unpin = unpin
		r.res.SHA256 = store.Checksum(release)
	}
	r.res.Release = release
	r.m.mu.Lock()
	r.m.target, r.m.intent.SHA256 = release, r.res.SHA256
	r.m.mu.Unlock()
	return release, nil
}

func (r *run) do(ctx context.Context, req Request) error {
	m := r.m
	release, err := r.prepare(ctx, req)
	if err != nil {
		return err
	}
	color := Blue
	if r.res.From != nil {
		color = r.res.From.Color.Other()
	}
	if err := m.enter(PhaseStarting, func(i *Intent) { i.Release, i.Color = release, color }); err != nil {
		return &RollbackError{Phase: PhasePreparing, Err: fmt.Errorf("save state before starting: %w", err)}
	}
	next, err := r.start(ctx, color, release)
	if err != nil {
		return err
	}
	if err := r.settle(ctx, next); err != nil {
		return err
	}
	if err := r.cutover(ctx, next); err != nil {
		return err
	}
	r.drain(ctx)
	r.afterCutover(ctx, next)
	return nil
}

// hot runs a hot upgrade: the active process hands over in place.
func (r *run) hot(ctx context.Context, req Request) error {
	m := r.m
	old := r.res.From
	if old == nil {
		return &RollbackError{Phase: PhasePreparing, Err: fmt.Errorf("%w to hot-upgrade", ErrNoActive)}
	}
	release, err := r.prepare(ctx, req)
	if err != nil {
		return err
	}
	if err := m.enter(PhaseHandover, func(i *Intent) { i.Release = release }); err != nil {
		return &RollbackError{Phase: PhaseHandover, Err: fmt.Errorf("save state before the handover: %w", err)}
	}
	r.emit(PhaseHandover, old.Unit, release, "asking %s (pid %d) to hand over to release %s", old.Unit, old.PID, release)
	t0 := m.opts.Now()
	next, err := m.rt.Handover(context.WithValue(ctx, idKey{}, r.res.ID), *old, release)
	r.res.Ready = m.opts.Now().Sub(t0)
	if err != nil {
		return &RollbackError{Phase: PhaseHandover, Err: err}
	}
	r.res.To = clone(&next)
	m.mu.Lock()
	m.setActiveLocked(clone(&next))
	m.mu.Unlock()
	if next.PID == old.PID {
		r.emit(PhaseHandover, next.Unit, release, "pid %d loaded release %s in place in %s in %s", next.PID, release, next.Unit, r.res.Ready.Round(time.Millisecond))
	} else {
		r.emit(PhaseHandover, next.Unit, release, "pid %d replaced pid %d in %s; handover done (old process gone) in %s", next.PID, old.PID, next.Unit, r.res.Ready.Round(time.Millisecond))
	}
	return nil
}

// start brings up the idle colour; on failure it stops it again.
func (r *run) start(ctx context.Context, color Color, release string) (Instance, error) {
	m := r.m
	r.emit(PhaseStarting, "", release, "starting %s instance with release %s", color, release)
	t0 := m.opts.Now()
	next, err := m.rt.Start(context.WithValue(ctx, idKey{}, r.res.ID), color, release)
	r.res.Ready = m.opts.Now().Sub(t0)
	if err != nil {
		r.rollback(ctx, next)
		return next, &RollbackError{Phase: PhaseStarting, Err: fmt.Errorf("%w: %w", ErrStartFailed, err)}
	}
	r.res.To = clone(&next)
	r.emit(PhaseStarting, next.Unit, release, "%s ready in %s (pid %d)", next.Unit, r.res.Ready.Round(time.Millisecond), next.PID)
	return next, nil
}

// settle records the new instance, then, when a settle window is set,
// waits it out and checks that the instance is still the one that became
// ready; otherwise it rolls back.
func (r *run) settle(ctx context.Context, next Instance) error {
	m := r.m
	err := m.enter(PhaseSettling, func(i *Intent) {
		i.To = clone(&next)
		// Under the same lock as the phase: Status shows the new instance
		// as Starting, then as Incoming, never as neither.
		m.incoming = clone(&next)
	})
	if err != nil {
		r.rollback(ctx, next)
		return &RollbackError{Phase: PhaseSettling, Err: fmt.Errorf("save state before the cutover: %w", err)}
	}
	if m.opts.Settle <= 0 {
		return nil
	}
	r.emit(PhaseSettling, next.Unit, next.Release, "watching %s for %s before the cutover", next.Unit, m.opts.Settle)
	t := time.NewTimer(m.opts.Settle)
	defer t.Stop()
	select {
	case <-t.C:
		err = m.rt.Check(ctx, next)
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnsettled, err)
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		r.rollback(ctx, next)
		return &RollbackError{Phase: PhaseSettling, Err: err}
	}
	return nil
}

// cutover runs the before-cutover hook and makes next the active instance.
func (r *run) cutover(ctx context.Context, next Instance) error {
	m := r.m
	if err := m.enter(PhaseCutover, nil); err != nil {
		r.rollback(ctx, next)
		return &RollbackError{Phase: PhaseCutover, Err: fmt.Errorf("save state before the cutover: %w", err)}
	}
	if h := m.opts.Hooks.BeforeCutover; h != nil {
		r.emit(PhaseCutover, next.Unit, next.Release, "running before_cutover hook")
		if err := h(ctx, Transition{ID: r.res.ID, Old: clone(r.res.From), New: next}); err != nil {
			r.rollback(ctx, next)
			return &RollbackError{Phase: PhaseCutover, Err: fmt.Errorf("%w: %w", ErrHookFailed, err)}
		}
	}
	if err := ctx.Err(); err != nil {
		r.rollback(ctx, next)
		return &RollbackError{Phase: PhaseCutover, Err: err}
	}
	m.mu.Lock()
	m.draining, m.incoming = m.active, nil
	m.setActiveLocked(clone(&next))
	m.mu.Unlock()
	if err := m.enter(PhaseDraining, nil); err != nil {
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("save state after cutover: %v", err))
	}
	return nil
}

// drain stops the old instance; it is not cancelled with ctx.
func (r *run) drain(ctx context.Context) {
	old := r.res.From
	if old == nil {
		return
	}
	m := r.m
	r.emit(PhaseDraining, old.Unit, old.Release, "stopping %s (draining)", old.Unit)
	t0 := m.opts.Now()
	killed, err := m.rt.Stop(context.WithoutCancel(ctx), *old)
	r.res.Stop = m.opts.Now().Sub(t0)
	r.res.OldKilled = killed
	switch {
	case err != nil:
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("stop %s: %v", old.Unit, err))
	case killed:
		r.emit(PhaseDraining, old.Unit, old.Release, "%s did not exit within the drain timeout and was killed after %s", old.Unit, r.res.Stop.Round(time.Millisecond))
	default:
		r.emit(PhaseDraining, old.Unit, old.Release, "%s stopped in %s", old.Unit, r.res.Stop.Round(time.Millisecond))
	}
	m.mu.Lock()
	m.draining = nil
	m.mu.Unlock()
}

func (r *run) afterCutover(ctx context.Context, next Instance) {
	h := r.m.opts.Hooks.AfterCutover
	if h == nil {
		return
	}
	if err := r.m.enter(PhaseAfterCutover, nil); err != nil {
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("save state: %v", err))
	}
	r.emit(PhaseAfterCutover, next.Unit, next.Release, "running after_cutover hook")
	if err := h(context.WithoutCancel(ctx), Transition{ID: r.res.ID, Old: clone(r.res.From), New: next}); err != nil {
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("after_cutover hook: %v", err))
		r.emit(PhaseAfterCutover, next.Unit, next.Release, "after_cutover hook failed: %v", err)
	}
}

// rollback stops a new instance that must not take over.
func (r *run) rollback(ctx context.Context, next Instance) {
	if next.Unit == "" {
		return
	}
	r.emit(r.m.Status().Phase, next.Unit, next.Release, "stopping %s; %s keeps serving", next.Unit, activeName(r.res.From))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := r.m.rt.Stop(sctx, next); err != nil {
		r.res.Warning = joinWarning(r.res.Warning, fmt.Sprintf("stop %s after failed swap: %v", next.Unit, err))
	}
}

func activeName(i *Instance) string {
	if i == nil {
		return "no instance"
	}
	return i.Unit
}
