package e2e_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An upgrade whose CLI gets SIGHUP mid-swap (its ssh session dropped) and
// whose output then goes nowhere completes: the CLI stays connected, the
// swap is not rolled back, and the new release serves.
func TestSystemdSIGHUPDoesNotRollBack(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	slow := release(t, "1.1.0-slow", "HELLO_READY_DELAY=5s") // the phase the test waits for lasts 5 s
	loadDuring(t, a, func() {
		cli := exec.Command(a.bin, "upgrade", a.name, slow)
		stderr, err := cli.StderrPipe()
		require.NoError(t, err)
		cli.Stdout = nil // /dev/null
		require.NoError(t, cli.Start())
		require.Eventually(t, func() bool { return a.status().Phase.String() == "starting" }, 60*time.Second, 20*time.Millisecond)
		require.NoError(t, cli.Process.Signal(syscall.SIGHUP))
		require.NoError(t, stderr.Close()) // the terminal is gone: writes to stderr fail with EPIPE
		require.NoError(t, cli.Wait(), "the CLI follows the swap to its end")
	})
	st := a.status()
	require.NotNil(t, st.LastSwap)
	assert.True(t, st.LastSwap.OK, "%+v", st.LastSwap)
	requireServing(t, a, "1.1.0")
}

// detach runs `beamdeploy --json upgrade APP TARBALL --detach` and returns
// its detached message.
func (a *app) detach(tarball string) control.Detached {
	a.t.Helper()
	cmd := exec.CommandContext(a.t.Context(), a.bin, "--json", "upgrade", a.name, tarball, "--detach")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(a.t, cmd.Run(), stderr.String())
	var d control.Detached
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		var m control.Detached
		if json.Unmarshal([]byte(line), &m) == nil && m.MessageType == control.TypeDetached {
			d = m
		}
	}
	require.NotEmpty(a.t, d.Swap, "stdout: %s", stdout.String())
	return d
}

// `upgrade --detach` + `wait` report what a foreground upgrade reports,
// with the same exit code: 0 for a good release, 3 (rolled back) for one
// that crashes at start. `wait` on an ended swap reports it at once.
func TestSystemdDetachAndWait(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	for _, row := range []struct {
		name, version string
		env           []string
		code          int
	}{
		{"good", "1.1.0-slow", []string{"HELLO_READY_DELAY=2s"}, 0},
		{"crash", "1.2.0-crash", []string{"HELLO_CRASH_AT_START=1"}, 3},
		{"good again", "1.2.0", nil, 0},
	} {
		tarball := release(t, row.version, row.env...)
		loadDuring(t, a, func() {
			d := a.detach(tarball)
			assert.Equal(t, row.version, d.Release, row.name)
			res, stderr, err := a.swapCommand("wait", d.Swap)
			require.Equal(t, row.code, exitCode(err), "%s: wait: %s", row.name, stderr)
			if row.code == 0 {
				assert.True(t, res.OK, row.name)
				assert.Equal(t, d.Swap, res.ID, row.name)
				assert.Equal(t, row.version, res.Release, row.name)
			} else {
				assert.Contains(t, stderr, "rolled back", row.name)
				assert.Contains(t, stderr, "crashing at start", "%s: the unit's journal lines are reported", row.name)
			}
			t0 := time.Now()
			again, stderr2, err := a.swapCommand("wait", d.Swap)
			assert.Equal(t, row.code, exitCode(err), "%s: wait on the ended swap: %s", row.name, stderr2)
			assert.Equal(t, res, again, row.name)
			assert.Less(t, time.Since(t0), 5*time.Second, "%s: an ended swap is reported at once", row.name)
			t.Logf("%s: swap %s, wait exit %d; again in %s", row.name, d.Swap, row.code, time.Since(t0).Round(time.Millisecond))
			if row.code != 0 {
				_, fg, err := a.upgrade(tarball)
				assert.Equal(t, row.code, exitCode(err), "%s: the foreground upgrade: %s", row.name, fg)
			}
		})
	}
	requireServing(t, a, "1.2.0")
	_, stderr, err := a.swapCommand("wait", "20200101T000000-nosuchswap")
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, stderr, "no swap 20200101T000000-nosuchswap")
}
