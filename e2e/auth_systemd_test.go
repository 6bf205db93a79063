package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// asUser runs beamdeploy as an unprivileged user.
func (a *app) asUser(user string, args ...string) (string, error) {
	out, err := exec.CommandContext(a.t.Context(), "runuser", append([]string{"-u", user, "--", a.bin}, args...)...).CombinedOutput()
	return string(out), err
}

// worldReadable copies a tarball where any user can read it.
func worldReadable(t *testing.T, tarball string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bdtest-pub-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // cleanup
	require.NoError(t, os.Chmod(dir, 0o755))
	b, err := os.ReadFile(tarball)
	require.NoError(t, err)
	p := filepath.Join(dir, filepath.Base(tarball))
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

func TestSystemdUnprivilegedUserIsRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	v2 := worldReadable(t, release(t, "1.1.0"))

	out, err := a.asUser("nobody", "upgrade", a.name, v2)
	require.Error(t, err)
	assert.Contains(t, out, "permission denied")
	assert.Contains(t, out, "beamdeploy group")
	out, err = a.asUser("nobody", "handoff", a.name, "list")
	require.Error(t, err)
	assert.Contains(t, out, "permission denied")
	requireServing(t, a, "1.0.0")

	// Members of the beamdeploy group may deploy.
	require.NoError(t, exec.Command("groupadd", "-f", "--system", "beamdeploy").Run())
	user := "bdtest" + strings.TrimPrefix(a.name, "e2e")
	require.NoError(t, exec.Command("useradd", "--system", "--no-create-home", "-G", "beamdeploy", user).Run())
	t.Cleanup(func() { _ = exec.Command("userdel", user).Run() }) // cleanup
	out, err = a.asUser(user, "upgrade", a.name, v2)
	require.NoError(t, err, out)
	requireServing(t, a, "1.1.0")
}

func TestSystemdInstancesReachOnlyTheirOwnApp(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--user", "nobody", "--force")
	out, err := a.run("handoff", a.name, "put", "secret", "s3")
	require.NoError(t, err, out)

	// The app's own instances, running as nobody, use the control API: the
	// request counter crosses a swap through the handoff store.
	a.mustUpgrade(release(t, "1.0.0"))
	for range 5 {
		a.requests()
	}
	a.mustUpgrade(release(t, "1.1.0"))
	require.Eventually(t, func() bool { n, _ := a.requests(); return n > 5 }, 30*time.Second, 100*time.Millisecond)

	// Another app's instance, as the same user, is refused.
	other := "bdother" + strings.TrimPrefix(a.name, "e2e") + "@blue.service"
	cmd := exec.CommandContext(t.Context(), "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--unit="+other,
		"-p", "User=nobody", "-p", "Environment=BEAMDEPLOY_JSON=0", a.bin, "handoff", a.name, "get", "secret")
	b, err := cmd.CombinedOutput()
	require.Error(t, err, "another app's instance read the handoff store: %s", b)
	assert.Contains(t, string(b), "permission denied")
	assert.NotContains(t, string(b), "s3")

	// ...and gets no listening sockets from the fd broker.
	cmd = exec.CommandContext(t.Context(), "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--unit=fds-"+other,
		"-p", "User=nobody", a.bin, "exec", a.name, "--", "/bin/true")
	b, err = cmd.CombinedOutput()
	require.Error(t, err, "another app's instance got the listeners: %s", b)
	assert.Contains(t, string(b), "get listening sockets")
}
