package parent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/safefile"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// historyLen is how many swap results the state file keeps.
const historyLen = 50

// persisted is the parent's state file, state.json in the app's state
// directory. Fields are only ever added.
type persisted struct {
	Active   *swap.Instance       `json:"active"`
	LastSwap *swap.Result         `json:"last_swap,omitempty"`
	Deployed map[string]time.Time `json:"deployed,omitempty"` // release → last time it became active
	History  []swap.Result        `json:"history,omitempty"`  // newest last
	// Swap is the intent record of the swap in flight, written before each
	// of its phases acts; nil when no swap runs.
	Swap *swap.Intent `json:"swap,omitempty"`
	// Lock is the deploy lock (beamdeploy lock); nil when unlocked.
	Lock *control.Lock `json:"lock,omitempty"`
}

// stateFile reads and writes persisted atomically.
type stateFile struct {
	path string

	mu sync.Mutex // guards st
	st persisted
}

func loadState(dir string) (*stateFile, error) {
	f := &stateFile{path: filepath.Join(dir, "state.json")}
	if err := safefile.RemoveTemps(f.path); err != nil { // left by a parent killed mid-write
		return nil, err
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &f.st); err != nil {
		return nil, fmt.Errorf("read state %s: %w (move it aside to start afresh)", f.path, err)
	}
	return f, nil
}

func (f *stateFile) get() persisted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// save records what the swap machine reports.
func (f *stateFile) save(s swap.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Active != nil && (f.st.Active == nil || f.st.Active.Unit != s.Active.Unit || f.st.Active.Release != s.Active.Release) {
		if f.st.Deployed == nil {
			f.st.Deployed = map[string]time.Time{}
		}
		f.st.Deployed[s.Active.Release] = time.Now().UTC()
	}
	f.st.Active, f.st.Swap = s.Active, s.Swap
	if s.Last != nil && (f.st.LastSwap == nil || f.st.LastSwap.ID != s.Last.ID) {
		f.st.History = append(f.st.History, *s.Last)
		if len(f.st.History) > historyLen {
			f.st.History = f.st.History[len(f.st.History)-historyLen:]
		}
	}
	f.st.LastSwap = s.Last
	return f.writeLocked()
}

// setLock sets the deploy lock (nil: unlocks) and returns the one it
// replaced; it is on disk when setLock returns nil.
func (f *stateFile) setLock(l *control.Lock) (*control.Lock, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.st.Lock
	f.st.Lock = l
	if err := f.writeLocked(); err != nil {
		f.st.Lock = prev
		return nil, err
	}
	return prev, nil
}

func (f *stateFile) writeLocked() error {
	b, err := json.MarshalIndent(f.st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return safefile.Write(f.path, append(b, '\n'), 0o600)
}
