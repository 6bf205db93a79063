package parent

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A hook of an app run by a dynamic user runs as the uid and gid systemd
// gave the new instance's process, which it learns from systemd itself.
func TestSystemdHookRunsAsTheInstancesDynamicUser(t *testing.T) {
	beamtest.RequireSystemd(t)
	unit := beamtest.UnitName(t, ".service")
	um := sleepUnit(t, unit, "DynamicUser=yes")
	var u units.Unit
	var err error
	// systemd names the main process once it forked it, before the child
	// took the dynamic user's credentials: wait until it runs sleep.
	require.Eventually(t, func() bool {
		u, err = um.Unit(t.Context(), unit)
		if err != nil || u.MainPID <= 0 {
			return false
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", u.MainPID)) // gone: not yet
		return string(comm) == "sleep\n"
	}, 30*time.Second, 20*time.Millisecond)
	want, err := procCredential(u.MainPID)
	require.NoError(t, err)
	require.NotZero(t, want.UID, "systemd allocated a dynamic user")

	inst := swap.Instance{Unit: unit, PID: u.MainPID, InvocationID: u.InvocationID}
	err = runHookAs(t, config.Config{User: config.DynamicUser}, inst, um)
	assert.ErrorContains(t, err, fmt.Sprintf("uid=%d gid=%d", want.UID, want.GID))

	// Once the unit's process is gone, the hook does not run at all.
	require.NoError(t, exec.Command("systemctl", "stop", unit).Run())
	err = runHookAs(t, config.Config{User: config.DynamicUser}, inst, um)
	assert.ErrorContains(t, err, "cannot run it as the dynamic user of "+unit)
	assert.NotContains(t, err.Error(), "uid=")
}

// sleepUnit runs sleep 300 as the transient unit with properties props
// (stopped at the end of the test) and returns a connection to systemd.
func sleepUnit(t *testing.T, unit string, props ...string) *units.Manager {
	t.Helper()
	args := []string{"--quiet", "--collect", "--unit=" + unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := exec.CommandContext(t.Context(), "systemd-run", append(args, "sleep", "300")...).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("systemctl", "stop", unit).Run() }) // cleanup
	um, err := units.Dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = um.Close() }) // cleanup
	return um
}
