package parent

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func newHotJob(unit, id, mode string) *hotJob {
	return &hotJob{
		unit:    unit,
		order:   control.HotOrder{MessageType: control.TypeHotOrder, ID: id, Release: "1.1.0", Mode: mode, Timeout: time.Second},
		report:  make(chan control.HotReport, 1),
		verdict: make(chan control.HotVerdict, 1),
	}
}

// TestHotOrderPollAndReport: an order reaches the instance polling for
// it, only that instance may report on it, once, and the report gets the
// verdict the hot upgrade gives.
func TestHotOrderPollAndReport(t *testing.T) {
	a := newAuditServer(t)
	ctx := t.Context()
	const blue = "hello@blue.service"
	a.as(4242, access{instance: true, unit: blue})

	polled := make(chan control.HotOrder, 1)
	go func() {
		o, err := a.client.HotWait(ctx, "hello@green.service") // an instance polls for itself, whatever it names
		assert.NoError(t, err)
		polled <- o
	}()
	job := newHotJob(blue, "h1", control.HotInPlace)
	require.True(t, a.hot.dispatch(ctx, blue, job), "the order reaches the polling instance")
	select {
	case o := <-polled:
		assert.Equal(t, "h1", o.ID)
		assert.Equal(t, control.HotInPlace, o.Mode)
	case <-time.After(30 * time.Second):
		t.Fatal("the poll did not get the order")
	}

	a.as(4243, access{instance: true, unit: "hello@green.service"})
	_, err := a.client.HotReport(ctx, control.HotReport{ID: "h1", OK: true, PID: 7})
	assert.ErrorIs(t, err, control.ErrPermissionDenied, "another instance may not report on blue's order")

	a.as(4242, access{instance: true, unit: blue})
	verdict := make(chan control.HotVerdict, 1)
	go func() {
		v, err := a.client.HotReport(ctx, control.HotReport{ID: "h1", OK: true, PID: 7})
		assert.NoError(t, err)
		verdict <- v
	}()
	select {
	case rep := <-job.report:
		assert.Equal(t, control.HotReport{ID: "h1", OK: true, PID: 7}, rep)
	case <-time.After(30 * time.Second):
		t.Fatal("the report did not reach the hot upgrade")
	}
	job.verdict <- control.HotVerdict{Proceed: true}
	assert.Equal(t, control.HotVerdict{Proceed: true}, <-verdict)

	_, err = a.client.HotReport(ctx, control.HotReport{ID: "h1", OK: false, Error: "again"})
	assert.ErrorIs(t, err, control.ErrBadRequest, "a second report on the same order")
	a.hot.done("h1")
	v, err := a.client.HotReport(ctx, control.HotReport{ID: "h1", OK: true, PID: 7})
	require.NoError(t, err)
	assert.False(t, v.Proceed)
	assert.Contains(t, v.Error, "no hot upgrade h1 is running")

	a.as(4244, access{})
	_, err = a.client.HotWait(ctx, blue)
	assert.ErrorIs(t, err, control.ErrPermissionDenied, "a stranger cannot take the poll")
}

// TestHotDispatchWithoutPoll: no instance polls, so the order is not
// given; the hot upgrade says so rather than wait.
func TestHotDispatchWithoutPoll(t *testing.T) {
	var b hotBoard
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	assert.False(t, b.dispatch(ctx, "hello@blue.service", newHotJob("hello@blue.service", "h2", control.HotSuccessor)))
	assert.Nil(t, b.job("h2"), "an order nobody took is not running")
}

func TestAwaitReport(t *testing.T) {
	inst := swap.Instance{Unit: "hello@blue.service", PID: 40}
	ctx := t.Context()

	job := newHotJob(inst.Unit, "h3", control.HotInPlace)
	job.report <- control.HotReport{ID: "h3", OK: false, Error: "beam_reply.beam: Not a BEAM file"}
	_, err := awaitReport(ctx, inst, job, time.Now().Add(time.Minute))
	require.ErrorContains(t, err, "could not load release 1.1.0 in place (the old code keeps serving): beam_reply.beam: Not a BEAM file")

	job = newHotJob(inst.Unit, "h4", control.HotSuccessor)
	job.report <- control.HotReport{ID: "h4", OK: false, Error: "exec: no such file"}
	_, err = awaitReport(ctx, inst, job, time.Now().Add(time.Minute))
	require.ErrorContains(t, err, "the new process did not take over hello@blue.service (the old one keeps serving): exec: no such file")

	job = newHotJob(inst.Unit, "h5", control.HotSuccessor)
	job.report <- control.HotReport{ID: "h5", OK: true, PID: 41}
	rep, err := awaitReport(ctx, inst, job, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 41, rep.PID)

	job = newHotJob(inst.Unit, "h6", control.HotSuccessor)
	_, err = awaitReport(ctx, inst, job, time.Now().Add(50*time.Millisecond))
	require.ErrorContains(t, err, "did not report on the hot upgrade to 1.1.0")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = awaitReport(cctx, inst, job, time.Now().Add(time.Minute))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestWaitExit(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	require.NoError(t, cmd.Start())
	go func() { _ = cmd.Wait() }()
	require.NoError(t, waitExit(t.Context(), cmd.Process.Pid, 30*time.Second))

	long := exec.Command("sleep", "30")
	require.NoError(t, long.Start())
	t.Cleanup(func() { _ = long.Process.Kill(); _ = long.Wait() })
	require.ErrorContains(t, waitExit(t.Context(), long.Process.Pid, 50*time.Millisecond), "did not exit")
}
