package swap_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// fakePins is a release store (swap.Releases): its staged releases and
// its pin table, release → holders.
type fakePins struct {
	mu     sync.Mutex
	held   map[string][]string
	fail   map[string]error  // Pin of these releases fails
	staged []string          // oldest first
	sums   map[string]string // Checksum's answers
}

var errInUse = errors.New("fake store: in use")

func (p *fakePins) Staged() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail["list"]; err != nil {
		return nil, err
	}
	return slices.Clone(p.staged), nil
}

func (p *fakePins) Remove(release string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.held[release]) > 0 {
		return errInUse
	}
	p.staged = slices.DeleteFunc(p.staged, func(v string) bool { return v == release })
	return nil
}

func (p *fakePins) Checksum(release string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sums[release]
}

func (p *fakePins) Pin(release, holder string) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail[release]; err != nil {
		return nil, err
	}
	if p.held == nil {
		p.held = map[string][]string{}
	}
	p.held[release] = append(p.held[release], holder)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		i := slices.Index(p.held[release], holder)
		if i < 0 {
			panic("unpinned twice: " + release + " by " + holder)
		}
		p.held[release] = slices.Delete(p.held[release], i, i+1)
		if len(p.held[release]) == 0 {
			delete(p.held, release)
		}
	}, nil
}

// Held returns a copy of the pin table.
func (p *fakePins) Held() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	for r, h := range p.held {
		out[r] = slices.Sorted(slices.Values(h))
	}
	return out
}

func TestPinsCoverTheTargetAndWhatRuns(t *testing.T) {
	pins := &fakePins{}
	var duringStart, duringDrain map[string][]string
	rt := &fakeRuntime{
		startFn: func(context.Context, swap.Color, string) error { duringStart = pins.Held(); return nil },
		stopFn:  func(context.Context, swap.Instance) (bool, error) { duringDrain = pins.Held(); return false, nil },
	}
	m := newMachine(rt, swap.Options{Releases: pins})

	_, err := m.Swap(t.Context(), swap.Request{Prepare: func(ctx context.Context) (string, error) {
		assert.Empty(t, pins.Held(), "nothing chosen, nothing pinned")
		assert.Equal(t, "swap-1", swap.IDFromContext(ctx))
		return "1.0", nil
	}}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"1.0": {"swap swap-1"}}, duringStart)
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}}, pins.Held())

	_, err = m.Swap(t.Context(), swap.Request{Release: "2.0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}, "2.0": {"swap swap-2"}}, duringStart)
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}, "2.0": {"swap swap-2"}}, duringDrain, "the draining release stays pinned")
	assert.Equal(t, map[string][]string{"2.0": {"the active instance"}}, pins.Held())

	// A fresh instance of the active release: pinned throughout.
	_, err = m.Swap(t.Context(), swap.Request{Release: "2.0"}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"2.0": {"swap swap-3", "the active instance"}}, duringDrain)
	assert.Equal(t, map[string][]string{"2.0": {"the active instance"}}, pins.Held())

	// A failed swap unpins its target only.
	rt.startFn = func(context.Context, swap.Color, string) error { return errors.New("boom") }
	_, err = m.Swap(t.Context(), swap.Request{Release: "3.0"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	assert.Equal(t, map[string][]string{"2.0": {"the active instance"}}, pins.Held())

	require.NoError(t, m.Shutdown(t.Context()))
	assert.Empty(t, pins.Held())
}

func TestPinFailureStopsTheSwapBeforeItStarts(t *testing.T) {
	gone := errors.New("release: no such release: 9.9")
	pins := &fakePins{fail: map[string]error{"9.9": gone}}
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{Releases: pins})
	adopt(t, m, &swap.Instance{Unit: "app@blue.service", Color: swap.Blue, Release: "1.0"})
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}}, pins.Held(), "an adopted instance's release is pinned")

	_, err := m.Swap(t.Context(), swap.Request{Release: "9.9"}, nil)
	var rb *swap.RollbackError
	require.ErrorAs(t, err, &rb)
	assert.Equal(t, swap.PhasePreparing, rb.Phase)
	require.ErrorIs(t, err, gone)
	assert.Empty(t, rt.Calls(), "nothing started")
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}}, pins.Held())
}

func TestHotUpgradePinsTheNewRelease(t *testing.T) {
	pins := &fakePins{}
	var during map[string][]string
	rt := &fakeRuntime{handoverFn: func(context.Context, swap.Instance, string) error { during = pins.Held(); return nil }}
	m := newMachine(rt, swap.Options{Releases: pins})
	adopt(t, m, &swap.Instance{Unit: "app@blue.service", Color: swap.Blue, Release: "1.0"})
	_, err := m.HotUpgrade(t.Context(), swap.Request{Release: "1.1"}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string][]string{"1.0": {"the active instance"}, "1.1": {"swap swap-1"}}, during)
	assert.Equal(t, map[string][]string{"1.1": {"the active instance"}}, pins.Held())
}
