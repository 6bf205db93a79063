package swap

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Color names one of the two instance slots.
type Color string

// The two colours.
const (
	Blue  Color = "blue"
	Green Color = "green"
)

// Other returns the other colour; the zero Color's other is Blue.
func (c Color) Other() Color {
	if c == Blue {
		return Green
	}
	return Blue
}

// Instance is one running copy of the app.
type Instance struct {
	Unit         string    `json:"unit"`
	Color        Color     `json:"color"`
	Release      string    `json:"release"`
	PID          int       `json:"pid,omitempty"`
	InvocationID string    `json:"invocation_id,omitempty"`
	Restarts     int       `json:"restarts,omitempty"` // the unit's NRestarts (restarts by systemd itself) when InvocationID was recorded
	Since        time.Time `json:"since"`
}

// Runtime starts and stops instances. The parent implements it with
// systemd units.
type Runtime interface {
	// Start starts the instance of the given colour running release and
	// returns once it is ready. On error the returned Instance still names
	// the unit (Unit, Color, Release) so that the machine can stop it, or
	// has no Unit when Start started none (a unit of that name ran
	// already: it is not the machine's to stop).
	Start(ctx context.Context, color Color, release string) (Instance, error)
	// Stop stops inst and returns once it is gone; killed reports that it
	// did not exit within its drain timeout and was killed. Stopping an
	// instance that is not running is not an error.
	Stop(ctx context.Context, inst Instance) (killed bool, err error)
	// Check reports an error when inst is no longer the invocation that
	// Start returned (it exited, or it was restarted). The machine calls it
	// at the end of the settle window.
	Check(ctx context.Context, inst Instance) error
	// Handover has the process serving inst hand its unit over to a new
	// process running release, or load release itself (a hot upgrade), and
	// returns inst as it is afterwards: same unit, new release, a new PID
	// (successor) or the same (in place). It returns once the old process
	// is gone, or the code is loaded (Result.Ready measures the whole
	// handover). On error inst is unchanged and its old process still
	// serves its old code.
	Handover(ctx context.Context, inst Instance, release string) (Instance, error)
}

// Transition is what hooks are told about a swap. Old is nil on the first
// start.
type Transition struct {
	ID  string
	Old *Instance
	New Instance
}

// Hooks run around the cutover. A nil hook is skipped.
type Hooks struct {
	// BeforeCutover runs after the new instance is ready and before the
	// old one is stopped; an error rolls the swap back.
	BeforeCutover func(ctx context.Context, t Transition) error
	// AfterCutover runs after the old instance stopped; an error is
	// reported in the Result and undoes nothing.
	AfterCutover func(ctx context.Context, t Transition) error
}

// Phase is where a swap is.
type Phase int

// Swap phases, in order.
const (
	PhaseIdle Phase = iota
	PhasePreparing
	PhaseStarting
	PhaseSettling // ready; watched for the settle window before the cutover
	PhaseCutover
	PhaseDraining
	PhaseAfterCutover
	PhaseHandover // hot upgrade: the active process hands its unit over
)

var phaseNames = [...]string{"idle", "preparing", "starting", "settling", "cutover", "draining", "after-cutover", "handover"}

func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseNames[p]
}

// MarshalText encodes the phase by name.
func (p Phase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes a phase name.
func (p *Phase) UnmarshalText(b []byte) error {
	for i, n := range phaseNames {
		if n == string(b) {
			*p = Phase(i)
			return nil
		}
	}
	return fmt.Errorf("unknown swap phase %q", b)
}

// Event is a progress report from a running swap.
type Event struct {
	Swap    string        `json:"swap"`
	Phase   Phase         `json:"phase"`
	Unit    string        `json:"unit,omitempty"`
	Release string        `json:"release,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Message string        `json:"message"`
}

// Kinds of swap.
const (
	KindBlueGreen = "blue-green" // a new instance in the other colour
	KindHot       = "hot"        // a new process inside the same unit
)

// Audit is who asked for a swap and why. The zero Audit is a swap the
// parent started by itself (after a reboot) or one recorded before audits.
type Audit struct {
	// Command is what asked: upgrade, hot-upgrade, reload, rollback or swap.
	Command string `json:"command,omitempty"`
	// User is the name of the peer's uid, or "" when it has none.
	User string `json:"user,omitempty"`
	// UID is the peer's uid (SO_PEERCRED); nil when unknown.
	UID *int `json:"uid,omitempty"`
	// Message is the operator's note (--message).
	Message string `json:"message,omitempty"`
}

// Result records one swap.
type Result struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind,omitempty"` // KindBlueGreen or KindHot; empty in records older than hot upgrades
	From    *Instance `json:"from,omitempty"`
	To      *Instance `json:"to,omitempty"`
	Release string    `json:"release"`
	// SHA256 is the checksum the release store recorded for Release (the
	// tarball's sha256); empty when the swap failed before it chose one.
	SHA256 string `json:"sha256,omitempty"`
	Audit
	Started   time.Time     `json:"started"`
	Ready     time.Duration `json:"ready_ns"` // start requested → READY=1
	Stop      time.Duration `json:"stop_ns"`  // stop requested → old instance gone
	Total     time.Duration `json:"total_ns"`
	OK        bool          `json:"ok"`
	Error     string        `json:"error,omitempty"`
	Warning   string        `json:"warning,omitempty"` // after-cutover hook failure
	OldKilled bool          `json:"old_killed,omitempty"`
}

// Status is a snapshot of the machine.
type Status struct {
	Active   *Instance `json:"active"`
	Draining *Instance `json:"draining,omitempty"`
	// Incoming is the new instance between READY=1 and the cutover.
	Incoming  *Instance `json:"incoming,omitempty"`
	Upgrading bool      `json:"upgrading"`
	Phase     Phase     `json:"phase"`
	Swap      string    `json:"swap,omitempty"`   // id of the running swap
	Target    string    `json:"target,omitempty"` // release being swapped to
	Since     time.Time `json:"since,omitzero"`   // when the running swap began
	Last      *Result   `json:"last_swap,omitempty"`
	// Starting is the colour of the instance being started, until it is
	// ready (then it is Incoming) or its start failed; empty otherwise.
	Starting Color `json:"starting,omitempty"`
	// Adopting: a restarted parent has not yet decided which running
	// instance is the active one (Restore has not ended); Active may be
	// nil while an instance serves.
	Adopting bool `json:"adopting,omitempty"`
}

// State is what the machine asks to have persisted (see Options.Save).
type State struct {
	Active *Instance `json:"active"`
	Last   *Result   `json:"last_swap,omitempty"`
	// Swap is the intent record of the running swap, nil when idle.
	Swap *Intent `json:"swap,omitempty"`
	Record
}

// Intent records a swap in flight. The machine saves it before each phase
// acts, so that a parent restarted mid-swap knows what it was doing (see
// Converge).
type Intent struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind,omitempty"`
	Phase   Phase     `json:"phase"`
	Release string    `json:"release,omitempty"` // target; empty while preparing
	Color   Color     `json:"color,omitempty"`   // colour being started
	From    *Instance `json:"from,omitempty"`    // active when the swap began
	To      *Instance `json:"to,omitempty"`      // the new instance, once started
	Began   time.Time `json:"began"`
	SHA256  string    `json:"sha256,omitempty"` // Release's checksum
	Audit
}

// Committed reports whether the swap passed its cutover: from then on the
// new instance is the active one and the old one is being stopped.
func (i *Intent) Committed() bool {
	return i != nil && i.Phase >= PhaseDraining && i.Phase != PhaseHandover
}

// Errors callers branch on.
var (
	ErrSwapInProgress = errors.New("swap: swap in progress")
	ErrShuttingDown   = errors.New("swap: shutting down")
	ErrRolledBack     = errors.New("swap: rolled back")
	ErrStartFailed    = errors.New("swap: new instance did not become ready")
	ErrHookFailed     = errors.New("swap: before_cutover hook failed")
	ErrUnsettled      = errors.New("swap: new instance died within the settle window")
	ErrNoActive       = errors.New("swap: no active instance")
)
