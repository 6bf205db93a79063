package swap_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRuntime records calls; its func fields script the behaviour.
type fakeRuntime struct {
	mu      sync.Mutex
	calls   []string
	startFn func(ctx context.Context, c swap.Color, rel string) error
	checkFn func(ctx context.Context, inst swap.Instance) error

	handoverFn func(ctx context.Context, inst swap.Instance, rel string) error
	stopFn     func(ctx context.Context, inst swap.Instance) (bool, error)
}

func (f *fakeRuntime) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeRuntime) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeRuntime) Start(ctx context.Context, c swap.Color, rel string) (swap.Instance, error) {
	inst := swap.Instance{Unit: "app@" + string(c) + ".service", Color: c, Release: rel, PID: 100}
	f.record("start " + inst.Unit + " " + rel)
	if f.startFn != nil {
		if err := f.startFn(ctx, c, rel); err != nil {
			return inst, err
		}
	}
	return inst, nil
}

func (f *fakeRuntime) Check(ctx context.Context, inst swap.Instance) error {
	f.record("check " + inst.Unit)
	if f.checkFn != nil {
		return f.checkFn(ctx, inst)
	}
	return nil
}

func (f *fakeRuntime) Handover(ctx context.Context, inst swap.Instance, rel string) (swap.Instance, error) {
	f.record("handover " + inst.Unit + " " + rel)
	if f.handoverFn != nil {
		if err := f.handoverFn(ctx, inst, rel); err != nil {
			return inst, err
		}
	}
	inst.PID++
	inst.Release = rel
	return inst, nil
}

func (f *fakeRuntime) Stop(ctx context.Context, inst swap.Instance) (bool, error) {
	f.record("stop " + inst.Unit)
	if f.stopFn != nil {
		return f.stopFn(ctx, inst)
	}
	return false, nil
}

func newMachine(rt swap.Runtime, opts swap.Options) *swap.Machine {
	n := 0
	opts.NewID = func() string { n++; return fmt.Sprintf("swap-%d", n) }
	return swap.New(rt, opts)
}

func TestSwapSequence(t *testing.T) {
	rt := &fakeRuntime{}
	var saved []swap.State
	m := newMachine(rt, swap.Options{Save: func(s swap.State) error { saved = append(saved, s); return nil }})

	res, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	assert.True(t, res.OK)
	assert.Nil(t, res.From)
	require.NotNil(t, res.To)
	assert.Equal(t, "app@blue.service", res.To.Unit)

	var events []swap.Event
	res, err = m.Swap(t.Context(), swap.Request{Release: "1.1.0"}, func(e swap.Event) { events = append(events, e) })
	require.NoError(t, err)
	assert.Equal(t, "app@blue.service", res.From.Unit)
	assert.Equal(t, "app@green.service", res.To.Unit)
	assert.Equal(t, []string{"start app@blue.service 1.0.0", "start app@green.service 1.1.0", "stop app@blue.service"}, rt.Calls())

	st := m.Status()
	assert.False(t, st.Upgrading)
	assert.Equal(t, "app@green.service", st.Active.Unit)
	assert.Equal(t, "1.1.0", st.Active.Release)
	assert.Equal(t, "swap-2", st.Last.ID)
	require.NotEmpty(t, saved)
	assert.Equal(t, "app@green.service", saved[len(saved)-1].Active.Unit)
	require.NotEmpty(t, events)
	assert.Equal(t, swap.PhaseDraining, events[len(events)-1].Phase)
}

func TestSwapFailures(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		rt        *fakeRuntime
		hooks     swap.Hooks
		prepare   func(context.Context) (string, error)
		wantIs    error
		wantPhase swap.Phase
		wantCalls []string
	}{
		{
			name:      "new instance fails to start",
			rt:        &fakeRuntime{startFn: func(_ context.Context, c swap.Color, _ string) error { return onlyFor(c, swap.Green, boom) }},
			wantIs:    swap.ErrStartFailed,
			wantPhase: swap.PhaseStarting,
			wantCalls: []string{"start app@green.service 2", "stop app@green.service"},
		},
		{
			name:      "before_cutover hook fails",
			rt:        &fakeRuntime{},
			hooks:     swap.Hooks{BeforeCutover: func(_ context.Context, tr swap.Transition) error { return onlyFor(tr.New.Color, swap.Green, boom) }},
			wantIs:    swap.ErrHookFailed,
			wantPhase: swap.PhaseCutover,
			wantCalls: []string{"start app@green.service 2", "stop app@green.service"},
		},
		{
			name:      "prepare fails",
			rt:        &fakeRuntime{},
			prepare:   func(context.Context) (string, error) { return "", boom },
			wantIs:    boom,
			wantPhase: swap.PhasePreparing,
			wantCalls: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(tt.rt, swap.Options{Hooks: tt.hooks})
			_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
			require.NoError(t, err)
			tt.rt.calls = nil

			res, err := m.Swap(t.Context(), swap.Request{Release: "2", Prepare: tt.prepare}, nil)
			require.ErrorIs(t, err, swap.ErrRolledBack)
			require.ErrorIs(t, err, tt.wantIs)
			var rb *swap.RollbackError
			require.ErrorAs(t, err, &rb)
			assert.Equal(t, tt.wantPhase, rb.Phase)
			assert.False(t, res.OK)
			assert.NotEmpty(t, res.Error)
			assert.Equal(t, tt.wantCalls, tt.rt.Calls())
			st := m.Status()
			assert.Equal(t, "app@blue.service", st.Active.Unit, "the old instance keeps serving")
			assert.False(t, st.Upgrading)
		})
	}
}

func onlyFor(got, want swap.Color, err error) error {
	if got == want {
		return err
	}
	return nil
}

func TestAfterCutoverFailureUndoesNothing(t *testing.T) {
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{Hooks: swap.Hooks{AfterCutover: func(context.Context, swap.Transition) error { return errors.New("webhook down") }}})
	res, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	assert.True(t, res.OK)
	assert.Contains(t, res.Warning, "webhook down")
	assert.Equal(t, "app@blue.service", m.Status().Active.Unit)
}

// blockingStart returns a runtime whose green start blocks until released.
func blockingStart() (*fakeRuntime, chan struct{}, chan struct{}) {
	entered, release := make(chan struct{}), make(chan struct{})
	rt := &fakeRuntime{startFn: func(ctx context.Context, c swap.Color, _ string) error {
		if c != swap.Green {
			return nil
		}
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	return rt, entered, release
}

func TestConcurrentSwapRefusedAndStatusAnswers(t *testing.T) {
	rt, entered, release := blockingStart()
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "2"}, nil); done <- err }()
	<-entered

	st := m.Status()
	assert.True(t, st.Upgrading)
	assert.Equal(t, swap.PhaseStarting, st.Phase)
	assert.Equal(t, "2", st.Target)
	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.ErrorIs(t, err, swap.ErrSwapInProgress)

	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, "2", m.Status().Active.Release)
}

func TestCancelDuringStartRollsBack(t *testing.T) {
	rt, entered, _ := blockingStart()
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-entered; cancel() }()
	_, err = m.Swap(ctx, swap.Request{Release: "2"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "app@blue.service", m.Status().Active.Unit)
	assert.Contains(t, rt.Calls(), "stop app@green.service")
}

func TestCancelDuringDrainCompletes(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	rt := &fakeRuntime{stopFn: func(sctx context.Context, _ swap.Instance) (bool, error) {
		cancel()
		time.Sleep(10 * time.Millisecond)
		return false, sctx.Err() // the drain must not see the cancellation
	}}
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	res, err := m.Swap(ctx, swap.Request{Release: "2"}, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Warning)
	assert.Equal(t, "app@green.service", m.Status().Active.Unit)
}

func TestKilledOldInstanceReported(t *testing.T) {
	rt := &fakeRuntime{stopFn: func(context.Context, swap.Instance) (bool, error) { return true, nil }}
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	res, err := m.Swap(t.Context(), swap.Request{Release: "2"}, nil)
	require.NoError(t, err)
	assert.True(t, res.OldKilled)
}

func TestSaveFailureBeforeStartAborts(t *testing.T) {
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{Save: func(swap.State) error { return errors.New("disk full") }})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	assert.Empty(t, rt.Calls(), "nothing may start when the intent cannot be recorded")
}

func TestShutdownCancelsSwapAndStopsActive(t *testing.T) {
	rt, entered, _ := blockingStart()
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "2"}, nil); done <- err }()
	<-entered
	require.NoError(t, m.Shutdown(t.Context()))
	require.ErrorIs(t, <-done, swap.ErrRolledBack)
	assert.Equal(t, []string{"start app@blue.service 1", "start app@green.service 2", "stop app@green.service", "stop app@blue.service"}, rt.Calls())
	assert.Nil(t, m.Status().Active)
	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.ErrorIs(t, err, swap.ErrShuttingDown)
}

// Detach (a parent restart) ends a running swap like Shutdown but leaves
// the active instance running for the next parent.
func TestDetachCancelsSwapAndLeavesActive(t *testing.T) {
	rt, entered, _ := blockingStart()
	m := newMachine(rt, swap.Options{})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "2"}, nil); done <- err }()
	<-entered
	require.NoError(t, m.Detach(t.Context()))
	require.ErrorIs(t, <-done, swap.ErrRolledBack)
	assert.Equal(t, []string{"start app@blue.service 1", "start app@green.service 2", "stop app@green.service"}, rt.Calls())
	require.NotNil(t, m.Status().Active)
	assert.Equal(t, "app@blue.service", m.Status().Active.Unit)
	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.ErrorIs(t, err, swap.ErrShuttingDown)
}

func TestAdoptPanicsDuringSwap(t *testing.T) {
	rt, entered, release := blockingStart()
	m := newMachine(rt, swap.Options{})
	adopt(t, m, &swap.Instance{Unit: "app@blue.service", Color: swap.Blue, Release: "1"})
	go func() { _, _ = m.Swap(t.Context(), swap.Request{Release: "2"}, nil) }()
	<-entered
	assert.Panics(t, func() { _ = m.Adopt(swap.State{}, swap.Plan{}) })
	close(release)
}

func TestPhaseText(t *testing.T) {
	for p := swap.PhaseIdle; p <= swap.PhaseAfterCutover; p++ {
		b, err := p.MarshalText()
		require.NoError(t, err)
		var q swap.Phase
		require.NoError(t, q.UnmarshalText(b))
		assert.Equal(t, p, q)
	}
	var q swap.Phase
	require.Error(t, q.UnmarshalText([]byte("bogus")))
}

func TestColorOther(t *testing.T) {
	assert.Equal(t, swap.Green, swap.Blue.Other())
	assert.Equal(t, swap.Blue, swap.Green.Other())
	assert.Equal(t, swap.Blue, swap.Color("").Other())
}

// The instance being started is always visible in Status: as Starting
// until it is ready (also while a failed start is stopped), then as
// Incoming from the same moment the phase leaves starting.
func TestStatusShowsTheInstanceBeingStarted(t *testing.T) {
	var m *swap.Machine
	var during []swap.Status
	look := func() { during = append(during, m.Status()) }
	rt := &fakeRuntime{
		startFn: func(context.Context, swap.Color, string) error { look(); return nil },
		checkFn: func(context.Context, swap.Instance) error { look(); return nil },
		stopFn:  func(context.Context, swap.Instance) (bool, error) { look(); return false, nil },
	}
	m = newMachine(rt, swap.Options{Settle: time.Millisecond, Save: func(swap.State) error { look(); return nil }})
	_, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	during = nil
	_, err = m.Swap(t.Context(), swap.Request{Release: "2"}, nil)
	require.NoError(t, err)

	require.NotEmpty(t, during)
	sawStarting, sawIncoming := false, false
	for _, st := range during {
		switch st.Phase {
		case swap.PhaseStarting:
			sawStarting = true
			assert.Equal(t, swap.Green, st.Starting)
			assert.Nil(t, st.Incoming)
		case swap.PhaseSettling, swap.PhaseCutover:
			sawIncoming = true
			assert.Empty(t, st.Starting)
			require.NotNil(t, st.Incoming, "phase %s", st.Phase)
			assert.Equal(t, "app@green.service", st.Incoming.Unit)
		default:
			assert.Empty(t, st.Starting, "phase %s", st.Phase)
		}
	}
	assert.True(t, sawStarting)
	assert.True(t, sawIncoming)
	assert.Empty(t, m.Status().Starting)

	// A failed start is stopped while still shown as Starting.
	rt.startFn = func(context.Context, swap.Color, string) error { return errors.New("boom") }
	during = nil
	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.ErrorIs(t, err, swap.ErrStartFailed)
	var stopping *swap.Status
	for i := range during {
		if during[i].Phase == swap.PhaseStarting {
			stopping = &during[i]
		}
	}
	require.NotNil(t, stopping)
	assert.Equal(t, swap.Blue, stopping.Starting)
	assert.Empty(t, m.Status().Starting)
}

// adopt has m adopt active, as a parent does that finds it running.
func adopt(t *testing.T, m *swap.Machine, active *swap.Instance) {
	t.Helper()
	require.NoError(t, m.Adopt(swap.State{}, swap.Plan{Keep: active}))
}

// One swap's last save and the next swap's first may overlap; the state a
// later save copied never reaches the disk before an earlier one's (a crash
// then would leave an older state on disk than the one it had).
func TestSavesKeepTheirOrder(t *testing.T) {
	rt := &fakeRuntime{}
	var mu sync.Mutex
	var saved []swap.State
	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m := newMachine(rt, swap.Options{Save: func(s swap.State) error {
		if s.Swap == nil && s.Last != nil && s.Last.ID == "swap-1" {
			once.Do(func() { close(blocked); <-release }) // swap-1's last save is slow
		}
		mu.Lock()
		defer mu.Unlock()
		saved = append(saved, s)
		return nil
	}})
	first := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil); first <- err }()
	<-blocked
	require.Eventually(t, func() bool { return !m.Status().Upgrading }, 5*time.Second, time.Millisecond, "swap-1 ended; its save is still writing")
	second := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "1.1.0"}, nil); second <- err }()
	assert.Never(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(saved) > 0 && saved[len(saved)-1].Swap != nil && saved[len(saved)-1].Swap.ID == "swap-2"
	}, 200*time.Millisecond, 5*time.Millisecond, "swap-2's save reached the disk before swap-1's last one")
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	mu.Lock()
	defer mu.Unlock()
	last1 := -1
	for i, s := range saved {
		if s.Swap == nil && s.Last != nil && s.Last.ID == "swap-1" {
			last1 = i
		}
		if s.Swap != nil && s.Swap.ID == "swap-2" {
			assert.Greater(t, i, last1, "save %d (swap-2) came before swap-1's last save", i)
		}
	}
	assert.Equal(t, "swap-2", saved[len(saved)-1].Last.ID)
}
