package parent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A reader of the state (status, on every call) never waits for a change
// being written: an fsync can take seconds on a busy disk.
func TestStateReadersDoNotWaitForWrites(t *testing.T) {
	f, err := loadState(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, f.save(swap.State{Active: &swap.Instance{Unit: "hello@blue.service", Release: "1.0.0"}}))

	f.wmu.Lock() // a change is being written
	got := make(chan persisted, 1)
	go func() { got <- f.get() }()
	select {
	case st := <-got:
		assert.Equal(t, "1.0.0", st.Active.Release)
	case <-time.After(10 * time.Second):
		t.Fatal("get waited for a write in progress")
	}
	f.wmu.Unlock()
}

// What get returns is a snapshot: later changes do not modify it (run with
// -race: readers iterate its map while swaps record releases).
func TestStateSnapshotsAreNotModified(t *testing.T) {
	f, err := loadState(t.TempDir())
	require.NoError(t, err)
	m := swap.New(instantRuntime{}, swap.Options{Save: f.save})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			_, err := m.Swap(t.Context(), swap.Request{Release: strconv.Itoa(i)}, nil)
			assert.NoError(t, err)
		}
	})
	for range 50 {
		st := f.get()
		n := 0
		for range st.Deployed {
			n++
		}
		assert.Len(t, st.Deployed, n)
		assert.LessOrEqual(t, len(st.History), swap.HistoryLen)
	}
	wg.Wait()
	st := f.get()
	assert.Len(t, st.Deployed, 50)
	assert.Len(t, st.History, 50)

	before := f.get()
	_, err = f.setLock(&control.Lock{Message: "freeze"})
	require.NoError(t, err)
	assert.Nil(t, before.Lock, "a snapshot taken before setLock")
	assert.Equal(t, "freeze", f.get().Lock.Message)
}

// stateOfVersion0 is a state.json as the parent wrote it before the deploy
// record moved into internal/swap (97953d1): a parent upgraded in place
// reads it, and a parent downgraded reads what the new one writes.
const stateOfVersion0 = `{
  "active": {"unit": "hello@green.service", "color": "green", "release": "2.0.0", "pid": 42, "invocation_id": "g1", "since": "2026-01-01T02:00:00Z"},
  "last_swap": {"id": "s2", "kind": "blue-green", "release": "2.0.0", "started": "2026-01-01T02:00:00Z", "ready_ns": 1, "stop_ns": 1, "total_ns": 2, "ok": true,
    "from": {"unit": "hello@blue.service", "color": "blue", "release": "1.0.0", "since": "2026-01-01T01:00:00Z"},
    "to": {"unit": "hello@green.service", "color": "green", "release": "2.0.0", "since": "2026-01-01T02:00:00Z"}},
  "deployed": {"1.0.0": "2026-01-01T01:00:00Z", "2.0.0": "2026-01-01T02:00:00Z"},
  "history": [
    {"id": "s1", "release": "1.0.0", "started": "2026-01-01T01:00:00Z", "ready_ns": 1, "stop_ns": 1, "total_ns": 2, "ok": true},
    {"id": "s2", "kind": "blue-green", "release": "2.0.0", "started": "2026-01-01T02:00:00Z", "ready_ns": 1, "stop_ns": 1, "total_ns": 2, "ok": true}
  ],
  "lock": {"message": "freeze", "uid": 0, "since": "2026-01-01T03:00:00Z"}
}
`

func TestStateFileOfThePreviousVersion(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.json"), []byte(stateOfVersion0), 0o600))
	f, err := loadState(dir)
	require.NoError(t, err)
	st := f.get()
	require.NotNil(t, st.Active)
	assert.Equal(t, "2.0.0", st.Active.Release)
	require.NotNil(t, st.Last)
	assert.Equal(t, "s2", st.Last.ID)
	assert.Len(t, st.Deployed, 2)
	assert.Len(t, st.History, 2)
	require.NotNil(t, st.Lock)
	assert.Equal(t, "freeze", st.Lock.Message)

	m := swap.New(instantRuntime{}, swap.Options{Save: f.save, AwaitRestore: true})
	green := *st.Active
	plan, err := m.Restore(t.Context(), st.State, func(context.Context) ([]swap.Instance, error) { return []swap.Instance{green}, nil }, nil)
	require.NoError(t, err)
	assert.Equal(t, &green, plan.Keep)
	assert.Equal(t, "1.0.0", m.RollbackTarget(), "the previous version's deploy record chooses the rollback target")
	assert.Len(t, m.Record().History, 2, "the restart adds no swap")

	// What this version writes, the previous one reads: the same keys.
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	require.NoError(t, err)
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &keys))
	for _, k := range []string{"active", "last_swap", "deployed", "history", "lock"} {
		assert.Contains(t, keys, k)
	}
}
