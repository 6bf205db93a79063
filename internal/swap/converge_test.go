package swap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func TestIntentSavedBeforeEachPhase(t *testing.T) {
	rt := &fakeRuntime{}
	var saved []swap.State
	m := newMachine(rt, swap.Options{Settle: time.Millisecond, Save: func(s swap.State) error { saved = append(saved, s); return nil },
		Hooks: swap.Hooks{AfterCutover: func(context.Context, swap.Transition) error { return nil }}})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	saved = nil
	_, err = m.Swap(t.Context(), swap.Request{Release: "1.1.0"}, nil)
	require.NoError(t, err)

	var phases []swap.Phase
	for _, s := range saved[:len(saved)-1] {
		require.NotNil(t, s.Swap, "every save during the swap carries the intent")
		assert.Equal(t, "swap-2", s.Swap.ID)
		assert.Equal(t, "app@blue.service", s.Swap.From.Unit)
		phases = append(phases, s.Swap.Phase)
	}
	assert.Equal(t, []swap.Phase{swap.PhaseStarting, swap.PhaseSettling, swap.PhaseCutover, swap.PhaseDraining, swap.PhaseAfterCutover}, phases)
	starting, settling, draining := saved[0].Swap, saved[1].Swap, saved[3].Swap
	assert.Equal(t, swap.Green, starting.Color)
	assert.Equal(t, "1.1.0", starting.Release)
	assert.Nil(t, starting.To, "the new instance is recorded only once it is started")
	assert.Equal(t, "app@green.service", settling.To.Unit)
	assert.Equal(t, "app@blue.service", saved[2].Active.Unit, "active flips only at the commit")
	assert.True(t, draining.Committed())
	assert.Equal(t, "app@green.service", saved[3].Active.Unit)
	last := saved[len(saved)-1]
	assert.Nil(t, last.Swap, "the intent is cleared when the swap ends")
	assert.Equal(t, "swap-2", last.Last.ID)
}

func TestSettleWindow(t *testing.T) {
	died := errors.New("exited with status 3")
	rt := &fakeRuntime{checkFn: func(_ context.Context, inst swap.Instance) error {
		if inst.Release == "bad" {
			return died
		}
		return nil
	}}
	m := newMachine(rt, swap.Options{Settle: 10 * time.Millisecond})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	_, err = m.Swap(t.Context(), swap.Request{Release: "bad"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	require.ErrorIs(t, err, swap.ErrUnsettled)
	require.ErrorIs(t, err, died)
	var rb *swap.RollbackError
	require.ErrorAs(t, err, &rb)
	assert.Equal(t, swap.PhaseSettling, rb.Phase)
	assert.Equal(t, []string{"start app@blue.service 1.0.0", "check app@blue.service",
		"start app@green.service bad", "check app@green.service", "stop app@green.service"}, rt.Calls())
	assert.Equal(t, "app@blue.service", m.Status().Active.Unit)

	// Without a settle window nothing is checked.
	rt = &fakeRuntime{}
	_, err = newMachine(rt, swap.Options{}).Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"start app@blue.service 1.0.0"}, rt.Calls())
}

func inst(unit, release, invocation string, since int) swap.Instance {
	c := swap.Blue
	if unit == "app@green.service" {
		c = swap.Green
	}
	return swap.Instance{Unit: unit, Color: c, Release: release, InvocationID: invocation, Since: time.Unix(int64(since), 0)}
}

func TestConverge(t *testing.T) {
	blue := inst("app@blue.service", "1.0.0", "b1", 10)
	green := inst("app@green.service", "1.1.0", "g1", 20)
	blueRestarted := inst("app@blue.service", "1.0.0", "b2", 30)
	greenOther := inst("app@green.service", "0.9.0", "g9", 40) // same unit name, not ours
	intent := func(p swap.Phase, to *swap.Instance) *swap.Intent {
		return &swap.Intent{ID: "s1", Phase: p, Release: "1.1.0", Color: swap.Green, From: &blue, To: to}
	}
	uncommitted := func(p swap.Phase, to *swap.Instance) swap.State {
		return swap.State{Active: &blue, Swap: intent(p, to)}
	}
	committed := func(p swap.Phase) swap.State { return swap.State{Active: &green, Swap: intent(p, &green)} }

	tests := []struct {
		name       string
		st         swap.State
		running    []swap.Instance
		keep       string // unit:invocation, "" for none
		stop       []string
		start      string
		wantOK     bool // of the interrupted swap
		wantResult bool
	}{
		{"idle, active running", swap.State{Active: &blue}, []swap.Instance{blue}, "app@blue.service:b1", nil, "", false, false},
		{"idle, active restarted by systemd", swap.State{Active: &blue}, []swap.Instance{blueRestarted}, "app@blue.service:b2", nil, "", false, false},
		{"idle, nothing running: last active release", swap.State{Active: &green}, nil, "", nil, "1.1.0", false, false},
		{"nothing ever active", swap.State{}, nil, "", nil, "", false, false},
		{"no state: newest running kept", swap.State{}, []swap.Instance{green, blue}, "app@green.service:g1", []string{"app@blue.service"}, "", false, false},
		{"starting, new not recorded yet: abort", uncommitted(swap.PhaseStarting, nil), []swap.Instance{blue, green}, "app@blue.service:b1", []string{"app@green.service"}, "", false, true},
		{"settling: abort", uncommitted(swap.PhaseSettling, &green), []swap.Instance{green, blue}, "app@blue.service:b1", []string{"app@green.service"}, "", false, true},
		{"cutover: abort", uncommitted(swap.PhaseCutover, &green), []swap.Instance{blue, green}, "app@blue.service:b1", []string{"app@green.service"}, "", false, true},
		{"cutover, old gone: new serves", uncommitted(swap.PhaseCutover, &green), []swap.Instance{green}, "app@green.service:g1", nil, "", true, true},
		{"draining: finish", committed(swap.PhaseDraining), []swap.Instance{blue, green}, "app@green.service:g1", []string{"app@blue.service"}, "", true, true},
		{"after-cutover: finish", committed(swap.PhaseAfterCutover), []swap.Instance{green}, "app@green.service:g1", nil, "", true, true},
		{"draining, new gone: old serves", committed(swap.PhaseDraining), []swap.Instance{blue}, "app@blue.service:b1", nil, "", false, true},
		{"draining, nothing running: start the new release", committed(swap.PhaseDraining), nil, "", nil, "1.1.0", false, true},
		{"starting, nothing running: start the old release", uncommitted(swap.PhaseStarting, nil), nil, "", nil, "1.0.0", false, true},
		{"unknown unit under a recorded name is not ours", swap.State{Active: &green}, []swap.Instance{greenOther, blue}, "app@green.service:g9", []string{"app@blue.service"}, "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := swap.Converge(tc.st, tc.running)
			if tc.keep == "" {
				assert.Nil(t, p.Keep)
			} else if assert.NotNil(t, p.Keep) {
				assert.Equal(t, tc.keep, p.Keep.Unit+":"+p.Keep.InvocationID)
			}
			var stop []string
			for _, u := range p.Stop {
				stop = append(stop, u.Unit)
			}
			assert.Equal(t, tc.stop, stop)
			assert.Equal(t, tc.start, p.Start)
			if !tc.wantResult {
				assert.Nil(t, p.Interrupted)
				return
			}
			require.NotNil(t, p.Interrupted)
			assert.Equal(t, "s1", p.Interrupted.ID)
			assert.Equal(t, tc.wantOK, p.Interrupted.OK, "%+v", p.Interrupted)
			assert.Equal(t, !tc.wantOK, p.Interrupted.Error != "")
		})
	}
}

// Converge decides the same whatever order systemd lists the units in.
func TestConvergeOrderIndependent(t *testing.T) {
	a, b := inst("app@blue.service", "1.0.0", "b1", 10), inst("app@green.service", "1.1.0", "g1", 20)
	for _, st := range []swap.State{{}, {Active: &a}, {Active: &b}} {
		p1, p2 := swap.Converge(st, []swap.Instance{a, b}), swap.Converge(st, []swap.Instance{b, a})
		assert.Equal(t, p1.Keep, p2.Keep)
	}
}

// A parent that died while the very first instance was starting keeps it
// (nothing else can serve) and records the swap as finished.
func TestConvergeInterruptedFirstStart(t *testing.T) {
	blue := inst("app@blue.service", "1.0.0", "b1", 10)
	st := swap.State{Swap: &swap.Intent{ID: "s1", Phase: swap.PhaseStarting, Release: "1.0.0", Color: swap.Blue}}
	p := swap.Converge(st, []swap.Instance{blue})
	require.NotNil(t, p.Keep)
	assert.Equal(t, "app@blue.service", p.Keep.Unit)
	assert.True(t, p.Interrupted.OK, "%+v", p.Interrupted)
	assert.Empty(t, p.Start)
}
