package e2e_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/loadgen"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// activeInstances lists the app's instance units that have processes:
// active, or still starting or stopping (a draining instance still
// serves).
func (a *app) activeInstances() []string {
	var out []string
	for _, c := range []string{"blue", "green"} {
		u := a.name + "@" + c + ".service"
		b, _ := exec.Command("systemctl", "is-active", u).Output()
		switch strings.TrimSpace(string(b)) {
		case "active", "activating", "deactivating", "reloading":
			out = append(out, u)
		}
	}
	return out
}

// TestSystemdParentKilledMidSwapConverges kills the parent with SIGKILL in
// each phase of a swap, under load, and checks that the restarted parent
// converges to exactly one serving instance without a failed request.
func TestSystemdParentKilledMidSwapConverges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase   swap.Phase
		extra   []string
		hooks   config.Hooks
		oldEnv  []string // knobs of the old release
		newEnv  []string // knobs of the new release
		serving string   // release serving after convergence
	}{
		{phase: swap.PhaseStarting, newEnv: []string{"HELLO_READY_DELAY=5s"}, serving: "1.0.0"},
		{phase: swap.PhaseSettling, extra: []string{"--settle", "4s", "--force"}, serving: "1.0.0"},
		{phase: swap.PhaseCutover, hooks: config.Hooks{BeforeCutover: []string{"/bin/sleep", "3"}}, serving: "1.0.0"},
		{phase: swap.PhaseDraining, extra: []string{"--drain-timeout", "3s", "--force"}, oldEnv: []string{"HELLO_IGNORE_SIGTERM=1"}, serving: "1.1.0"},
		{phase: swap.PhaseAfterCutover, hooks: config.Hooks{AfterCutover: []string{"/bin/sleep", "3"}}, serving: "1.1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.phase.String(), func(t *testing.T) {
			a := newApp(t, tt.extra...)
			if len(tt.hooks.BeforeCutover)+len(tt.hooks.AfterCutover) > 0 {
				a.setHooks(tt.hooks)
			}
			a.mustUpgrade(release(t, "1.0.0-old", append(tt.oldEnv, "X=1")...))
			next := release(t, "1.1.0-new", append(tt.newEnv, "X=1")...)

			ctx, stop := context.WithCancel(t.Context())
			var st loadgen.Stats
			var wg sync.WaitGroup
			wg.Go(func() {
				st = loadgen.Run(ctx, loadgen.Options{URL: "http://" + a.addr + "/", KeepAlive: true, Workers: 2, Duration: time.Minute, MaxRequests: 500_000})
			})
			wg.Go(func() { _, _, _ = a.upgrade(next) }) // fails when its parent dies
			require.Eventually(t, func() bool { return a.status().Phase == tt.phase }, 60*time.Second, 20*time.Millisecond)
			interrupted := a.status()
			pid := interrupted.ParentPID
			require.NoError(t, exec.Command("kill", "-9", strconv.Itoa(pid)).Run())

			a.restartedParent(pid)
			require.Eventually(t, func() bool { return len(a.activeInstances()) == 1 }, 60*time.Second, 200*time.Millisecond,
				"converges to exactly one active instance")
			time.Sleep(300 * time.Millisecond)
			stop()
			wg.Wait()
			assert.Len(t, a.activeInstances(), 1)
			assert.Zero(t, st.Failed, "errors: %v", st.Errors)
			requireServing(t, a, tt.serving)
			after := a.status()
			require.NotNil(t, after.Active)
			assert.Equal(t, a.activeInstances()[0], after.Active.Unit, "the parent's view matches systemd's")
			require.NotNil(t, after.LastSwap)
			assert.Equal(t, interrupted.Swap, after.LastSwap.ID, "the interrupted swap is recorded")
			assert.Equal(t, tt.serving == "1.1.0", after.LastSwap.OK, "%+v", after.LastSwap)
		})
	}
}
