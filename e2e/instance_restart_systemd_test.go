package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prop returns one property of a unit, "" when systemctl fails; safe to
// call from Eventually's goroutine.
// processState returns the state letter of /proc/PID/stat ("T": stopped).
func processState(t *testing.T, pid string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	require.NoError(t, err)
	_, rest, _ := strings.Cut(string(b), ") ")
	return rest[:1]
}

func sendSignal(t *testing.T, sig, pid string) {
	t.Helper()
	out, err := exec.Command("kill", "-"+sig, pid).CombinedOutput()
	require.NoError(t, err, "kill -%s %s: %s", sig, pid, out)
}

// TestSystemdInstanceRestartsWhileParentFrozen kills the serving instance
// while the parent is frozen (SIGSTOP): systemd restarts it on the same
// unit. On systemd >= 257 it gets its listeners from systemd
// (ExtraFileDescriptors) and serves while the parent is still frozen; on
// older systemd it waits for the parent's fd broker and serves once the
// parent runs again. New connections meanwhile wait in the socket's
// backlog; only requests the killed process had accepted fail.
func TestSystemdInstanceRestartsWhileParentFrozen(t *testing.T) {
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	a.mustUpgrade(release(t, "1.1.0"))
	st := a.status()
	require.NotNil(t, st.Active)
	out, err := exec.Command("systemctl", "--version").Output()
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(st.Systemd), strings.Fields(string(out))[1], "the parent detected the systemd version")
	systemFDs := st.Systemd >= units.ExtraFDsVersion
	path := map[bool]string{true: "systemd", false: "broker"}[systemFDs]
	unit := st.Active.Unit
	parent := show(a.name+".service", "MainPID")
	require.Equal(t, strconv.Itoa(st.ParentPID), parent)
	var logged []byte // journald stores the line when it gets to it
	assert.Eventually(t, func() bool {
		logged, _ = exec.Command("journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_UNIT="+a.name+".service", "BEAMDEPLOY_FD_PATH="+path).Output()
		return strings.Contains(string(logged), "parent ready")
	}, 30*time.Second, 200*time.Millisecond, "the parent logs fd_path=%s on systemd %d", path, st.Systemd)
	before := show(unit, "InvocationID")
	pid := show(unit, "MainPID")

	const workers = 2
	ctx, stop := context.WithCancel(t.Context())
	var load loadgen.Stats
	var wg sync.WaitGroup
	wg.Go(func() {
		load = loadgen.Run(ctx, loadgen.Options{URL: "http://" + a.addr + "/", Workers: workers, Duration: time.Minute, MaxRequests: 200_000})
	})
	time.Sleep(300 * time.Millisecond)

	sendSignal(t, "STOP", parent)
	t.Cleanup(func() { _ = exec.Command("kill", "-CONT", parent).Run() }) // never leave the parent frozen
	killed := time.Now()
	sendSignal(t, "9", pid)

	restarted := func() bool {
		return show(unit, "ActiveState") == "active" && show(unit, "InvocationID") != before
	}
	// A request sent once systemd saw the process die, while nothing
	// accepts: it waits in the backlog and is answered after the restart.
	require.Eventually(t, func() bool { return show(unit, "SubState") != "running" }, 30*time.Second, 5*time.Millisecond)
	probe := make(chan error, 1)
	var probeTook time.Duration
	go func() {
		begin := time.Now()
		_, err := a.get()
		probeTook = time.Since(begin)
		probe <- err
	}()
	if systemFDs {
		require.Eventually(t, restarted, 30*time.Second, 20*time.Millisecond, "systemd restarts the instance")
		t.Logf("systemd %d: %s active again after %s, parent still frozen", st.Systemd, unit, time.Since(killed).Round(time.Millisecond))
		rel, err := a.get()
		require.NoError(t, err, "the restarted instance serves while the parent is frozen")
		assert.Equal(t, "1.1.0", rel)
		assert.Equal(t, "T", processState(t, parent), "the parent was frozen throughout")
	} else {
		time.Sleep(1500 * time.Millisecond)
		assert.False(t, restarted(), "on systemd %d the restarted instance needs the parent's broker", st.Systemd)
		assert.Equal(t, "T", processState(t, parent))
	}
	sendSignal(t, "CONT", parent)
	resumed := time.Now()
	require.Eventually(t, restarted, 30*time.Second, 20*time.Millisecond, "the instance is restarted")
	t.Logf("systemd %d (fd path %s): active %s after the kill, %s after the parent resumed",
		st.Systemd, path, time.Since(killed).Round(time.Millisecond), time.Since(resumed).Round(time.Millisecond))
	require.NoError(t, <-probe, "a request sent during the restart gap waits in the backlog")
	t.Logf("a request sent during the restart gap was answered after %s", probeTook.Round(time.Millisecond))
	assert.NotEqual(t, pid, show(unit, "MainPID"))
	assert.Equal(t, "1", show(unit, "NRestarts"))
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	t.Logf("load across the kill: %s, releases %v", load, load.Releases)
	assert.Positive(t, load.OK) // a busy machine may answer few; what counts is that none but the killed ones failed
	// Each worker has at most one request in flight: the killed process
	// had accepted it, so it fails. Everything else waits in the backlog.
	assert.LessOrEqual(t, load.Failed, int64(workers), "errors: %v", load.Errors)
	requireServing(t, a, "1.1.0")
	after := a.status()
	require.NotNil(t, after.Active)
	assert.Equal(t, unit, after.Active.Unit)
	assert.Eventually(t, func() bool {
		st, ok := a.statusNow()
		return ok && st.Active != nil && show(unit, "MainPID") == strconv.Itoa(st.Active.PID)
	}, 30*time.Second, 200*time.Millisecond,
		"status shows the restarted process (it answers with its record when systemd is slow to)")
	wantPath := "broker"
	if after.Systemd >= 257 {
		wantPath = "systemd"
	}
	assert.Equal(t, wantPath, after.FDPath)
	assert.Equal(t, []string{unit}, a.activeInstances(), "exactly one instance runs")
}
