package units

import (
	"fmt"
	"strings"
	"time"
)

// Spec describes a transient Type=notify service unit.
//
// The unit gets KillMode=mixed (SIGTERM to the main process, SIGKILL to
// everything left after TimeoutStop) and no dependency on the unit that
// started it: a crash of the caller must not stop its instances.
type Spec struct {
	Description      string
	ExecStart        []string // absolute path first
	Environment      []string // "KEY=value"
	WorkingDirectory string
	User             string        // empty: root
	TimeoutStart     time.Duration // READY=1 must arrive within this; 0: systemd's default
	TimeoutStop      time.Duration // SIGKILL after this; 0: systemd's default
	// DynamicUser makes systemd allocate User while the unit runs
	// (DynamicUser=yes); units naming the same User share its uid. systemd
	// then also applies ProtectSystem=strict, ProtectHome=read-only,
	// PrivateTmp, RemoveIPC, NoNewPrivileges and RestrictSUIDSGID, and no
	// drop-in can undo them.
	DynamicUser bool
	// StateDirectory, relative to /var/lib, is created for the unit and
	// owned by its user (StateDirectory=); the process finds it in
	// $STATE_DIRECTORY. Empty: none.
	StateDirectory string
	// LogExtraFields are "FIELD=value" journal fields added to every line
	// the unit logs (FIELD upper case, as journald requires).
	LogExtraFields []string
	// Hardened applies Hardening to the unit.
	Hardened bool
	// SharedTmp leaves out PrivateTmp from Hardening: needed when the
	// unit's own command lives under /tmp or /var/tmp.
	SharedTmp bool
	// RestartDelay, when > 0, makes systemd restart the service this long
	// after its main process failed (Restart=on-failure), at most
	// StartLimitBurst times within StartLimitInterval; then the unit stays
	// failed. Zero: no restarts. A failure of the first start is still a
	// failed start: StartTransient stops the unit instead of letting systemd
	// retry it.
	RestartDelay time.Duration
	// FDs are handed to the service by systemd itself
	// (ExtraFileDescriptors=, systemd >= 257): systemd keeps its own copies
	// for as long as the unit is loaded and passes them to every start of
	// the main process with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES, also
	// after a restart. Older systemd rejects the unit. The caller keeps
	// ownership of the descriptors.
	FDs []FD
}

// FD is a descriptor to pass to a service, with its LISTEN_FDNAMES name.
type FD struct {
	Num  int
	Name string
}

// HiddenByPrivateTmp reports whether path is in a directory that
// PrivateTmp= replaces with the unit's own (/tmp, /var/tmp).
func HiddenByPrivateTmp(path string) bool {
	return strings.HasPrefix(path, "/tmp/") || strings.HasPrefix(path, "/var/tmp/")
}

// ExtraFDsVersion is the first systemd version that accepts Spec.FDs.
const ExtraFDsVersion = 257

// The start rate limit of units with Spec.RestartDelay: a service that fails
// more often than this is left failed rather than restarted again.
const (
	StartLimitBurst    = 5
	StartLimitInterval = 10 * time.Second
)

// Hardening is the sandboxing a hardened unit gets: the systemd settings
// that ordinary network services do not notice. Each one can be undone
// with a drop-in (for instances: /etc/systemd/system/APP@.service.d/*.conf),
// which systemd applies after these transient settings.
var Hardening = []struct {
	Name  string
	Value any
}{
	{"NoNewPrivileges", true},
	{"PrivateTmp", true},
	{"PrivateDevices", true},
	{"ProtectSystem", "full"},
	{"ProtectHome", "read-only"},
	{"ProtectKernelTunables", true},
	{"ProtectKernelModules", true},
	{"ProtectKernelLogs", true},
	{"ProtectControlGroups", true},
	{"ProtectClock", true},
	{"ProtectHostname", true},
	{"RestrictSUIDSGID", true},
	{"RestrictRealtime", true},
	{"LockPersonality", true},
	{"SystemCallArchitectures", []string{"native"}},
}

// Unit is a snapshot of a unit's state as systemd reports it.
type Unit struct {
	Name         string
	LoadState    string // "loaded", "not-found", ...
	ActiveState  string // "active", "activating", "deactivating", "inactive", "failed"
	SubState     string // "running", "start", "stop-sigterm", "dead", ...
	Result       string // service result: "success", "exit-code", "timeout", "signal", ...
	InvocationID string // hex; changes on every start
	MainPID      int
	Since        time.Time // when it entered the active state; zero if never
	Job          uint32    // queued job id, 0 if none
	ExecMainCode int32     // 1 exited, 2 killed, 3 dumped (see waitid(2) CLD_*)
	ExecMainStat int32     // exit status or signal number
	Environment  []string  // the unit's Environment= ("KEY=value")
	Restarts     int       // NRestarts: automatic restarts since the unit was loaded
	FragmentPath string    // the unit file; /run/systemd/transient/NAME for transient units
	Transient    bool      // created over D-Bus rather than from a unit file
	// Forked and Activated are when systemd forked the main process
	// (ExecMainStartTimestampMonotonic) and when the unit last became
	// active (ActiveEnterTimestampMonotonic; for Type=notify, READY=1), on
	// CLOCK_MONOTONIC (see Monotonic); zero if never.
	Forked, Activated time.Duration
	// Start is where the time of the start went, set by StartTransient
	// when the start succeeded; nil otherwise.
	Start *StartTimes
}

// StartTimes tells where the time of one StartTransient went. Each is a
// reading of CLOCK_MONOTONIC (see Monotonic), the clock of systemd's
// *TimestampMonotonic properties, so that they line up with systemd's
// and with other processes' readings (such as the exec shim's).
type StartTimes struct {
	Began     time.Duration // StartTransient was called
	Requested time.Duration // a leftover of the name was cleared; StartTransientUnit sent
	Queued    time.Duration // systemd answered: the unit exists and its start job is queued
	Forked    time.Duration // systemd forked the main process
	Ready     time.Duration // systemd took READY=1: the unit became active
	Done      time.Duration // StartTransient learned that the start job finished
}

// Owner is the unit a process belongs to, as the service manager says
// (Manager.ProcessOwner).
type Owner struct {
	Unit         string // unit name, e.g. "hello@blue.service"
	InvocationID string // hex; empty when the unit has none
}

// Running reports whether the unit is active or on its way there.
func (u Unit) Running() bool {
	return u.ActiveState == "active" || u.ActiveState == "activating" || u.ActiveState == "reloading"
}

// autoRestarting reports whether the main process failed and systemd is
// about to start it again ("auto-restart", "auto-restart-queued").
func (u Unit) autoRestarting() bool {
	return strings.HasPrefix(u.SubState, "auto-restart")
}

// Exit describes how the main process ended, or "" if it has not.
func (u Unit) Exit() string {
	switch u.ExecMainCode {
	case 1: // CLD_EXITED
		return fmt.Sprintf("exited with status %d", u.ExecMainStat)
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return fmt.Sprintf("killed by signal %d", u.ExecMainStat)
	}
	return ""
}
