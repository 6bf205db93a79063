package swap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Options configure a Machine. The zero value of each field is usable.
type Options struct {
	Hooks Hooks
	// Save persists state at every change of the active instance and at
	// the end of every swap. An error before the new instance is started
	// aborts the swap; later errors are reported in the Result's Warning.
	Save func(State) error
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// NewID returns a fresh swap id; a timestamp plus random suffix when nil.
	NewID func() string
	// Settle is how long a new instance must stay up after READY=1 before
	// the cutover; zero skips the settle window.
	Settle time.Duration
	// Releases, when set, is the release store. The machine pins a swap's
	// target when the swap has chosen it (after Request.Prepare), until the
	// swap ends, and the active instance's release for as long as it is
	// active; so the old release stays pinned while it drains. An error
	// pinning the target fails the swap before anything is started. The
	// machine records the target's checksum in the intent and the Result,
	// and chooses reload targets and what retention removes among the
	// staged releases. Without it, nothing is pinned and nothing pruned.
	Releases Releases
	// Keep is how many deployed releases retention keeps (Machine.Prune),
	// besides the active, draining and previous ones.
	Keep int
	// AwaitRestore, when set, holds every swap until Machine.Restore has
	// run: a parent restarted with instances running decides what they are
	// before it starts another.
	AwaitRestore bool
}

// Releases is the release store as the machine uses it.
type Releases interface {
	// Staged returns the staged versions, oldest first.
	Staged() ([]string, error)
	// Pin marks release as in use by holder (words for messages) until
	// unpin is called, so that the store neither replaces nor deletes it.
	Pin(release, holder string) (unpin func(), err error)
	// Remove deletes release, unless it is pinned: the store checks the
	// pins in the same step as it removes, so a swap that pinned its
	// target after Prune chose it still keeps it.
	Remove(release string) error
	// Checksum returns the sha256 recorded for release, "" when unknown.
	Checksum(release string) string
}

// activeHolder is the holder of the active instance's pin.
const activeHolder = "the active instance"

// PinHolder names the swap id as the holder of the pin on its target.
func PinHolder(id string) string { return "swap " + id }

// Request asks for a swap.
type Request struct {
	// Release to swap to. Ignored when Prepare is set.
	Release string
	// Prepare, when set, runs first inside the swap (so that a concurrent
	// request is refused while it runs) and returns the release to swap
	// to: the parent stages an uploaded release here.
	Prepare func(ctx context.Context) (string, error)
	// Audit says who asked; it is recorded in the intent and the Result.
	Audit Audit
}

// Machine runs swaps. It is safe for concurrent use.
type Machine struct {
	rt   Runtime
	opts Options

	saveMu   sync.Mutex // held by save from its copy of the state to its end; taken before mu
	mu       sync.Mutex // guards the fields below
	phase    Phase
	active   *Instance
	draining *Instance
	incoming *Instance
	intent   *Intent // the running swap's record, nil when idle
	swapID   string
	target   string
	began    time.Time
	last     *Result
	closing  bool
	cancel   context.CancelFunc // cancels the running swap
	done     chan struct{}      // closed when the running swap ends
	record   Record             // replaced, never modified in place

	pinMu  sync.Mutex // serialises repin; guards pinned
	pinned pin        // the active instance's release (Options.Releases)

	restored     chan struct{} // closed once swaps may begin (Options.AwaitRestore)
	restoredOnce sync.Once
}

// pin is a release pinned through Options.Releases.
type pin struct {
	release string
	unpin   func()
}

// repin pins the active instance's release if it changed since it was
// last pinned, then unpins the one before: a release that stays active is
// never unpinned in between. It asks the store outside mu (the store
// reads the release's metadata), so Status never waits for a disk.
func (m *Machine) repin() {
	if m.opts.Releases == nil {
		return
	}
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	m.mu.Lock()
	want := m.activeReleaseLocked()
	m.mu.Unlock()
	if want == m.pinned.release {
		return
	}
	old := m.pinned
	m.pinned = pin{}
	if want != "" {
		// An error means the release is not staged (any more) or unreadable:
		// there is nothing left to protect; the next swap's end tries again.
		if unpin, err := m.opts.Releases.Pin(want, activeHolder); err == nil {
			m.pinned = pin{release: want, unpin: unpin}
		}
	}
	if old.unpin != nil {
		old.unpin()
	}
}

// New returns an idle Machine with no active instance.
func New(rt Runtime, opts Options) *Machine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = func() string { return newID(opts.Now()) }
	}
	m := &Machine{rt: rt, opts: opts, restored: make(chan struct{})}
	if !opts.AwaitRestore {
		m.restoredOnce.Do(func() { close(m.restored) })
	}
	return m
}

func newID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return t.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Adopt takes over what a parent found at start-up (re-adoption after a
// parent restart): saved is the state the last parent saved and p what
// Converge decided from it. p.Keep becomes the active instance, the
// interrupted swap (if any) the last one, and the state is saved. It
// panics during a swap.
func (m *Machine) Adopt(saved State, p Plan) error {
	m.mu.Lock()
	if m.phase != PhaseIdle {
		m.mu.Unlock()
		panic("swap: Adopt during a swap")
	}
	m.record, m.active, m.last = saved.Record, saved.Active, saved.Last
	m.setActiveLocked(clone(p.Keep))
	if p.Interrupted != nil {
		m.last = cloneResult(p.Interrupted)
	}
	if m.last != nil {
		m.record = m.record.ended(*m.last)
	}
	m.mu.Unlock()
	m.repin()
	return m.save()
}

// setActiveLocked makes i the active instance, recording its release as
// deployed now when it is another unit or release than before.
func (m *Machine) setActiveLocked(i *Instance) {
	if i != nil && (m.active == nil || m.active.Unit != i.Unit || m.active.Release != i.Release) {
		m.record = m.record.activated(i.Release, m.opts.Now())
	}
	m.active = i
}

// Record returns what the app has deployed. It never waits for a running
// swap; the Record is shared, not to be modified.
func (m *Machine) Record() Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.record
}

// Status returns a snapshot. It never waits for a running swap.
func (m *Machine) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statusLocked()
}

func (m *Machine) statusLocked() Status {
	var starting Color
	if m.phase == PhaseStarting && m.intent != nil {
		starting = m.intent.Color
	}
	adopting := false
	select {
	case <-m.restored:
	default:
		adopting = true
	}
	return Status{
		Adopting:  adopting,
		Active:    clone(m.active),
		Draining:  clone(m.draining),
		Incoming:  clone(m.incoming),
		Starting:  starting,
		Upgrading: m.phase != PhaseIdle,
		Phase:     m.phase,
		Swap:      m.swapID,
		Target:    m.target,
		Since:     m.began,
		Last:      cloneResult(m.last),
	}
}

func clone(i *Instance) *Instance {
	if i == nil {
		return nil
	}
	c := *i
	return &c
}

func cloneResult(r *Result) *Result {
	if r == nil {
		return nil
	}
	c := *r
	c.From, c.To = clone(r.From), clone(r.To)
	return &c
}

// begin claims the machine for one swap.
func (m *Machine) begin(ctx context.Context, kind string, audit Audit) (context.Context, *run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return nil, nil, ErrShuttingDown
	}
	if m.phase != PhaseIdle {
		return nil, nil, fmt.Errorf("%w (swap %s to release %s, %s since %s)",
			ErrSwapInProgress, m.swapID, m.target, m.phase, m.began.Format(time.RFC3339))
	}
	ctx, cancel := context.WithCancel(ctx)
	m.phase, m.swapID, m.began, m.target = PhasePreparing, m.opts.NewID(), m.opts.Now(), ""
	m.cancel, m.done = cancel, make(chan struct{})
	m.intent = &Intent{ID: m.swapID, Kind: kind, Phase: PhasePreparing, From: clone(m.active), Began: m.began, Audit: audit}
	r := &run{m: m, res: Result{ID: m.swapID, Kind: kind, Started: m.began, From: clone(m.active), Audit: audit}}
	return ctx, r, nil
}

// end returns the machine to idle and records res.
func (m *Machine) end(res Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cancel()
	close(m.done)
	m.phase, m.swapID, m.target, m.began = PhaseIdle, "", "", time.Time{}
	m.draining, m.incoming, m.cancel, m.done = nil, nil, nil, nil
	m.intent = nil
	m.last = &res
	m.record = m.record.ended(res)
}

// enter moves the running swap to phase p, applies update to its intent
// record (holding m.mu, so update may also set fields it guards) and saves
// the state, before the phase acts.
func (m *Machine) enter(p Phase, update func(*Intent)) error {
	m.mu.Lock()
	m.phase, m.intent.Phase = p, p
	if update != nil {
		update(m.intent)
	}
	m.mu.Unlock()
	return m.save()
}

func (m *Machine) stateLocked() State {
	st := State{Active: clone(m.active), Last: cloneResult(m.last), Record: m.record}
	if m.intent != nil {
		in := *m.intent
		in.From, in.To = clone(in.From), clone(in.To)
		st.Swap = &in
	}
	return st
}

// save writes the machine's state (Options.Save). saveMu keeps saves in
// the order of their copies: a copy taken later never reaches the disk
// before an earlier one (one swap's last save and the next swap's first
// may overlap). mu is not held while writing: status never waits on it.
func (m *Machine) save() error {
	if m.opts.Save == nil {
		return nil
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	st := m.stateLocked()
	m.mu.Unlock()
	return m.opts.Save(st)
}

// Detach refuses new swaps, cancels a running one (which rolls back if
// the old instance is still there) and waits for it, leaving the
// instances running: use it when the parent restarts, and the next parent
// adopts them.
func (m *Machine) Detach(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("wait for the running swap to end: %w", ctx.Err())
		}
	}
	return nil
}

// Shutdown refuses new swaps, cancels a running one (which rolls back if
// the old instance is still there), waits for it, then stops every
// instance. Use it when the parent is told to stop.
func (m *Machine) Shutdown(ctx context.Context) error {
	if err := m.Detach(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	active := m.active
	m.mu.Unlock()
	if active == nil {
		return nil
	}
	if _, err := m.rt.Stop(ctx, *active); err != nil {
		return fmt.Errorf("stop %s: %w", active.Unit, err)
	}
	m.mu.Lock()
	m.active = nil
	m.mu.Unlock()
	m.repin()
	return nil
}
