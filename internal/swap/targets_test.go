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

func TestTargetsFollowTheRecord(t *testing.T) {
	store := &fakePins{staged: []string{"1", "2", "3"}}
	m := newMachine(&fakeRuntime{}, swap.Options{Releases: store})
	target, err := m.ReloadTarget()
	require.NoError(t, err)
	assert.Equal(t, "3", target, "nothing deployed: the newest staged")
	assert.Empty(t, m.RollbackTarget(), "nothing deployed: no rollback")

	for _, v := range []string{"1", "2"} {
		_, err := m.Swap(t.Context(), swap.Request{Release: v}, nil)
		require.NoError(t, err)
	}
	target, err = m.ReloadTarget()
	require.NoError(t, err)
	assert.Equal(t, "3", target, "the newest never deployed")
	assert.Equal(t, "1", m.RollbackTarget())
	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.NoError(t, err)
	target, err = m.ReloadTarget()
	require.NoError(t, err)
	assert.Equal(t, "3", target, "all deployed: the active one afresh")

	store.fail = map[string]error{"list": errors.New("disk gone")}
	_, err = m.ReloadTarget()
	assert.ErrorContains(t, err, "list staged releases: disk gone")
	_, err = m.Prune()
	assert.ErrorContains(t, err, "disk gone")

	none, err := newMachine(&fakeRuntime{}, swap.Options{}).ReloadTarget()
	require.NoError(t, err)
	assert.Empty(t, none, "no store, nothing active")
}

// Retention keeps the Keep newest deployed releases and what is in use;
// during a swap, the swap's target (chosen, pinned) is never removed, even
// one the policy alone would prune (a rollback to an old release).
func TestPruneDuringASwap(t *testing.T) {
	store := &fakePins{staged: []string{"1", "2", "3", "4"}}
	rt, entered, release := blockingStart()
	m := newMachine(rt, swap.Options{Releases: store, Keep: 1})
	for _, v := range []string{"1", "2", "3"} { // blue, green (blocks)...
		if v == "2" {
			go func() { _, _ = m.Swap(t.Context(), swap.Request{Release: "2"}, nil) }()
			<-entered
			close(release)
			_, err := m.WaitIdle(t.Context())
			require.NoError(t, err)
			continue
		}
		_, err := m.Swap(t.Context(), swap.Request{Release: v}, nil)
		require.NoError(t, err)
	}
	require.Equal(t, "3", m.Status().Active.Release)
	require.Equal(t, "2", m.RollbackTarget())

	entered2, proceed := make(chan struct{}), make(chan struct{})
	rt.startFn = func(ctx context.Context, _ swap.Color, _ string) error {
		close(entered2)
		<-proceed
		return nil
	}
	done := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "1"}, nil); done <- err }()
	<-entered2
	pruned, err := m.Prune()
	require.NoError(t, err)
	assert.Empty(t, pruned, "keep 1 + active 3 + previous 2; 1 is the running swap's target")
	assert.Equal(t, []string{"1", "2", "3", "4"}, store.staged)
	close(proceed)
	require.NoError(t, <-done)

	pruned, err = m.Prune()
	require.NoError(t, err)
	assert.Equal(t, []swap.Pruned{{Release: "2"}}, pruned, "1 active, 3 previous; 4 was never deployed")
	assert.Equal(t, []string{"1", "3", "4"}, store.staged)

	// The store has the last word: a release pinned behind the machine's
	// back (a swap that chose it after Prune decided) is kept.
	unpin, err := store.Pin("3", "someone")
	require.NoError(t, err)
	m2 := newMachine(&fakeRuntime{}, swap.Options{Releases: store, Keep: 0})
	require.NoError(t, m2.Adopt(swap.State{Record: deployed("3", "4", "1")}, swap.Plan{}))
	pruned, err = m2.Prune()
	require.NoError(t, err)
	assert.Equal(t, []swap.Pruned{{Release: "4"}, {Release: "3", Err: errInUse}}, pruned, "1 is previous")
	unpin()

	pruned, err = newMachine(&fakeRuntime{}, swap.Options{}).Prune()
	require.NoError(t, err)
	assert.Empty(t, pruned, "no store: nothing to prune")
}

// WaitIdle answers at once when no swap runs, and otherwise once the
// running swap ended, with the status taken then.
func TestWaitIdle(t *testing.T) {
	rt, entered, release := blockingStart()
	m := newMachine(rt, swap.Options{})
	st, err := m.WaitIdle(t.Context())
	require.NoError(t, err)
	assert.False(t, st.Upgrading)
	_, err = m.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)

	go func() { _, _ = m.Swap(t.Context(), swap.Request{Release: "2"}, nil) }()
	<-entered
	got := make(chan swap.Status, 1)
	go func() {
		st, err := m.WaitIdle(t.Context())
		assert.NoError(t, err)
		got <- st
	}()
	assert.Never(t, func() bool { return len(got) > 0 }, 100*time.Millisecond, 10*time.Millisecond, "not while the swap runs")
	close(release)
	select {
	case st := <-got:
		assert.False(t, st.Upgrading)
		assert.Equal(t, "2", st.Active.Release)
		in, out := st.Peers(st.Active.Unit)
		assert.Empty(t, in)
		assert.Equal(t, "app@blue.service", out)
	case <-time.After(30 * time.Second):
		t.Fatal("WaitIdle did not return after the swap ended")
	}

	rt2, entered2, release2 := blockingStart()
	m2 := newMachine(rt2, swap.Options{})
	_, err = m2.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err)
	go func() { _, _ = m2.Swap(t.Context(), swap.Request{Release: "2"}, nil) }()
	<-entered2
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = m2.WaitIdle(ctx)
	require.ErrorIs(t, err, context.Canceled)
	close(release2)
}
