package units_test

import (
	"os/exec"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The service manager names the unit and invocation of a process, by
// pidfd and by pid; NRestarts counts only the restarts systemd did itself.
func TestSystemdProcessOwner(t *testing.T) {
	m := dial(t)
	name, u, err := startService(t, m, "ready-after=0s", units.Spec{RestartDelay: restartDelay})
	require.NoError(t, err)
	pidfd, err := unix.PidfdOpen(u.MainPID, 0)
	require.NoError(t, err)
	defer unix.Close(pidfd)

	for _, fd := range []int{pidfd, -1} {
		o, err := m.ProcessOwner(t.Context(), u.MainPID, fd)
		require.NoError(t, err, "pidfd %d", fd)
		assert.Equal(t, units.Owner{Unit: name, InvocationID: u.InvocationID}, o, "pidfd %d", fd)
	}
	n, err := m.Restarts(t.Context(), name)
	require.NoError(t, err)
	assert.Zero(t, n)

	killMain(t, u)
	after := waitRestarted(t, m, name, u)
	o, err := m.ProcessOwner(t.Context(), after.MainPID, -1)
	require.NoError(t, err)
	assert.Equal(t, units.Owner{Unit: name, InvocationID: after.InvocationID}, o)
	n, err = m.Restarts(t.Context(), name)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "restarted by systemd")

	// A process that is gone has no unit, whichever way it is asked for.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	gone, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	require.NoError(t, err)
	defer unix.Close(gone)
	require.NoError(t, cmd.Wait())
	_, err = m.ProcessOwner(t.Context(), cmd.Process.Pid, gone)
	assert.Error(t, err)
}
