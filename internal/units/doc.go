// Package units starts, stops and inspects systemd units over D-Bus.
//
// It wraps go-systemd's dbus.Conn with what beamdeploy needs: transient
// instance units started and waited on until their start job finishes
// (for Type=notify services that is READY=1), stops that wait until the
// unit is gone, typed job errors, and the last journal lines of a unit
// invocation for error reports.
//
// Job-completion signals can be lost (for example around daemon-reload), so
// every wait also re-queries the unit's state instead of trusting the signal
// alone.
package units
