package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// pyRelease is a release of testdata/hotpy/app.py, an app written against
// docs/protocol.md only, hot-upgraded in mode ("successor" or "in_place").
// Its reply is its version; a broken release has no reply.txt, so its code
// fails to load.
func pyRelease(t *testing.T, version, mode string, broken bool) string {
	t.Helper()
	reply := version
	if broken {
		reply = ""
	}
	return pyReleaseReplying(t, version, mode, reply)
}

// pyReleaseReplying is pyRelease with reply.txt saying reply ("": none;
// "hang": loading in place never ends).
func pyReleaseReplying(t *testing.T, version, mode, reply string) string {
	t.Helper()
	src, err := os.ReadFile("testdata/hotpy/app.py")
	require.NoError(t, err)
	files := map[string][]byte{
		"bin/app":         src,
		"beamdeploy.json": []byte(`{"compat":"py-1","hot":"` + mode + `","command":["bin/app"]}`),
	}
	if reply != "" {
		files["reply.txt"] = []byte(reply + "\n")
	}
	p := filepath.Join(t.TempDir(), "hello-"+version+".tar.gz")
	writeTarball(t, p, files)
	return p
}

// hotRecorded reports whether the parent holds a hot upgrade record for unit.
func hotRecorded(t *testing.T, a *app, unit string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(config.Paths{}.StateDir(a.name), "hot", unit+".json"))
	if os.IsNotExist(err) {
		return false
	}
	require.NoError(t, err)
	return true
}

// requireRestartRuns has systemd restart unit (its main process is
// killed: Restart=on-failure) and requires the new process to serve want.
// (A `systemctl restart` of an instance is a new invocation the parent did
// not start: on systemd 252 its fd broker refuses it, by design; see
// decide in internal/parent/auth.go.)
func requireRestartRuns(t *testing.T, a *app, unit, want string) {
	t.Helper()
	before, restarts := mainPID(t, unit), show(unit, "NRestarts")
	require.NoError(t, syscall.Kill(before, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return show(unit, "NRestarts") != restarts && show(unit, "ActiveState") == "active"
	}, 30*time.Second, 100*time.Millisecond, "systemd restarts the unit")
	require.NotEqual(t, before, mainPID(t, unit), "a new process")
	requireServing(t, a, want)
}

// requireParentReports kills the parent and requires the restarted one to
// report want as the release of unit.
func requireParentReports(t *testing.T, a *app, unit, want string) {
	t.Helper()
	require.NoError(t, syscall.Kill(a.status().ParentPID, syscall.SIGKILL))
	var st control.Status
	require.Eventually(t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		return err == nil && json.Unmarshal(out, &st) == nil && st.Active != nil && st.Active.PID == mainPID(t, unit)
	}, 30*time.Second, 200*time.Millisecond)
	assert.Equal(t, want, st.Active.Release)
}

func TestSystemdHotUpgradeInPlaceAnyRuntime(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--ready-timeout", "5s")
	a.mustUpgrade(pyRelease(t, "1.0.0", "in_place", false))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	v11, v12 := pyRelease(t, "1.1.0", "in_place", false), pyRelease(t, "1.2.0", "in_place", false)
	broken := pyRelease(t, "1.1.1-broken", "in_place", true)
	loadDuring(t, a, func() {
		// New code that fails to load: the old code keeps serving, nothing recorded.
		_, stderr, err := a.hotUpgrade(broken)
		require.Equal(t, 3, exitCode(err), "exit 3 = rolled back: %s", stderr)
		assert.Contains(t, stderr, "load release 1.1.1-broken: [Errno 2] No such file or directory", "the app's message")
		requireServing(t, a, "1.0.0")
		assert.Equal(t, "1.0.0", a.status().Active.Release)
		assert.False(t, hotRecorded(t, a, unit), "no hot upgrade record")
		for _, tc := range []struct{ tarball, version string }{{v11, "1.1.0"}, {v12, "1.2.0"}} {
			res, stderr, err := a.hotUpgrade(tc.tarball)
			require.NoError(t, err, stderr)
			require.True(t, res.OK, "%+v", res)
			assert.Equal(t, swap.KindHot, res.Kind)
			assert.Equal(t, unit, res.To.Unit, "same unit")
			assert.Equal(t, pid, res.To.PID, "same process")
			assert.Equal(t, pid, mainPID(t, unit), "systemd's main PID unchanged")
			assert.Equal(t, "active", show(unit, "ActiveState"), "not left reloading")
			requireServing(t, a, tc.version)
			t.Logf("in-place hot upgrade to %s: pid %d in %s", res.Release, res.To.PID, res.Ready)
		}
	})
	st := a.status()
	assert.Equal(t, "1.2.0", st.Active.Release)
	assert.Equal(t, pid, st.Active.PID)
	assert.Equal(t, swap.KindHot, st.History[len(st.History)-1].Kind)
	assert.Equal(t, []string{unit}, a.activeInstances(), "no second instance")
	out, err := a.run("releases", a.name)
	require.NoError(t, err)
	assert.Contains(t, out, "py-1 in_place", "releases shows the compat key and mode")
	// Code whose loading never ends (no READY=1, no report): exit 3 after
	// ready_timeout, nothing recorded, the loaded code serves on.
	begin := time.Now()
	_, stderr, err := a.hotUpgrade(pyReleaseReplying(t, "1.3.0-hangs", "in_place", "hang"))
	require.Equal(t, 3, exitCode(err), "exit 3 = rolled back: %s", stderr)
	assert.Contains(t, stderr, "did not report on the hot upgrade to 1.3.0-hangs within 7s")
	assert.Less(t, time.Since(begin), 20*time.Second)
	requireServing(t, a, "1.2.0")
	assert.Equal(t, "1.2.0", a.status().Active.Release)
	// A restart of the unit runs the hot-upgraded release; so does a
	// restarted parent report it.
	requireRestartRuns(t, a, unit, "1.2.0")
	// After systemd's restart the unit has another main process: an
	// in-place upgrade orders that one and keeps it.
	restarted := mainPID(t, unit)
	require.NotEqual(t, pid, restarted)
	res, stderr, err := a.hotUpgrade(pyRelease(t, "1.4.0", "in_place", false))
	require.NoError(t, err, stderr)
	assert.Equal(t, restarted, res.To.PID)
	assert.Equal(t, restarted, mainPID(t, unit))
	requireServing(t, a, "1.4.0")
	requireParentReports(t, a, unit, "1.4.0")
}

func TestSystemdHotUpgradeSuccessorAnyRuntime(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--ready-timeout", "5s")
	a.mustUpgrade(pyRelease(t, "1.0.0", "successor", false))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	v11, broken := pyRelease(t, "1.1.0", "successor", false), pyRelease(t, "1.1.1-broken", "successor", true)
	in := pyRelease(t, "1.2.0", "in_place", false)
	loadDuring(t, a, func() {
		// A successor that dies at start: the old process keeps serving.
		begin := time.Now()
		_, stderr, err := a.hotUpgrade(broken)
		require.Equal(t, 3, exitCode(err), "exit 3 = rolled back: %s", stderr)
		assert.Contains(t, stderr, "exited before it was ready")
		assert.Contains(t, stderr, "No such file or directory", "the unit's journal lines are reported")
		assert.Less(t, time.Since(begin), 15*time.Second, "fails fast, not at the 5 s deadline plus more")
		assert.Equal(t, pid, mainPID(t, unit))
		requireServing(t, a, "1.0.0")

		res, stderr, err := a.hotUpgrade(v11)
		require.NoError(t, err, stderr)
		require.True(t, res.OK, "%+v", res)
		assert.Equal(t, swap.KindHot, res.Kind)
		assert.Equal(t, unit, res.To.Unit, "same unit")
		assert.NotEqual(t, pid, res.To.PID, "a new process")
		assert.Equal(t, mainPID(t, unit), res.To.PID, "systemd's main PID is the new process")
		requireServing(t, a, "1.1.0")
	})
	// The upgrade returned once the old process exited; systemd reaps it
	// when it gets to it (a zombie still takes signal 0).
	assert.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil }, 30*time.Second, 50*time.Millisecond, "the old process is gone")
	// The running release decides the mode: an in-place release is refused.
	out, err := a.run("hot-upgrade", a.name, in)
	require.Error(t, err)
	assert.Contains(t, out, `declares "hot": "in_place", the running release 1.1.0 "successor"`)
	st := a.status()
	assert.Equal(t, "1.1.0", st.Active.Release)
	assert.Equal(t, swap.KindHot, st.History[len(st.History)-1].Kind)
	requireRestartRuns(t, a, unit, "1.1.0")
}
