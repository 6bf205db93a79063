// Package parent is the long-lived daemon behind APP.service
// (`beamdeploy parent APP`).
//
// It takes the listening sockets from socket activation, hands them to
// instances through systemd (ExtraFileDescriptors, systemd >= 257) or the
// fd broker, serves the control API on a unix socket, stages uploaded
// releases and drives the deploy core (internal/swap, which makes every
// decision) over systemd units: this package holds the core's HTTP
// adapters, the systemd Runtime and the wiring. It stops its instances
// when it is told to stop (SIGTERM) and never when it crashes: a restarted
// parent re-adopts the running instances from systemd's unit list and its
// own state file.
package parent
