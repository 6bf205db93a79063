package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/config"
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
	log := filepath.Join(t.TempDir(), "hooks.log")
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
