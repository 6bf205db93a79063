// Package control is the protocol between the beamdeploy CLI (and apps)
// and the parent: HTTP/JSON over the unix socket
// /run/beamdeploy/APP/control.sock.
//
// Long operations (upgrade, reload, swap) answer with a stream of
// newline-delimited JSON messages: "progress" messages while the swap runs,
// then one "result" or "error" (or "detached", with ?detach=1; PathWait
// then follows the swap). A request refused before it started
// (another swap in progress) gets a plain HTTP error with an Error body.
// Fields are only ever added.
package control

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// Message types on the wire.
const (
	TypeStatus   = "status"
	TypeProgress = "progress"
	TypeResult   = "result"
	TypeError    = "error"
)

// Error is a failure reported by the parent.
type Error struct {
	MessageType string `json:"message_type"` // TypeError
	Code        string `json:"code"`
	Message     string `json:"message"`
	// Unit and Journal describe a new instance that failed to start: its
	// name and the last lines it logged.
	Unit    string       `json:"unit,omitempty"`
	Journal []string     `json:"journal,omitempty"`
	Result  *swap.Result `json:"result,omitempty"`
	Lock    *Lock        `json:"lock,omitempty"` // the lock that refused a swap (CodeLocked)
}

func (e *Error) Error() string { return e.Message }

// Status answers GET /v1/status.
type Status struct {
	MessageType string         `json:"message_type"` // TypeStatus
	App         string         `json:"app"`
	Upgrading   bool           `json:"upgrading"`
	Adopting    bool           `json:"adopting,omitempty"` // a restarted parent is still adopting its running instances: Active may be nil meanwhile
	Phase       swap.Phase     `json:"phase"`
	Swap        string         `json:"swap,omitempty"`
	Target      string         `json:"target,omitempty"`
	Active      *swap.Instance `json:"active"`
	Draining    *swap.Instance `json:"draining,omitempty"`
	LastSwap    *swap.Result   `json:"last_swap,omitempty"`
	History     []swap.Result  `json:"history,omitempty"` // recent swaps, newest last
	ParentPID   int            `json:"parent_pid"`
	Systemd     int            `json:"systemd_version"`
	FDPath      string         `json:"fd_path,omitempty"` // "systemd" (ExtraFileDescriptors, >= 257) or "broker"
	Listeners   []string       `json:"listeners"`
	Now         time.Time      `json:"now"`
	Lock        *Lock          `json:"lock,omitempty"` // the deploy lock; nil: unlocked
}

// Progress is one step of a running swap.
type Progress struct {
	MessageType string `json:"message_type"` // TypeProgress
	swap.Event
}

// Result ends a successful swap stream.
type Result struct {
	MessageType string `json:"message_type"` // TypeResult
	swap.Result
}

// Detached ends the stream of a swap request with ?detach=1 once the
// parent runs the swap on its own (an upload is read and staged by then).
// Follow the swap with GET PathWait?swap=Swap.
type Detached struct {
	MessageType string `json:"message_type"` // TypeDetached
	App         string `json:"app"`
	Swap        string `json:"swap"`
	Release     string `json:"release"`
}

// TypeDetached is the message type of Detached.
const TypeDetached = "detached"

// PathWait streams a swap's progress and final message like the request
// that started it: GET ?swap=ID, or without it the running swap, or else
// the last one. A swap that ended is answered at once; an unknown id gets
// a CodeNotFound error.
const PathWait = "/v1/wait"

// SwapRequest is the body of POST /v1/swap.
type SwapRequest struct {
	Release string `json:"release"`
}

// Endpoint paths.
const (
	PathStatus  = "/v1/status"
	PathUpgrade = "/v1/upgrade" // ?filename=NAME-VERSION.tar.gz[&sha256=HEX][&force=1][&detach=1], body: the tarball
	PathReload  = "/v1/reload"
	PathSwap    = "/v1/swap"
)

// NotRunningError explains how to start a parent that does not answer.
func NotRunningError(app, socket string, cause error) error {
	return fmt.Errorf("%w: %s %s; start it with: systemctl start %s.service", ErrNotRunning, socket, why(cause), app)
}

// why says in plain words why a unix socket did not answer.
func why(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return "does not exist"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refuses connections (nothing listens on it)"
	}
	return "does not answer"
}

// Handoff endpoints: GET PathHandoff lists; GET, PUT and DELETE
// PathHandoff+"/KEY" read, write (raw body) and delete one key.
const PathHandoff = "/v1/handoff"

// Handoff answers GET /v1/handoff.
type Handoff struct {
	MessageType string            `json:"message_type"` // TypeHandoff
	Entries     map[string][]byte `json:"entries"`
}

// Peers answers GET /v1/peers?unit=UNIT and GET /v1/cutover?unit=UNIT:
// which instance is replacing UNIT (Incoming, set from READY=1 of the new
// instance until UNIT is stopped) and which one UNIT replaced (Outgoing).
// /v1/cutover waits until no swap involving UNIT is running any more, so a
// new instance learns that the old one has stopped.
type Peers struct {
	MessageType string `json:"message_type"` // TypePeers
	Unit        string `json:"unit"`
	Incoming    string `json:"incoming,omitempty"`
	Outgoing    string `json:"outgoing,omitempty"`
}

// More message types and paths.
const (
	TypeHandoff = "handoff"
	TypePeers   = "peers"
	PathPeers   = "/v1/peers"
	PathCutover = "/v1/cutover"
)

// Release endpoints.
const (
	PathReleases = "/v1/releases" // GET: list
	PathStage    = "/v1/stage"    // POST ?filename=&sha256=&force=1, body: tarball; streams progress then "staged"
	PathRollback = "/v1/rollback" // POST ?to=VERSION; streams like upgrade
	TypeReleases = "releases"     // message type of GET /v1/releases
	TypeStaged   = "staged"       // last message of POST /v1/stage
)

// ReleaseInfo describes one staged release. State is "active",
// "draining", "previous" (the rollback target) or "available".
type ReleaseInfo struct {
	Version    string    `json:"version"`
	State      string    `json:"state"`
	Size       int64     `json:"size"`
	Files      int       `json:"files"`
	SHA256     string    `json:"sha256"`
	StagedAt   time.Time `json:"staged_at"`
	DeployedAt time.Time `json:"deployed_at,omitzero"`
	Compat     string    `json:"compat,omitempty"` // the manifest's compat key
	Hot        string    `json:"hot,omitempty"`    // hot upgrade mode (HotSuccessor, HotInPlace) when Compat is set
}

// Releases answers GET /v1/releases, oldest staged first.
type Releases struct {
	MessageType string        `json:"message_type"` // TypeReleases
	Releases    []ReleaseInfo `json:"releases"`
}

// Staged ends a successful POST /v1/stage.
type Staged struct {
	MessageType string `json:"message_type"` // TypeStaged
	Version     string `json:"version"`
	Size        int64  `json:"size"`
	Files       int    `json:"files"`
	SHA256      string `json:"sha256"`
	Reused      bool   `json:"reused"`
}
