package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type listedApp struct {
	App     string `json:"app"`
	State   string `json:"state"`
	Release string `json:"release"`
	Unit    string `json:"unit"`
}

// list runs `beamdeploy --json ARGS...` and returns the apps it listed by name.
func (a *app) list(args ...string) map[string]listedApp {
	a.t.Helper()
	out, err := exec.CommandContext(a.t.Context(), a.bin, append([]string{"--json"}, args...)...).Output()
	require.NoError(a.t, err)
	var msg struct {
		MessageType string      `json:"message_type"`
		Apps        []listedApp `json:"apps"`
	}
	require.NoError(a.t, json.Unmarshal(out, &msg), string(out))
	require.Equal(a.t, "apps", msg.MessageType)
	byName := map[string]listedApp{}
	for _, l := range msg.Apps {
		byName[l.App] = l
	}
	return byName
}

// list shows every app with its state; remove --purge leaves no unit,
// config, release or state behind; remove without --purge keeps the
// releases and state.
func TestSystemdListAndRemove(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	idle := newApp(t)

	apps := a.list("list")
	require.Contains(t, apps, a.name)
	assert.Equal(t, "serving", apps[a.name].State)
	assert.Equal(t, "1.0.0", apps[a.name].Release)
	assert.Equal(t, a.status().Active.Unit, apps[a.name].Unit)
	require.Contains(t, apps, idle.name)
	assert.Equal(t, "idle", apps[idle.name].State)
	// Status without an app lists every app, as list does. Other tests
	// create, swap and remove apps meanwhile, so this test's own apps are
	// compared whole and the others by name: every app that list shows
	// before and after status, status shows too.
	listed := a.list("status")
	after := a.list("list")
	for _, name := range []string{a.name, idle.name} {
		assert.Equal(t, apps[name], listed[name], "status without an app lists %s as list does", name)
	}
	for name := range apps {
		if _, ok := after[name]; ok {
			assert.Contains(t, listed, name, "status without an app lists every app")
		}
	}

	unit := apps[a.name].Unit
	out, err := a.run("remove", a.name, "--purge")
	require.NoError(t, err, out)
	for _, u := range []string{a.name + ".service", a.name + ".socket", unit} {
		assert.Equal(t, "not-found", show(u, "LoadState"), "%s is gone", u)
	}
	for _, p := range []string{
		"/etc/beamdeploy/" + a.name + ".json",
		"/etc/systemd/system/" + a.name + ".socket",
		"/etc/systemd/system/" + a.name + ".service",
		"/etc/systemd/system/sockets.target.wants/" + a.name + ".socket",
		"/etc/systemd/system/multi-user.target.wants/" + a.name + ".service",
		"/var/lib/beamdeploy/" + a.name,
		"/run/beamdeploy/" + a.name,
		"/var/lib/private/beamdeploy/" + a.name, // the dynamic user's $STATE_DIRECTORY lives below
	} {
		_, err := os.Lstat(p)
		assert.ErrorIs(t, err, os.ErrNotExist, "%s is gone", p)
	}
	_, err = a.get()
	assert.Error(t, err, "nothing listens on the removed app's address")
	assert.NotContains(t, a.list("list"), a.name)
	out, err = a.run("status", a.name)
	assert.Equal(t, 1, exitCode(err), out)
	assert.Contains(t, out, "no app named "+a.name)

	out, err = idle.run("remove", idle.name)
	require.NoError(t, err, out)
	assert.Equal(t, "not-found", show(idle.name+".service", "LoadState"))
	_, err = os.Stat(filepath.Join("/var/lib/beamdeploy", idle.name))
	assert.NoError(t, err, "without --purge the state is kept")
	assert.Contains(t, out, "--purge removes them")
}

// systemctl restart APP (to load a config change, or after a package
// upgrade) restarts the parent only: the same instance process keeps
// serving, nothing fails, and the new config applies to the next swap.
// systemctl stop APP still stops the app.
func TestSystemdParentRestartLeavesAppAlone(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	before := a.status()
	unit := before.Active.Unit
	pid, invocation := show(unit, "MainPID"), show(unit, "InvocationID")

	cfgPath := "/etc/beamdeploy/" + a.name + ".json"
	b, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	cfg["drain_timeout"] = "7s"
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, b, 0o644))

	loadDuring(t, a, func() {
		out, err := exec.Command("systemctl", "restart", a.name+".service").CombinedOutput()
		require.NoError(t, err, string(out))
		after := a.status()
		assert.NotEqual(t, before.ParentPID, after.ParentPID, "a new parent")
		require.NotNil(t, after.Active)
		assert.Equal(t, unit, after.Active.Unit)
		assert.Equal(t, pid, show(unit, "MainPID"), "the same instance process serves")
		assert.Equal(t, invocation, show(unit, "InvocationID"))
		requireServing(t, a, "1.0.0")
		res := a.mustUpgrade(release(t, "1.1.0"))
		assert.Equal(t, "7s", show(res.To.Unit, "TimeoutStopUSec"), "the next swap uses the new config")
	})
	requireServing(t, a, "1.1.0")

	out, err := exec.Command("systemctl", "stop", a.name+".service").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, u := range []string{a.name + "@blue.service", a.name + "@green.service"} {
		assert.NotEqual(t, "active", show(u, "ActiveState"), "stop stops the app: %s", u)
	}
}

// Artifacts as CI makes them: a tarball named app.tar.gz with --version,
// and one read from stdin; without --version the name is refused, naming
// the flag.
func TestSystemdUpgradeWithVersionFlagAndStdin(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	src, err := os.ReadFile(release(t, "1.0.0"))
	require.NoError(t, err)
	plain := filepath.Join(t.TempDir(), "app.tar.gz")
	require.NoError(t, os.WriteFile(plain, src, 0o644))

	out, err := a.run("upgrade", a.name, plain)
	assert.Equal(t, 2, exitCode(err), out)
	assert.Contains(t, out, "--version")

	out, err = a.run("upgrade", a.name, plain, "--version", "1.0.0")
	require.NoError(t, err, out)
	requireServing(t, a, "1.0.0")

	next, err := os.Open(release(t, "1.1.0"))
	require.NoError(t, err)
	defer next.Close()
	loadDuring(t, a, func() { // the swap from stdin is as zero-downtime as any
		cmd := exec.CommandContext(t.Context(), a.bin, "upgrade", a.name, "-", "--version", "1.1.0")
		cmd.Stdin = next
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
	})
	requireServing(t, a, "1.1.0")
}
