package e2e_test

// examples/beam, the Erlang example, under beamdeploy: blue-green swaps
// and in-place hot upgrades under load, against the real systemd. Its
// releases are built by scripts/example-release (EXAMPLE=beam) with the
// erlc of the root the sandbox runs on (OTP 25 on Debian 12, 27 on 13).

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/beamtest"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

var (
	beamMu       sync.Mutex
	beamReleases = map[string]string{}
)

// newBeamApp sets up an app running examples/beam. Erlang must be
// installed where the real-systemd suite runs: without it the test fails.
func newBeamApp(t *testing.T) *app {
	t.Helper()
	beamtest.RequireSystemd(t)
	for _, tool := range []string{"erl", "erlc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is set but %s is missing: install erlang-base (make deps; the Debian 13 root of scripts/debian13-root has it): %v",
				beamtest.EnvSystemd, tool, err)
		}
	}
	// The BEAM starts in about a second, longer on a busy machine.
	a := newAppExec(t, "bin/beam", "--ready-timeout", "60s")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("journalctl", "--no-pager", "-o", "short-monotonic", "-n", "400",
				"-u", a.name+"@blue.service", "-u", a.name+"@green.service", "-u", a.name+".service").CombinedOutput() // for the log only
			t.Logf("journal of %s:\n%s", a.name, out)
		}
	})
	return a
}

// beamRelease builds dist/beam-VERSION.tar.gz with scripts/example-release
// (once per version and run); broken: with BROKEN=1, a release whose code
// does not load.
func beamRelease(t *testing.T, version string, broken bool) string {
	t.Helper()
	beamdeployBin(t)
	beamMu.Lock()
	defer beamMu.Unlock()
	key := version + "/" + strconv.FormatBool(broken)
	if p, ok := beamReleases[key]; ok {
		return p
	}
	dist := filepath.Join(buildDir, "beam-dist-"+strconv.Itoa(len(beamReleases)))
	cmd := exec.CommandContext(t.Context(), "../scripts/example-release", version)
	cmd.Env = append(os.Environ(), "EXAMPLE=beam", "DIST="+dist)
	if broken {
		cmd.Env = append(cmd.Env, "BROKEN=1")
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "example-release: %s", out)
	p := filepath.Join(dist, "beam-"+version+".tar.gz")
	require.FileExists(t, p)
	beamReleases[key] = p
	return p
}

// beamAnswer is what examples/beam says about itself in its headers.
type beamAnswer struct {
	release  string // X-Release: the code that answered
	pid      int    // X-Pid: the BEAM's OS process
	requests int    // X-Requests: requests counted so far, this one included
	releases string // X-Releases: the releases the counter's state went through
	body     string
}

// beamGet sends one GET on a new connection.
func (a *app) beamGet() beamAnswer {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(a.t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.addr+"/", nil)
	require.NoError(a.t, err)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, resp.StatusCode)
	pid, err := strconv.Atoi(resp.Header.Get("X-Pid"))
	require.NoError(a.t, err)
	n, err := strconv.Atoi(resp.Header.Get("X-Requests"))
	require.NoError(a.t, err)
	return beamAnswer{release: resp.Header.Get("X-Release"), pid: pid, requests: n, releases: resp.Header.Get("X-Releases"), body: b.String()}
}

// beamCount follows the app's request count: every request it answered,
// the probes of the test and the load's, must be counted exactly once.
type beamCount struct {
	a      *app
	probes int
	load   int64
}

func (c *beamCount) get() beamAnswer {
	c.probes++
	return c.a.beamGet()
}

// settled waits until a probe shows every request counted (a new
// instance adds its predecessor's count once the cutover came) and fails
// at once if one shows more: a count added twice.
func (c *beamCount) settled(t *testing.T) beamAnswer {
	t.Helper()
	var last beamAnswer
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		last = c.get()
		want := int64(c.probes) + c.load
		require.LessOrEqual(t, int64(last.requests), want, "more requests counted than were sent: a count was added twice")
		if int64(last.requests) == want {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the count stopped at %d of %d requests sent: a count was lost", last.requests, int64(c.probes)+c.load)
	return last
}

func systemctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "systemctl", args...).CombinedOutput()
	require.NoError(t, err, "systemctl %s: %s", strings.Join(args, " "), out)
}

func TestSystemdBeamSwapsUnderLoad(t *testing.T) {
	t.Parallel()
	a := newBeamApp(t)
	v1, v2 := beamRelease(t, "1.0.0", false), beamRelease(t, "1.1.0", false)
	a.mustUpgrade(v1)
	c := &beamCount{a: a}
	first := c.settled(t)
	assert.Contains(t, first.body, "1.0.0", "GET / names the release")
	fresh, kept := loadAround(t, a, func() {
		for i := range 5 {
			res := a.mustUpgrade([]string{v2, v1}[i%2])
			t.Logf("swap %d: %s (pid %d) → %s (pid %d), ready %s, old stopped in %s",
				i+1, res.From.Unit, res.From.PID, res.To.Unit, res.To.PID, res.Ready, res.Stop)
			assert.False(t, res.OldKilled, "the old BEAM drained and exited by itself")
		}
	})
	assert.Zero(t, fresh.Failed, "new-connection requests failed: %v", fresh.Errors)
	assert.Zero(t, kept.Failed, "keep-alive requests failed: %v", kept.Errors)
	assert.Len(t, kept.Releases, 2, "both releases served the keep-alive POSTs: %v", kept.Releases)
	c.load = fresh.OK + kept.OK + fresh.Failed + kept.Failed
	last := c.settled(t)
	t.Logf("the count went on across 5 swaps: %d requests (%d of them load)", last.requests, c.load)
	assert.Equal(t, "1.1.0", last.release)
	assert.Equal(t, a.status().Active.PID, last.pid)
}

func TestSystemdBeamHotUpgradesInPlace(t *testing.T) {
	t.Parallel()
	a := newBeamApp(t)
	a.mustUpgrade(beamRelease(t, "1.0.0", false))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	c := &beamCount{a: a}
	require.Equal(t, "1.0.0", c.settled(t).release)
	fresh, kept := loadAround(t, a, func() {
		for _, v := range []string{"1.1.0", "1.2.0"} {
			res, stderr, err := a.hotUpgrade(beamRelease(t, v, false))
			require.NoError(t, err, stderr)
			require.True(t, res.OK, "%+v", res)
			t.Logf("hot upgrade to %s in %s: pid %d → %d", res.Release, res.Ready, res.From.PID, res.To.PID)
			assert.Equal(t, swap.KindHot, res.Kind)
			assert.Equal(t, unit, res.To.Unit, "same unit")
			assert.Equal(t, pid, res.To.PID, "same process")
			assert.Equal(t, pid, mainPID(t, unit), "systemd's main PID did not change")
			got := c.get()
			assert.Equal(t, v, got.release, "the new code answers")
			assert.Contains(t, got.body, v)
			assert.Equal(t, pid, got.pid)
		}
	})
	assert.Zero(t, fresh.Failed, "new-connection requests failed: %v", fresh.Errors)
	assert.Zero(t, kept.Failed, "keep-alive requests failed: %v", kept.Errors)
	c.load = fresh.OK + kept.OK + fresh.Failed + kept.Failed
	got := c.settled(t)
	assert.Equal(t, "1.0.0 1.1.0 1.2.0", got.releases, "the counter process kept its state through code_change")
	t.Logf("state kept: %d requests counted, releases %q", got.requests, got.releases)

	st := a.status()
	assert.Equal(t, unit, st.Active.Unit)
	assert.Equal(t, "1.2.0", st.Active.Release)
	assert.Equal(t, pid, st.Active.PID)
	require.GreaterOrEqual(t, len(st.History), 2)
	for _, r := range st.History[len(st.History)-2:] {
		assert.Equal(t, swap.KindHot, r.Kind)
	}
	out, err := a.run("status", a.name)
	require.NoError(t, err)
	assert.Contains(t, out, "hot")
	assert.Contains(t, out, "1.2.0")

	// A restarted parent adopts the process as release 1.2.0.
	parent := st.ParentPID
	systemctl(t, "restart", a.name+".service")
	require.Eventually(t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		var st control.Status
		return err == nil && json.Unmarshal(out, &st) == nil && st.ParentPID != parent && st.Active != nil
	}, 60*time.Second, 200*time.Millisecond, "the parent is back")
	st = a.status()
	assert.Equal(t, "1.2.0", st.Active.Release, "the restarted parent reports the hot-upgraded release")
	assert.Equal(t, pid, st.Active.PID)

	// When systemd restarts the unit (Restart=on-failure), it runs 1.2.0
	// in a new BEAM.
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return show(unit, "NRestarts") == "1" && show(unit, "ActiveState") == "active"
	}, 60*time.Second, 100*time.Millisecond, "systemd restarts the unit")
	again := a.beamGet()
	assert.Equal(t, "1.2.0", again.release)
	assert.NotEqual(t, pid, again.pid, "a new process")
	assert.Equal(t, mainPID(t, unit), again.pid)
}

func TestSystemdBeamHotUpgradeThatFailsToLoad(t *testing.T) {
	t.Parallel()
	a := newBeamApp(t)
	a.mustUpgrade(beamRelease(t, "1.0.0", false))
	unit := a.status().Active.Unit
	pid := mainPID(t, unit)
	before := a.status().History
	hotRecord := filepath.Join("/var/lib/beamdeploy", a.name, "hot", unit+".json")
	loadDuring(t, a, func() {
		res, stderr, err := a.hotUpgrade(beamRelease(t, "1.1.0", true))
		require.Equal(t, 3, exitCode(err), "exit 3 = failed, the old code serves: %s", stderr)
		assert.False(t, res.OK)
		assert.Contains(t, stderr, "beam_reply.beam", "the app's message names what did not load")
		assert.Contains(t, stderr, "Not a BEAM file")
		assert.Equal(t, pid, mainPID(t, unit))
		got := a.beamGet()
		assert.Equal(t, "1.0.0", got.release, "the old code keeps serving")
		assert.Equal(t, pid, got.pid)
	})
	st := a.status()
	assert.Equal(t, "1.0.0", st.Active.Release, "nothing recorded")
	assert.Equal(t, pid, st.Active.PID)
	assert.NoFileExists(t, hotRecord, "no hot-upgrade record: a restart runs 1.0.0")
	for _, r := range st.History[len(before):] {
		assert.False(t, r.OK, "no successful swap recorded: %+v", r)
	}
	// The same process takes the next order and loads good code.
	res, stderr, err := a.hotUpgrade(beamRelease(t, "1.2.0", false))
	require.NoError(t, err, stderr)
	assert.True(t, res.OK)
	assert.Equal(t, pid, res.To.PID)
	assert.Equal(t, "1.2.0", a.beamGet().release)
}
