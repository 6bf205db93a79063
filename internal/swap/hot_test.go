package swap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func TestHotUpgrade(t *testing.T) {
	rt := &fakeRuntime{}
	var saved []swap.State
	m := newMachine(rt, swap.Options{Save: func(s swap.State) error { saved = append(saved, s); return nil }})
	_, err := m.HotUpgrade(t.Context(), swap.Request{Release: "1.1.0"}, nil)
	require.ErrorIs(t, err, swap.ErrNoActive)
	assert.Empty(t, rt.Calls(), "nothing is touched without an active instance")

	_, err = m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	saved = nil
	res, err := m.HotUpgrade(t.Context(), swap.Request{Release: "1.1.0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, swap.KindHot, res.Kind)
	assert.Equal(t, "app@blue.service", res.To.Unit, "same unit")
	assert.Equal(t, res.From.PID+1, res.To.PID, "new process")
	assert.Equal(t, "1.1.0", res.To.Release)
	st := m.Status()
	assert.Equal(t, "app@blue.service", st.Active.Unit)
	assert.Equal(t, "1.1.0", st.Active.Release)
	assert.Equal(t, swap.KindHot, st.Last.Kind)
	require.NotNil(t, saved[0].Swap)
	assert.Equal(t, swap.PhaseHandover, saved[0].Swap.Phase, "the intent is saved before the handover")
	assert.Equal(t, swap.KindHot, saved[0].Swap.Kind)
	assert.Equal(t, []string{"start app@blue.service 1.0.0", "handover app@blue.service 1.1.0"}, rt.Calls())

	// The next blue-green swap goes to the other colour, from the new release.
	res, err = m.Swap(t.Context(), swap.Request{Release: "1.2.0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, swap.KindBlueGreen, res.Kind)
	assert.Equal(t, "1.1.0", res.From.Release)
	assert.Equal(t, "app@green.service", res.To.Unit)
}

func TestHotUpgradeFailureKeepsOldProcess(t *testing.T) {
	boom := errors.New("new process exited with status 3")
	rt := &fakeRuntime{handoverFn: func(context.Context, swap.Instance, string) error { return boom }}
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	before := m.Status().Active
	res, err := m.HotUpgrade(t.Context(), swap.Request{Release: "1.1.0"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	require.ErrorIs(t, err, boom)
	assert.False(t, res.OK)
	assert.Equal(t, before, m.Status().Active)
	assert.NotContains(t, rt.Calls(), "stop app@blue.service", "the serving process is never stopped")
}

func TestConvergeHotUpgradeInterrupted(t *testing.T) {
	old := inst("app@blue.service", "1.0.0", "b1", 10)
	in := &swap.Intent{ID: "h1", Kind: swap.KindHot, Phase: swap.PhaseHandover, Release: "1.1.0", From: &old}
	st := swap.State{Active: &old, Swap: in}

	took := old
	took.Release = "1.1.0" // the parent reads the release a hot-upgraded unit runs
	p := swap.Converge(st, []swap.Instance{took})
	require.NotNil(t, p.Keep)
	assert.Equal(t, "1.1.0", p.Keep.Release)
	assert.True(t, p.Interrupted.OK, "the handover finished")

	p = swap.Converge(st, []swap.Instance{old})
	assert.Equal(t, "1.0.0", p.Keep.Release)
	assert.False(t, p.Interrupted.OK, "the handover did not happen")
	assert.Empty(t, p.Stop)
}
