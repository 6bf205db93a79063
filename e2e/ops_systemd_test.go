package e2e_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSystemdStatusCheckAndLogs(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	res := a.mustUpgrade(release(t, "1.1.0"))
	st := a.status()
	// systemd takes the parent's STATUS= and journald stores lines when
	// each gets to it: on a busy machine, after the swap returned.
	var out []byte
	var err error
	assert.Eventually(t, func() bool {
		out, err = exec.Command("systemctl", "status", "--no-pager", a.name+".service").CombinedOutput()
		return err == nil && strings.Contains(string(out), "serving "+a.name+" 1.1.0 on "+st.Active.Unit) && strings.Contains(string(out), "last swap")
	}, 30*time.Second, 200*time.Millisecond, "systemctl status shows the live release and the last swap: %v %s", err, out)
	var logs string
	assert.Eventually(t, func() bool {
		logs, err = a.run("logs", a.name, "-n", "200")
		return err == nil && strings.Contains(logs, "parent ready") && strings.Contains(logs, "hello starting")
	}, 30*time.Second, 200*time.Millisecond, "beamdeploy logs shows the parent's and both colours' journals: %v %s", err, logs)
	assert.Eventually(t, func() bool {
		out, err = exec.Command("journalctl", "--no-pager", "BEAMDEPLOY_APP="+a.name, "BEAMDEPLOY_RELEASE=1.1.0").CombinedOutput()
		return err == nil && strings.Contains(string(out), "hello starting")
	}, 30*time.Second, 200*time.Millisecond, "instance lines carry structured fields: %v %s", err, out)
	require.Eventually(t, func() bool {
		out, _ = exec.Command("journalctl", "--no-pager", "BEAMDEPLOY_SWAP="+res.ID).CombinedOutput()
		return strings.Contains(string(out), "swap done") && strings.Contains(string(out), "hello starting")
	}, 30*time.Second, 100*time.Millisecond, "one swap's parent and instance lines by its id: %s", out)

	check, err := a.run("check", a.name)
	require.NoError(t, err, check)
	path := config.Paths{}.Config(a.name)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	bad := strings.Replace(string(b), `"exec"`, `"exce"`, 1)
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
	check, err = a.run("check", a.name)
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, check, path+":")
	assert.Contains(t, check, `unknown field "exce"`)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}
