package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setHooks rewrites the app's config and restarts its parent to load it.
func (a *app) setHooks(h config.Hooks) { a.editConfig(func(c *config.Config) { c.Hooks = h }) }

// editConfig changes the app's APP.json and restarts its parent, which
// reads it again (the instances keep running).
func (a *app) editConfig(edit func(*config.Config)) {
	a.t.Helper()
	path := config.Paths{}.Config(a.name)
	cfg, err := config.Load(path)
	require.NoError(a.t, err)
	edit(&cfg)
	b, err := cfg.Marshal()
	require.NoError(a.t, err)
	require.NoError(a.t, os.WriteFile(path, b, 0o644))
	out, err := exec.Command("systemctl", "restart", a.name+".service").CombinedOutput()
	require.NoError(a.t, err, string(out))
}

func TestSystemdCutoverHooks(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	// Hooks run as the app's (dynamic) user: the log must be writable by it.
	dir, err := os.MkdirTemp("", "bdtest-hooks-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // test output
	require.NoError(t, os.Chmod(dir, 0o777))
	log := filepath.Join(dir, "hooks.log")
	a.setHooks(config.Hooks{
		BeforeCutover: []string{"/bin/sh", "-c", `echo "before $BEAMDEPLOY_OLD_UNIT $BEAMDEPLOY_OLD_RELEASE -> $BEAMDEPLOY_NEW_UNIT $BEAMDEPLOY_NEW_RELEASE" >>` + log + `; test "$BEAMDEPLOY_NEW_RELEASE" != 2.0.0 || { echo "refusing 2.0.0" >&2; exit 1; }`},
		AfterCutover:  []string{"/bin/sh", "-c", `echo "after $BEAMDEPLOY_NEW_RELEASE" >>` + log + `; test "$BEAMDEPLOY_NEW_RELEASE" != 1.1.0 || exit 7`},
	})
	a.mustUpgrade(release(t, "1.0.0"))

	// A failing before_cutover hook aborts: the new instance is stopped, the old one serves.
	res, stderr, err := a.upgrade(release(t, "2.0.0"))
	require.Equal(t, 3, exitCode(err), stderr)
	assert.Contains(t, stderr, "before_cutover hook")
	assert.Contains(t, stderr, "refusing 2.0.0")
	assert.False(t, res.OK)
	requireServing(t, a, "1.0.0")

	// A failing after_cutover hook is reported and undoes nothing.
	res = a.mustUpgrade(release(t, "1.1.0"))
	assert.Contains(t, res.Warning, "after_cutover hook")
	assert.Contains(t, res.Warning, "exit status 7")
	requireServing(t, a, "1.1.0")
	assert.Contains(t, a.status().LastSwap.Warning, "after_cutover")

	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, ""+
		"before   -> "+a.name+"@blue.service 1.0.0\nafter 1.0.0\n"+
		"before "+a.name+"@blue.service 1.0.0 -> "+a.name+"@green.service 2.0.0\n"+
		"before "+a.name+"@blue.service 1.0.0 -> "+a.name+"@green.service 1.1.0\nafter 1.1.0\n", string(b))
}

// upgradeWatching runs `beamdeploy --json upgrade` and returns the result
// (if any), stderr, when the first progress message containing msg
// arrived (zero if none did), and the exit error.
func (a *app) upgradeWatching(tarball, msg string) (control.Result, string, time.Time, error) {
	a.t.Helper()
	cmd := exec.CommandContext(a.t.Context(), a.bin, "--json", "upgrade", a.name, tarball)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(a.t, err)
	require.NoError(a.t, cmd.Start())
	var seen time.Time
	var res control.Result
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var p control.Progress
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.MessageType == control.TypeProgress && seen.IsZero() && strings.Contains(p.Message, msg) {
			seen = time.Now()
		}
		var r control.Result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.MessageType == control.TypeResult {
			res = r
		}
	}
	err = cmd.Wait() // before stderr is read: Wait finishes copying it
	return res, stderr.String(), seen, err
}

// liveWithMarker returns the live processes (not zombies) whose command
// line contains marker.
func liveWithMarker(t *testing.T, marker string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(marker)) || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")) // gone meanwhile: skipped below
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' {
			out = append(out, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// A hook that outlives its timeout through a background process holding
// its output: before_cutover rolls the swap back within seconds, after
// the cutover it is a warning; nothing of either hook is left running,
// the hooks run as the app's user, and no request fails.
func TestSystemdHookTimeoutKillsItsProcessGroup(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--user", "nobody", "--force")
	before, after := fmt.Sprintf("30.%06d", rand.IntN(1e6)), fmt.Sprintf("31.%06d", rand.IntN(1e6))
	hang := func(version, marker string) []string {
		return []string{"/bin/sh", "-c", `echo "as $(id -un)"; test "$BEAMDEPLOY_NEW_RELEASE" != ` + version + ` || { sleep ` + marker + ` & wait; }`}
	}
	a.setHooks(config.Hooks{BeforeCutover: hang("2.0.0", before), AfterCutover: hang("3.0.0", after), Timeout: config.Duration(time.Second)})
	a.mustUpgrade(release(t, "1.0.0"))

	loadDuring(t, a, func() {
		_, stderr, hookBegan, err := a.upgradeWatching(release(t, "2.0.0"), "running before_cutover hook")
		took := time.Since(hookBegan)
		require.Equal(t, 3, exitCode(err), stderr)
		require.False(t, hookBegan.IsZero(), "the hook ran")
		t.Logf("before_cutover: rolled back %s after the hook began", took.Round(time.Millisecond))
		assert.Less(t, took, 5*time.Second)
		assert.Contains(t, stderr, "before_cutover hook /bin/sh (as user nobody): timed out after 1s; its process group was killed")
		assert.Contains(t, stderr, "as nobody")
		require.Eventually(t, func() bool { return len(liveWithMarker(t, before)) == 0 }, 30*time.Second, 20*time.Millisecond,
			"hook processes left: %v", liveWithMarker(t, before))
		requireServing(t, a, "1.0.0")

		res, stderr, hookBegan, err := a.upgradeWatching(release(t, "3.0.0"), "running after_cutover hook")
		took = time.Since(hookBegan)
		require.NoError(t, err, stderr)
		require.True(t, res.OK)
		t.Logf("after_cutover: swap done %s after the hook began; warning: %s", took.Round(time.Millisecond), res.Warning)
		assert.Less(t, took, 5*time.Second)
		assert.Contains(t, res.Warning, "after_cutover hook /bin/sh (as user nobody): timed out after 1s")
		require.Eventually(t, func() bool { return len(liveWithMarker(t, after)) == 0 }, 30*time.Second, 20*time.Millisecond,
			"hook processes left: %v", liveWithMarker(t, after))
		requireServing(t, a, "3.0.0")
	})
}
