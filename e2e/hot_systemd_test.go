package e2e_test

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// hotRelease is release with a manifest declaring compat ("" for none).
func hotRelease(t *testing.T, version, compat string, env ...string) string {
	t.Helper()
	var manifest map[string][]byte
	if compat != "" {
		manifest = map[string][]byte{"beamdeploy.json": []byte(`{"compat":"` + compat + `"}`)}
	}
	return releaseWith(t, version, manifest, env...)
}

// hotUpgrade runs `beamdeploy --json hot-upgrade`.
func (a *app) hotUpgrade(tarball string) (control.Result, string, error) {
	return a.swapCommand("hot-upgrade", tarball)
}

func mainPID(t *testing.T, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(show(unit, "MainPID"))
	require.NoError(t, err)
	return pid
}

func TestSystemdHotUpgradeUnderLoad(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(hotRelease(t, "1.0.0", "api-1"))
	unit := a.status().Active.Unit
	v11, v12 := hotRelease(t, "1.1.0", "api-1"), hotRelease(t, "1.2.0", "api-1")
	pids := []int{mainPID(t, unit)}
	loadDuring(t, a, func() {
		for _, tb := range []string{v11, v12} {
			res, stderr, err := a.hotUpgrade(tb)
			require.NoError(t, err, stderr)
			require.True(t, res.OK, "%+v", res)
			assert.Equal(t, swap.KindHot, res.Kind)
			assert.Equal(t, unit, res.To.Unit, "same unit")
			assert.Equal(t, mainPID(t, unit), res.To.PID, "systemd's main PID is the new process")
			assert.NotContains(t, pids, res.To.PID, "a new process")
			pids = append(pids, res.To.PID)
			t.Logf("hot upgrade to %s: pid %d → %d in %s", res.Release, res.From.PID, res.To.PID, res.Ready)
		}
	})
	requireServing(t, a, "1.2.0")
	st := a.status()
	assert.Equal(t, unit, st.Active.Unit)
	assert.Equal(t, "1.2.0", st.Active.Release)
	assert.Equal(t, pids[2], st.Active.PID)
	assert.Equal(t, []string{unit}, a.activeInstances(), "no second instance")
	require.GreaterOrEqual(t, len(st.History), 3)
	var kinds []string
	for _, r := range st.History[len(st.History)-3:] {
		kinds = append(kinds, r.Kind)
	}
	assert.Equal(t, []string{swap.KindBlueGreen, swap.KindHot, swap.KindHot}, kinds)
	out, err := a.run("status", a.name)
	require.NoError(t, err)
	assert.Contains(t, out, "hot")
	for _, h := range listenerHolders(t, a.addr) {
		assert.NotZero(t, h.flags&syscall.O_NONBLOCK, "%s has the listener in blocking mode", h)
	}
	// The old processes are gone: only the last one is left in the unit.
	for _, pid := range pids[:2] {
		assert.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil }, 30*time.Second, 50*time.Millisecond, "pid %d exits", pid)
	}
	// A blue-green swap after hot upgrades starts from the hot-upgraded release.
	res := a.mustUpgrade(hotRelease(t, "1.3.0", "api-1"))
	assert.Equal(t, "1.2.0", res.From.Release)
	requireServing(t, a, "1.3.0")
}

func TestSystemdHotUpgradeRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(hotRelease(t, "1.0.0", "api-1"))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	for _, tc := range []struct {
		name, tarball, want string
	}{
		{"other compat key", hotRelease(t, "2.0.0", "api-2"), `compat key "api-2"`},
		{"no compat key", hotRelease(t, "2.0.1", ""), `declares no "compat" key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := a.run("hot-upgrade", a.name, tc.tarball)
			require.Error(t, err)
			assert.NotEqual(t, 0, exitCode(err))
			assert.Contains(t, out, tc.want)
			assert.Contains(t, out, "beamdeploy upgrade", "suggests a blue-green swap")
			assert.Equal(t, pid, mainPID(t, unit), "the running process was not touched")
		})
	}
	// An app that never registered for hot upgrades.
	a.mustUpgrade(hotRelease(t, "1.1.0", "api-1", "HELLO_NO_HOT=1"))
	out, err := a.run("hot-upgrade", a.name, hotRelease(t, "1.2.0", "api-1"))
	require.Error(t, err)
	assert.Contains(t, out, "does not accept hot upgrades")
	assert.Contains(t, out, "beamdeploy upgrade")
	requireServing(t, a, "1.1.0")
}

func TestSystemdHotUpgradeFailingNewBinaryLeavesOldServing(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--ready-timeout", "2s", "--force")
	a.mustUpgrade(hotRelease(t, "1.0.0", "api-1"))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	crash, noready := hotRelease(t, "1.1.0-crash", "api-1", "HELLO_CRASH_AT_START=1"), hotRelease(t, "1.2.0-noready", "api-1", "HELLO_NO_READY=1")
	loadDuring(t, a, func() {
		_, stderr, err := a.hotUpgrade(crash)
		require.Equal(t, 3, exitCode(err), "exit 3 = rolled back: %s", stderr)
		assert.Contains(t, stderr, "exited before it was ready")
		assert.Contains(t, stderr, "crashing at start", "the unit's journal lines are reported")
		assert.Equal(t, pid, mainPID(t, unit))

		begin := time.Now()
		_, stderr, err = a.hotUpgrade(noready)
		require.Equal(t, 3, exitCode(err), stderr)
		assert.Contains(t, stderr, "not ready within 2s")
		assert.Less(t, time.Since(begin), 15*time.Second)
		assert.Equal(t, pid, mainPID(t, unit))
	})
	// The refused successor drained without STOPPING=1, which systemd
	// would have taken for the unit's: the unit is not stopping.
	assert.Equal(t, "active/running", show(unit, "ActiveState")+"/"+show(unit, "SubState"))
	requireServing(t, a, "1.0.0")
	st := a.status()
	assert.Equal(t, "1.0.0", st.Active.Release)
	assert.Equal(t, pid, st.Active.PID)
	// The old process still takes hot upgrades after the failures.
	res, stderr, err := a.hotUpgrade(hotRelease(t, "1.3.0", "api-1"))
	require.NoError(t, err, stderr)
	assert.True(t, res.OK)
	requireServing(t, a, "1.3.0")
}

func TestSystemdRestartAfterHotUpgradeRunsNewRelease(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.editConfig(func(c *config.Config) { c.KeepReleases = 1 })
	a.mustUpgrade(hotRelease(t, "1.0.0", "api-1"))
	unit := a.status().Active.Unit
	_, stderr, err := a.hotUpgrade(hotRelease(t, "1.0.1", "api-1"))
	require.NoError(t, err, stderr)
	res, stderr, err := a.hotUpgrade(hotRelease(t, "1.1.0", "api-1"))
	require.NoError(t, err, stderr)
	assert.NotContains(t, a.releases(), "1.0.0", "the unit's own release was pruned")
	require.NoError(t, syscall.Kill(res.To.PID, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return show(unit, "NRestarts") == "1" && show(unit, "ActiveState") == "active"
	}, 60*time.Second, 100*time.Millisecond, "systemd restarts the unit")
	requireServing(t, a, "1.1.0")
	env := show(unit, "Environment")
	assert.Contains(t, env, "BEAMDEPLOY_RELEASE=1.0.0", "the unit itself was created with 1.0.0")
	// A restarted parent adopts it as 1.1.0.
	require.NoError(t, syscall.Kill(a.status().ParentPID, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		var st control.Status
		return err == nil && json.Unmarshal(out, &st) == nil && st.Active != nil && st.Active.PID == mainPID(t, unit)
	}, 60*time.Second, 200*time.Millisecond)
	assert.Equal(t, "1.1.0", a.status().Active.Release)
}
