package e2e_test

import (
	"context"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// busyCores keeps every CPU busy with a shell loop in a process of its own
// (at most for bound) until the test ends: a busy machine, where systemd
// needs longer to unload a unit that just stopped. The loop is the shell
// itself, killed by pid: killing a timeout(1) around it with SIGKILL left
// the loops running for the rest of the suite.
func busyCores(t *testing.T, bound time.Duration) {
	t.Helper()
	for range runtime.NumCPU() {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			cancel()       // kills the shell, ours by pid, unless its bound did
			_ = cmd.Wait() // the kill is the expected end
		})
	}
}

// Back-to-back swaps reuse a colour the moment the previous swap stopped
// it: 50 `beamdeploy reload` with no pause, under load, on a machine whose
// cores are all busy. Every one succeeds and no request fails. Not
// parallel: it loads the whole machine.
func TestSystemdBackToBackReloadsOnBusyMachine(t *testing.T) {
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	busyCores(t, 10*time.Minute)
	const reloads = 50
	ok := 0
	begin := time.Now()
	loadDuring(t, a, func() {
		for i := range reloads {
			res, stderr, err := a.swapCommand("reload")
			if !assert.NoError(t, err, "reload %d of %d: %s", i+1, reloads, stderr) || !assert.True(t, res.OK, "reload %d: %+v", i+1, res) {
				break
			}
			ok++
		}
	})
	t.Logf("%d of %d back-to-back reloads succeeded in %s", ok, reloads, time.Since(begin).Round(time.Millisecond))
	assert.Equal(t, reloads, ok)
	assert.Len(t, a.activeInstances(), 1)
	requireServing(t, a, "1.0.0")
}
