package e2e_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// swapsUnderLoad runs n swaps while load runs and returns the load stats.
func swapsUnderLoad(t *testing.T, a *app, n int, o loadgen.Options) loadgen.Stats {
	t.Helper()
	v1, v2 := release(t, "1.0.0"), release(t, "1.1.0")
	a.mustUpgrade(v1)
	o.URL, o.Duration, o.MaxRequests = "http://"+a.addr+"/", 5*time.Minute, 2_000_000
	ctx, stop := context.WithCancel(t.Context())
	var st loadgen.Stats
	var wg sync.WaitGroup
	wg.Go(func() { st = loadgen.Run(ctx, o) })
	time.Sleep(300 * time.Millisecond)
	for i := range n {
		res := a.mustUpgrade([]string{v2, v1}[i%2])
		t.Logf("swap %d: %s → %s ready %s stop %s", i+1, res.From.Unit, res.To.Unit, res.Ready, res.Stop)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%s, releases seen %v", st, st.Releases)
	return st
}

func TestSystemdSwapUnderLoadNewConnections(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	st := swapsUnderLoad(t, a, 6, loadgen.Options{Workers: 4})
	assert.Zero(t, st.Failed, "errors: %v", st.Errors)
	assert.Greater(t, st.OK, int64(500))
	assert.Len(t, st.Releases, 2, "both releases served")
}

func TestSystemdSwapUnderLoadKeepAlivePOST(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	st := swapsUnderLoad(t, a, 6, loadgen.Options{Workers: 8, KeepAlive: true, Method: "POST", Body: []byte("payload")})
	assert.Zero(t, st.Failed, "errors: %v", st.Errors)
	assert.Greater(t, st.OK, int64(500))
}

// requireServing asserts that the app answers with release want.
func requireServing(t *testing.T, a *app, want string) {
	t.Helper()
	got, err := a.get()
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestSystemdNewReleaseCrashesAtStart(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	crash := release(t, "2.0.0-crash", "HELLO_CRASH_AT_START=1")
	loadDuring(t, a, func() {
		res, stderr, err := a.upgrade(crash)
		require.Equal(t, 3, exitCode(err), "exit 3 = rolled back; stderr: %s", stderr)
		assert.False(t, res.OK)
		assert.Contains(t, stderr, "exited with status 3")
		assert.Contains(t, stderr, "crashing at start", "the unit's journal lines are reported")
	})
	requireServing(t, a, "1.0.0")
	st := a.status()
	assert.Equal(t, "1.0.0", st.Active.Release)
	assert.False(t, st.LastSwap.OK)
}

func TestSystemdNewReleaseNeverReady(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--ready-timeout", "2s", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	noready := release(t, "2.0.0-noready", "HELLO_NO_READY=1")
	loadDuring(t, a, func() {
		begin := time.Now()
		_, stderr, err := a.upgrade(noready)
		require.Equal(t, 3, exitCode(err), stderr)
		assert.Contains(t, stderr, "timeout")
		assert.Less(t, time.Since(begin), 15*time.Second)
	})
	requireServing(t, a, "1.0.0")
}

func TestSystemdConcurrentUpgradeRefusedAndStatusAnswers(t *testing.T) {
	a := newApp(t, "--ready-timeout", "60s", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	// The swap lasts 8 s: time for a status and a refused upgrade on a
	// busy machine.
	slow := release(t, "1.1.0-slow", "HELLO_READY_DELAY=8s")
	other := release(t, "1.2.0")
	done := make(chan error, 1)
	go func() { _, _, err := a.upgrade(slow); done <- err }()
	require.Eventually(t, func() bool { return a.status().Upgrading }, 30*time.Second, 50*time.Millisecond)

	begin := time.Now()
	st := a.status()
	assert.Less(t, time.Since(begin), time.Second, "status must answer within a second during a swap")
	assert.True(t, st.Upgrading)
	assert.Equal(t, "1.0.0", st.Active.Release)

	begin = time.Now()
	out, err := a.run("upgrade", a.name, other)
	assert.Equal(t, 5, exitCode(err), "exit 5 = swap in progress: %s", out)
	assert.Contains(t, out, "swap in progress")
	assert.Less(t, time.Since(begin), 2*time.Second, "refused at once")

	require.NoError(t, <-done)
	requireServing(t, a, "1.1.0")
}

func TestSystemdOldInstanceIgnoringSIGTERMIsKilled(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--drain-timeout", "2s", "--force")
	a.mustUpgrade(release(t, "1.0.0-stubborn", "HELLO_IGNORE_SIGTERM=1"))
	next := release(t, "1.1.0")
	// The old instance never drains: it accepts until it is killed, and the
	// requests it holds then are lost, at most one per load worker.
	fresh, kept := loadAround(t, a, func() {
		res := a.mustUpgrade(next)
		assert.True(t, res.OldKilled)
		assert.GreaterOrEqual(t, res.Stop, 2*time.Second)
		assert.Less(t, res.Stop, 10*time.Second)
	})
	assert.LessOrEqual(t, fresh.Failed, int64(loadWorkers))
	assert.LessOrEqual(t, kept.Failed, int64(loadWorkers))
	requireServing(t, a, "1.1.0")
}

func TestSystemdSystemctlReloadSwaps(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	before := a.status().Active
	out, err := exec.CommandContext(t.Context(), "systemctl", "reload", a.name+".service").CombinedOutput()
	require.NoError(t, err, string(out))
	after := a.status().Active
	assert.NotEqual(t, before.Unit, after.Unit, "reload starts the other colour")
	assert.NotEqual(t, before.PID, after.PID)
	assert.Equal(t, "1.0.0", after.Release)
	requireServing(t, a, "1.0.0")
}

func TestSystemdParentSIGKILLLeavesInstanceServing(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	before := a.status()
	out, err := exec.Command("systemctl", "show", "-P", "MainPID", a.name+".service").Output()
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	require.Equal(t, before.ParentPID, pid)

	require.NoError(t, exec.Command("kill", "-9", strconv.Itoa(pid)).Run())
	for range 20 { // the instance serves while the parent is dead and restarting
		requireServing(t, a, "1.0.0")
		time.Sleep(50 * time.Millisecond)
	}
	after := a.restartedParent(pid) // and it adopts the instance
	assert.Equal(t, before.Active.Unit, after.Active.Unit)
	assert.Equal(t, before.Active.PID, after.Active.PID, "the same process keeps serving")
	a.mustUpgrade(release(t, "1.1.0"))
	requireServing(t, a, "1.1.0")
}
