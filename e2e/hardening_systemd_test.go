package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// show returns a unit property as systemctl show prints it, "" if that
// fails (no require: it runs inside Eventually conditions too).
func show(unit, prop string) string {
	out, _ := exec.Command("systemctl", "show", "-P", prop, unit).Output()
	return strings.TrimSpace(string(out))
}

func TestSystemdInstancesHardenedAndOverridable(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	unit := a.status().Active.Unit
	assert.Equal(t, "yes", show(unit, "NoNewPrivileges"))
	assert.Equal(t, "yes", show(unit, "PrivateTmp"))
	assert.Equal(t, "yes", show(unit, "PrivateDevices"))
	assert.Equal(t, "yes", show(unit, "DynamicUser"))
	assert.Equal(t, "strict", show(unit, "ProtectSystem"), "DynamicUser=yes makes it strict")
	out, _ := exec.Command("systemd-analyze", "security", "--no-pager", unit).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("systemd-analyze security %s: %s", unit, lines[len(lines)-1])

	// A drop-in for APP@.service undoes a setting for the next instance.
	dir := filepath.Join("/etc/systemd/system", a.name+"@.service.d")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // cleanup
	require.NoError(t, os.WriteFile(filepath.Join(dir, "override.conf"), []byte("[Service]\nPrivateDevices=no\nEnvironment=HELLO_EXTRA=1\n"), 0o644))
	require.NoError(t, exec.Command("systemctl", "daemon-reload").Run())
	a.mustUpgrade(release(t, "1.1.0"))
	unit = a.status().Active.Unit
	assert.Equal(t, "no", show(unit, "PrivateDevices"), "the drop-in overrides the default")
	assert.Equal(t, "yes", show(unit, "NoNewPrivileges"), "other defaults stay")
	assert.Contains(t, show(unit, "Environment"), "HELLO_EXTRA=1")
	requireServing(t, a, "1.1.0")
}
