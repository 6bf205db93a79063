package parent

import (
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
