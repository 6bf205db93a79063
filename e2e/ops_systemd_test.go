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
	out, err := exec.Command("systemctl", "status", "--no-pager", a.name+".service").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "serving "+a.name+" 1.1.0 on "+st.Active.Unit, "systemctl status shows the live release")
	assert.Contains(t, string(out), "last swap")

	out2, err := a.run("logs", a.name, "-n", "200")
	require.NoError(t, err)
	assert.Contains(t, out2, "parent ready")
	assert.Contains(t, out2, "hello starting", "both colours' journals are included")
	out, err = exec.Command("journalctl", "--no-pager", "BEAMDEPLOY_APP="+a.name, "BEAMDEPLOY_RELEASE=1.1.0").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(out), "hello starting", "instance lines carry structured fields")
	require.Eventually(t, func() bool {
		out, _ = exec.Command("journalctl", "--no-pager", "BEAMDEPLOY_SWAP="+res.ID).CombinedOutput()
		return strings.Contains(string(out), "swap done") && strings.Contains(string(out), "hello starting")
	}, 5*time.Second, 100*time.Millisecond, "one swap's parent and instance lines by its id: %s", out)

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
