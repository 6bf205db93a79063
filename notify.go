package beamdeploy

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready tells systemd that the instance can serve (sd_notify READY=1). With
// Type=notify, beamdeploy waits for it before stopping the old instance. Call
// it once the listeners are open; connections that arrive before Serve accepts
// wait in the kernel backlog. Ready returns nil without doing anything when
// NOTIFY_SOCKET is unset.
//
// In a process started by a hot upgrade ([EnvSuccessor] set, see
// [HotUpgrades]) Ready also makes the process the unit's main process
// (MAINPID=); the parent then tells the old process to drain and exit.
//
// A successor that already began to drain (it was refused and stopped)
// claims nothing: Ready then does nothing.
func Ready() error {
	if _, ok := os.LookupEnv(EnvSuccessor); ok {
		if draining.Load() {
			return nil
		}
		_ = os.Unsetenv(EnvSuccessor) // cannot fail for a valid key; children are no successors
		return notify("ready", fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()))
	}
	return notify("ready", daemon.SdNotifyReady)
}

// draining is set once Serve begins to drain.
var draining atomic.Bool

// Stopping tells systemd that the instance is shutting down (sd_notify
// STOPPING=1). [Serve] sends it when it starts to drain. Stopping returns nil
// without doing anything when NOTIFY_SOCKET is unset.
//
// A successor that has not claimed the unit (see [Ready]) is not the
// unit's main process, and its stopping is not the unit's: Stopping then
// does nothing (systemd would take STOPPING=1 for the unit's).
func Stopping() error {
	if _, ok := os.LookupEnv(EnvSuccessor); ok {
		return nil
	}
	return notify("stopping", daemon.SdNotifyStopping)
}

// Status sets the free-form status text that systemctl status shows (sd_notify
// STATUS=). Newlines in s are replaced by spaces. Status returns nil without
// doing anything when NOTIFY_SOCKET is unset.
func Status(s string) error {
	return notify("status", "STATUS="+strings.ReplaceAll(s, "\n", " "))
}

// handedOver is set once a hot upgrade made another process the unit's
// main process: this one must not tell systemd anything more (STOPPING=1
// would stop the unit, new process included).
var handedOver atomic.Bool

// notify sends state to NOTIFY_SOCKET; abstract addresses ("@name") work.
func notify(what, state string) error {
	if handedOver.Load() {
		return nil
	}
	if _, successor := os.LookupEnv(EnvSuccessor); successor {
		return nil // not the unit's main process before Ready: STOPPING=1 would stop the unit
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify %s: %w", what, err)
	}
	return nil
}
