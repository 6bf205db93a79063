package beamdeploy

import (
	"fmt"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd that the instance can serve (sd_notify READY=1). With
// Type=notify, beamdeploy waits for it before stopping the old instance. Call
// it once the listeners are open; connections that arrive before Serve accepts
// wait in the kernel backlog. Ready returns nil without doing anything when
// NOTIFY_SOCKET is unset.
func Ready() error {
	return notify("ready", daemon.SdNotifyReady)
}

// Stopping tells systemd that the instance is shutting down (sd_notify
// STOPPING=1). [Serve] sends it when it starts to drain. Stopping returns nil
// without doing anything when NOTIFY_SOCKET is unset.
func Stopping() error {
	return notify("stopping", daemon.SdNotifyStopping)
}

// Status sets the free-form status text that systemctl status shows (sd_notify
// STATUS=). Newlines in s are replaced by spaces. Status returns nil without
// doing anything when NOTIFY_SOCKET is unset.
func Status(s string) error {
	return notify("status", "STATUS="+strings.ReplaceAll(s, "\n", " "))
}

// notify sends state to NOTIFY_SOCKET; abstract addresses ("@name") work.
func notify(what, state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify %s: %w", what, err)
	}
	return nil
}
