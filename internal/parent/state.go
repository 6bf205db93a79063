package parent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/safefile"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// persisted is the parent's state file, state.json in the app's state
// directory: what the swap machine saves (the active instance, the
// running swap's intent record, the deploy record) and the deploy lock.
// Fields are only ever added.
type persisted struct {
	swap.State
	// Lock is the deploy lock (beamdeploy lock); nil when unlocked.
	Lock *control.Lock `json:"lock,omitempty"`
}

// stateFile reads and writes persisted atomically. Readers (status on
// every call) never wait for the disk: a change is made to a copy, under
// wmu, and st is replaced with it; mu is held only to read or replace st,
// never across I/O (an fsync can take seconds on a busy disk).
type stateFile struct {
	path string

	wmu sync.Mutex // serialises changes and their writes
	mu  sync.Mutex // guards st
	st  persisted  // never modified in place: shared with readers
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

// save records what the swap machine reports. Readers see the change as
// soon as it is made, while it is being written (before, they waited for
// the write): status shows the phase a swap is entering.
func (f *stateFile) save(s swap.State) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	st := f.get()
	st.State = s
	f.set(st)
	return f.write(st)
}

// setLock sets the deploy lock (nil: unlocks) and returns the one it
// replaced; readers see it, and it is on disk, when setLock returns nil.
func (f *stateFile) setLock(l *control.Lock) (*control.Lock, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	st := f.get()
	prev := st.Lock
	st.Lock = l
	if err := f.write(st); err != nil {
		return nil, err
	}
	f.set(st)
	return prev, nil
}

func (f *stateFile) set(st persisted) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

// write puts st on disk; callers hold wmu.
func (f *stateFile) write(st persisted) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return safefile.Write(f.path, append(b, '\n'), 0o600)
}
