package parent

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingUnits answers Unit with what it is set to, and counts the calls.
type countingUnits struct {
	mu    sync.Mutex
	u     units.Unit
	calls int
	block bool // answer only when ctx ends
}

func (c *countingUnits) Unit(ctx context.Context, _ string) (units.Unit, error) {
	c.mu.Lock()
	c.calls++
	u, block := c.u, c.block
	c.mu.Unlock()
	if block {
		<-ctx.Done()
		return units.Unit{}, ctx.Err()
	}
	return u, nil
}

func (c *countingUnits) set(u units.Unit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.u = u
}

func (c *countingUnits) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// sleeper starts a real process that runs until the test kills it.
func sleeper(t *testing.T) *exec.Cmd {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // ours; it may be gone already
		_ = cmd.Wait()         // the kill is the expected end
	})
	return cmd
}

// Status asks systemd about the active unit only when the answer it has
// may be stale: its main process exited (systemd restarted the unit), the
// parent's record changed, or the answer is liveMaxAge old.
func TestLiveActiveAsksOnlyWhenStale(t *testing.T) {
	first := sleeper(t)
	um := &countingUnits{u: units.Unit{ActiveState: "active", MainPID: first.Process.Pid, InvocationID: "inv1"}}
	l := newLiveActive(um)
	now := time.Now()
	l.now = func() time.Time { return now }
	record := swap.Instance{Unit: "hello@blue.service", PID: first.Process.Pid, InvocationID: "inv1"}

	status := func() swap.Instance {
		a := record
		l.apply(t.Context(), &a)
		return a
	}
	assert.Equal(t, first.Process.Pid, status().PID)
	assert.Equal(t, 1, um.count(), "the first status asks systemd")
	for range 5 {
		assert.Equal(t, first.Process.Pid, status().PID)
	}
	assert.Equal(t, 1, um.count(), "while the main process runs, status answers from memory")

	// systemd restarted the unit: a new process and invocation.
	second := sleeper(t)
	since := now.Add(time.Second)
	um.set(units.Unit{ActiveState: "active", MainPID: second.Process.Pid, InvocationID: "inv2", Since: since})
	require.NoError(t, first.Process.Kill())
	_ = first.Wait() // killed
	got := status()
	assert.Equal(t, 2, um.count(), "the main process exited: status asks again")
	assert.Equal(t, second.Process.Pid, got.PID)
	assert.Equal(t, "inv2", got.InvocationID)
	assert.Equal(t, since, got.Since)
	status()
	assert.Equal(t, 2, um.count())

	now = now.Add(liveMaxAge)
	status()
	assert.Equal(t, 3, um.count(), "an answer liveMaxAge old is asked again")

	record.PID = second.Process.Pid // a hot upgrade, say
	status()
	assert.Equal(t, 4, um.count(), "the parent's record changed")
}

// When systemd does not answer in time, status answers with the parent's
// record, within liveAskTimeout.
func TestLiveActiveDoesNotWaitForSystemd(t *testing.T) {
	um := &countingUnits{block: true}
	l := newLiveActive(um)
	a := swap.Instance{Unit: "hello@blue.service", PID: 42, InvocationID: "inv1"}
	began := time.Now()
	l.apply(t.Context(), &a)
	assert.Less(t, time.Since(began), liveAskTimeout+5*time.Second)
	assert.Equal(t, swap.Instance{Unit: "hello@blue.service", PID: 42, InvocationID: "inv1"}, a)
}
