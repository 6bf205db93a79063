package swap_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// deployed is a Record whose releases became active in the order given,
// an hour apart.
func deployed(versions ...string) swap.Record {
	r := swap.Record{Deployed: map[string]time.Time{}}
	for i, v := range versions {
		r.Deployed[v] = t0.Add(time.Duration(i) * time.Hour)
	}
	return r
}

func TestPrunable(t *testing.T) {
	rec := deployed("1", "3", "4", "5", "6", "7", "2") // rolled back to 2 most recently
	staged := []string{"1", "2", "3", "4", "5", "6", "7", "8-staged"}
	tests := []struct {
		name    string
		staged  []string
		protect []string
		keep    int
		want    []string
	}{
		{"keep 3", staged, nil, 3, []string{"5", "4", "3", "1"}},
		{"keep 3, old rollback target protected", staged, []string{"1"}, 3, []string{"5", "4", "3"}},
		{"keep 1, active and previous protected", staged, []string{"2", "7"}, 1, []string{"6", "5", "4", "3", "1"}},
		{"keep more than there are", staged, nil, 10, nil},
		{"keep 0 prunes every unprotected deployed one", staged, []string{"2"}, 0, []string{"7", "6", "5", "4", "3", "1"}},
		{"only staged releases are candidates", []string{"1", "2"}, nil, 1, []string{"1"}},
		{"nothing staged", nil, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rec.Prunable(tt.staged, tt.protect, tt.keep)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, got, "8-staged", "never-deployed releases are kept")
		})
	}
}

func TestPrevious(t *testing.T) {
	tests := []struct {
		name   string
		rec    swap.Record
		active string
		want   string
	}{
		{"the one before", deployed("1", "2", "3"), "3", "2"},
		{"after a rollback to 1, the newest other", deployed("1", "2", "3"), "1", "3"},
		{"only the active one", deployed("1"), "1", ""},
		{"nothing deployed", swap.Record{}, "", ""},
		{"nothing active: the newest", deployed("1", "2"), "", "2"},
		{"a tie is decided by name, not map order", swap.Record{Deployed: map[string]time.Time{"a": t0, "b": t0, "c": t0}}, "c", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rec.Previous(tt.active))
		})
	}
}

func TestReloadTarget(t *testing.T) {
	tests := []struct {
		name   string
		rec    swap.Record
		staged []string
		active string
		want   string
	}{
		{"the newest never deployed", deployed("1"), []string{"1", "2", "3"}, "1", "3"},
		{"a never-deployed one older than a deployed one", deployed("1", "3"), []string{"1", "2", "3"}, "3", "2"},
		{"all deployed: a fresh instance of the active one", deployed("1", "2"), []string{"1", "2"}, "1", "1"},
		{"all deployed, none active: the newest staged", deployed("1", "2"), []string{"2", "1"}, "", "1"},
		{"nothing staged: the active one", swap.Record{}, nil, "1", "1"},
		{"nothing at all", swap.Record{}, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rec.ReloadTarget(tt.staged, tt.active))
		})
	}
}

func TestPeers(t *testing.T) {
	blue := &swap.Instance{Unit: "app@blue.service"}
	green := &swap.Instance{Unit: "app@green.service"}
	tests := []struct {
		name               string
		st                 swap.Status
		unit               string
		incoming, outgoing string
	}{
		{"no swap", swap.Status{Active: blue}, blue.Unit, "", ""},
		{"active, while green starts", swap.Status{Active: blue, Incoming: green}, blue.Unit, green.Unit, ""},
		{"incoming, before the cutover", swap.Status{Active: blue, Incoming: green}, green.Unit, "", blue.Unit},
		{"draining, after the cutover", swap.Status{Active: green, Draining: blue}, blue.Unit, green.Unit, ""},
		{"new active, while blue drains", swap.Status{Active: green, Draining: blue}, green.Unit, "", blue.Unit},
		{"after the swap, the new one names the old", swap.Status{Active: green, Last: &swap.Result{OK: true, From: blue, To: green}}, green.Unit, "", blue.Unit},
		{"after a failed swap, no peer", swap.Status{Active: blue, Last: &swap.Result{From: blue, To: green}}, blue.Unit, "", ""},
		{"after the first start, no peer", swap.Status{Active: blue, Last: &swap.Result{OK: true, To: blue}}, blue.Unit, "", ""},
		{"a unit the machine does not know", swap.Status{Active: blue, Incoming: green}, "other.service", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out := tt.st.Peers(tt.unit)
			assert.Equal(t, tt.incoming, in, "incoming")
			assert.Equal(t, tt.outgoing, out, "outgoing")
		})
	}
}

// The machine keeps the record: a release is deployed when it becomes
// active (blue-green or hot), every swap goes into the history, which is
// bounded, and what it saves carries the record.
func TestMachineKeepsTheRecord(t *testing.T) {
	var saved swap.State
	now := t0
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{Now: func() time.Time { now = now.Add(time.Minute); return now },
		Save: func(s swap.State) error { saved = s; return nil }})
	for i := range swap.HistoryLen + 2 {
		_, err := m.Swap(t.Context(), swap.Request{Release: strconv.Itoa(i % 3)}, nil)
		require.NoError(t, err)
	}
	rec := m.Record()
	assert.Len(t, rec.History, swap.HistoryLen, "the history is bounded")
	assert.Equal(t, m.Status().Last.ID, rec.History[len(rec.History)-1].ID, "newest last")
	assert.Len(t, rec.Deployed, 3)
	assert.Equal(t, "0", m.Status().Active.Release)
	assert.Equal(t, "2", rec.Previous("0"), "the last swaps went to 2, then 0")
	assert.Equal(t, rec, saved.Record, "the saved state carries the record")

	before := m.Record()
	rt.startFn = func(context.Context, swap.Color, string) error { return errors.New("boom") }
	_, err := m.Swap(t.Context(), swap.Request{Release: "9"}, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	after := m.Record()
	assert.NotContains(t, after.Deployed, "9", "a failed swap deploys nothing")
	assert.Equal(t, after.History[len(after.History)-1].Release, "9", "but is in the history")
	assert.Len(t, before.History, swap.HistoryLen, "a Record handed out is not modified")
	assert.Equal(t, before.History[len(before.History)-1].ID, rec.History[len(rec.History)-1].ID)

	rt.startFn = nil
	_, err = m.HotUpgrade(t.Context(), swap.Request{Release: "hot"}, nil)
	require.NoError(t, err)
	assert.Contains(t, m.Record().Deployed, "hot", "a hot upgrade deploys its release")
}

// Adopt takes the record saved by the last parent, records the kept
// instance's release when it changed and the interrupted swap, and saves.
func TestAdoptRestoresTheRecord(t *testing.T) {
	blue := &swap.Instance{Unit: "app@blue.service", Color: swap.Blue, Release: "1"}
	green := &swap.Instance{Unit: "app@green.service", Color: swap.Green, Release: "2"}
	last := &swap.Result{ID: "s1", OK: true, To: blue}
	rec := deployed("1")
	rec.History = []swap.Result{*last}
	tests := []struct {
		name         string
		plan         swap.Plan
		wantDeployed []string
		wantHistory  []string
	}{
		{"the same instance", swap.Plan{Keep: blue}, []string{"1"}, []string{"s1"}},
		{"a finished swap", swap.Plan{Keep: green, Interrupted: &swap.Result{ID: "s2", OK: true}}, []string{"1", "2"}, []string{"s1", "s2"}},
		{"an aborted swap", swap.Plan{Keep: blue, Interrupted: &swap.Result{ID: "s2"}}, []string{"1"}, []string{"s1", "s2"}},
		{"nothing runs", swap.Plan{Start: "1"}, []string{"1"}, []string{"s1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var saved []swap.State
			m := newMachine(&fakeRuntime{}, swap.Options{Save: func(s swap.State) error { saved = append(saved, s); return nil }})
			require.NoError(t, m.Adopt(swap.State{Active: blue, Last: last, Record: rec, Swap: &swap.Intent{ID: "s2"}}, tt.plan))
			got := m.Record()
			var deployed, history []string
			for v := range got.Deployed {
				deployed = append(deployed, v)
			}
			for _, r := range got.History {
				history = append(history, r.ID)
			}
			assert.ElementsMatch(t, tt.wantDeployed, deployed)
			assert.Equal(t, tt.wantHistory, history)
			require.Len(t, saved, 1)
			assert.Nil(t, saved[0].Swap, "the intent is resolved")
			assert.Equal(t, tt.plan.Keep, saved[0].Active)
			if tt.plan.Interrupted != nil {
				assert.Equal(t, "s2", m.Status().Last.ID)
			}
		})
	}
	m := newMachine(&fakeRuntime{}, swap.Options{Save: func(swap.State) error { return errors.New("disk full") }})
	assert.ErrorContains(t, m.Adopt(swap.State{}, swap.Plan{Keep: blue}), "disk full")
	assert.Equal(t, blue.Unit, m.Status().Active.Unit, "adopted even when the state cannot be saved")
}

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

// A parent restarted mid-swap finds both colours running. A swap asked
// for before it decided what they are waits: started at once, it would
// start green, which Restore then stops as the interrupted swap's
// leftover (or Adopt would find a swap running). It runs after Restore,
// from the adopted instance.
func TestRestoreHoldsSwapsUntilItEnds(t *testing.T) {
	blue := swap.Instance{Unit: "app@blue.service", Color: swap.Blue, Release: "1", InvocationID: "b"}
	green := swap.Instance{Unit: "app@green.service", Color: swap.Green, Release: "2", InvocationID: "g"}
	saved := swap.State{Active: &blue, Swap: &swap.Intent{ID: "s1", Phase: swap.PhaseSettling, Release: "2", Color: swap.Green, From: &blue, To: &green}}
	listed, proceed := make(chan struct{}), make(chan struct{})
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{AwaitRestore: true})
	done := make(chan error, 1)
	go func() { _, err := m.Swap(t.Context(), swap.Request{Release: "3"}, nil); done <- err }()

	var adopted swap.Plan
	restored := make(chan error, 1)
	go func() {
		_, err := m.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) {
			close(listed)
			<-proceed
			return []swap.Instance{blue, green}, nil
		}, func(p swap.Plan) { adopted = p })
		restored <- err
	}()
	<-listed
	assert.Never(t, func() bool { return len(done) > 0 || len(rt.Calls()) > 0 }, 100*time.Millisecond, 10*time.Millisecond,
		"the swap waits while the parent looks at what runs")
	st := m.Status()
	assert.True(t, st.Adopting, "status says the active instance is not known yet")
	assert.Nil(t, st.Active)
	close(proceed)
	require.NoError(t, <-restored)
	assert.False(t, m.Status().Adopting)
	require.NoError(t, <-done)
	assert.Equal(t, &blue, adopted.Keep)
	assert.Equal(t, []string{"stop app@green.service", "start app@green.service 3", "stop app@blue.service"}, rt.Calls(),
		"the leftover is stopped before the waiting swap starts that colour afresh")
	assert.Equal(t, "3", m.Status().Active.Release)
	hist := m.Record().History
	require.Len(t, hist, 2)
	assert.Equal(t, "s1", hist[0].ID, "the interrupted swap is in the history")
	assert.False(t, hist[0].OK, "aborted before its cutover")
}

func TestRestoreStartsTheLastReleaseOrGivesUp(t *testing.T) {
	saved := swap.State{Active: &swap.Instance{Unit: "app@green.service", Color: swap.Green, Release: "2"}}
	rt := &fakeRuntime{}
	m := newMachine(rt, swap.Options{AwaitRestore: true})
	plan, err := m.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) { return nil, nil }, nil)
	require.NoError(t, err)
	assert.Equal(t, "2", plan.Start, "nothing runs (a reboot): the last active release")
	assert.Equal(t, []string{"start app@blue.service 2"}, rt.Calls())

	rt2 := &fakeRuntime{startFn: func(context.Context, swap.Color, string) error { return errors.New("boom") },
		stopFn: func(_ context.Context, i swap.Instance) (bool, error) {
			if i.Unit == "app@green.service" {
				return false, errors.New("dbus gone")
			}
			return false, nil
		}}
	m2 := newMachine(rt2, swap.Options{AwaitRestore: true})
	_, err = m2.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) {
		return []swap.Instance{{Unit: "app@green.service", Color: swap.Green, Release: "9", InvocationID: "x"}}, nil
	}, nil)
	require.NoError(t, err, "an unknown instance is kept when no recorded one runs")

	m3 := newMachine(rt2, swap.Options{AwaitRestore: true})
	_, err = m3.Restore(t.Context(), swap.State{Active: &swap.Instance{Unit: "app@blue.service", Release: "1", InvocationID: "b"}},
		func(context.Context) ([]swap.Instance, error) {
			return []swap.Instance{{Unit: "app@blue.service", Release: "1", InvocationID: "b"}, {Unit: "app@green.service", Release: "2", InvocationID: "g"}}, nil
		}, nil)
	assert.ErrorContains(t, err, "stop leftover instance app@green.service: dbus gone")

	m4 := newMachine(rt2, swap.Options{AwaitRestore: true})
	_, err = m4.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) { return nil, nil }, nil)
	assert.ErrorContains(t, err, "start the last active release 2")
	require.ErrorIs(t, err, swap.ErrRolledBack)

	var saves int
	m5 := newMachine(&fakeRuntime{}, swap.Options{AwaitRestore: true, Save: func(swap.State) error { saves++; return nil }})
	_, err = m5.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) { return nil, errors.New("no bus") }, nil)
	assert.ErrorContains(t, err, "list the running instances, not adopting any: no bus")
	assert.Zero(t, saves, "nothing adopted, the saved state untouched")
	_, err = m5.Swap(t.Context(), swap.Request{Release: "1"}, nil)
	require.NoError(t, err, "swaps are let through")

	m6 := newMachine(&fakeRuntime{}, swap.Options{AwaitRestore: true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = m6.Swap(ctx, swap.Request{Release: "1"}, nil)
	require.ErrorIs(t, err, swap.ErrSwapInProgress, "refused like a concurrent swap")
	assert.ErrorContains(t, err, "still adopting")
	_, err = m6.HotUpgrade(ctx, swap.Request{Release: "1"}, nil)
	require.ErrorIs(t, err, swap.ErrSwapInProgress)
}

// A parent that cannot list its instances at start (D-Bus not answering)
// adopts none, but the deploy record the last parent saved survives: the
// next swap saves the whole state, and without the record it would write
// the rollback target and the history away.
func TestRestoreKeepsTheRecordWhenListFails(t *testing.T) {
	rec := deployed("1", "2")
	last := swap.Result{ID: "s1", OK: true, Release: "2"}
	rec.History = []swap.Result{last}
	saved := swap.State{Active: &swap.Instance{Unit: "app@green.service", Color: swap.Green, Release: "2"}, Last: &last, Record: rec}
	var states []swap.State
	m := newMachine(&fakeRuntime{}, swap.Options{AwaitRestore: true, Save: func(s swap.State) error { states = append(states, s); return nil }})
	_, err := m.Restore(t.Context(), saved, func(context.Context) ([]swap.Instance, error) { return nil, errors.New("no bus") }, nil)
	require.Error(t, err)
	assert.Nil(t, m.Status().Active, "nothing adopted")
	assert.Equal(t, "2", m.RollbackTarget(), "the saved record still chooses the rollback target (nothing active: the newest)")

	_, err = m.Swap(t.Context(), swap.Request{Release: "3"}, nil)
	require.NoError(t, err)
	require.NotEmpty(t, states)
	final := states[len(states)-1]
	assert.Contains(t, final.Deployed, "1")
	assert.Contains(t, final.Deployed, "2")
	assert.Contains(t, final.Deployed, "3")
	require.Len(t, final.History, 2, "the saved history and the new swap")
	assert.Equal(t, "s1", final.History[0].ID)
}
