package beamdeploy

import (
	"os"
	"strings"

	"github.com/beamdeploy/beamdeploy/internal/contract"
)

// Environment variables of the contract between beamdeploy and an instance
// (docs/protocol.md). The parent and its exec shim use the same values.
const (
	// EnvEnabled ("BEAM_DEPLOY") turns managed mode on; see [Enabled].
	EnvEnabled = contract.EnvEnabled
	// EnvApp ("BEAMDEPLOY_APP") holds the app name (the socket is
	// EnvApp + ".socket").
	EnvApp = contract.EnvApp
	// EnvUnit ("BEAMDEPLOY_UNIT") holds the instance's unit name, e.g.
	// "hello@blue.service".
	EnvUnit = contract.EnvUnit
	// EnvColor ("BEAMDEPLOY_COLOR") holds the instance's colour, "blue" or
	// "green".
	EnvColor = contract.EnvColor
	// EnvRelease ("BEAMDEPLOY_RELEASE") holds the release (version) the
	// instance runs.
	EnvRelease = contract.EnvRelease
	// EnvDrainTimeout ("BEAMDEPLOY_DRAIN_TIMEOUT") holds how long the
	// instance may take to exit after SIGTERM before systemd kills it (the
	// app's drain_timeout, the unit's TimeoutStopSec), in Go's duration
	// syntax, e.g. "30s". [Serve] ends its drain in time; see
	// [ServeOptions.DrainTimeout].
	EnvDrainTimeout = contract.EnvDrainTimeout
)

// Enabled reports whether the process runs managed by beamdeploy: the
// environment variable BEAM_DEPLOY is "1", "true", "yes" or "on", in any case
// and with surrounding whitespace ignored. Unset, empty, "0" and anything else
// mean false.
func Enabled() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvEnabled))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// InstanceInfo describes the instance the process runs as. The zero value
// means the process is not managed by beamdeploy.
type InstanceInfo struct {
	App     string // the app name, from BEAMDEPLOY_APP
	Unit    string // the unit name, e.g. "hello@blue.service", from BEAMDEPLOY_UNIT
	Color   string // "blue" or "green", from BEAMDEPLOY_COLOR
	Release string // the release the instance runs, from BEAMDEPLOY_RELEASE
}

// Instance returns what the beamdeploy parent told this instance about itself.
// It returns the zero InstanceInfo when [Enabled] is false; fields the parent
// did not set are empty.
func Instance() InstanceInfo {
	if !Enabled() {
		return InstanceInfo{}
	}
	return InstanceInfo{
		App:     os.Getenv(EnvApp),
		Unit:    os.Getenv(EnvUnit),
		Color:   os.Getenv(EnvColor),
		Release: os.Getenv(EnvRelease),
	}
}
