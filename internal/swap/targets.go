package swap

import (
	"context"
	"fmt"
)

// activeReleaseLocked returns the active instance's release, "" when none
// runs.
func (m *Machine) activeReleaseLocked() string {
	if m.active == nil {
		return ""
	}
	return m.active.Release
}

// RollbackTarget returns the release a rollback swaps to: the most
// recently deployed one other than the active one; "" when there is none.
func (m *Machine) RollbackTarget() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rollbackTargetLocked()
}

func (m *Machine) rollbackTargetLocked() string {
	return m.record.Previous(m.activeReleaseLocked())
}

// ReloadTarget returns the release a reload swaps to (Record.ReloadTarget
// over the staged releases); "" when nothing is staged or active.
func (m *Machine) ReloadTarget() (string, error) {
	staged, err := m.staged()
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.record.ReloadTarget(staged, m.activeReleaseLocked()), nil
}

func (m *Machine) staged() ([]string, error) {
	if m.opts.Releases == nil {
		return nil, nil
	}
	staged, err := m.opts.Releases.Staged()
	if err != nil {
		return nil, fmt.Errorf("list staged releases: %w", err)
	}
	return staged, nil
}

// Pruned is what retention did with one release.
type Pruned struct {
	Release string
	// Err is why it was not removed (the store's error: in use, gone
	// meanwhile, or the disk's); nil when it was.
	Err error
}

// Prune applies retention: it removes the deployed releases beyond the
// Options.Keep most recent ones, never the active, draining or previous
// one (Record.Prunable). It may run during a swap: the choice is made
// from a snapshot, and the store refuses, in the same step as it would
// remove it, a release that a swap pinned meanwhile (Releases.Remove).
func (m *Machine) Prune() ([]Pruned, error) {
	staged, err := m.staged()
	if err != nil || m.opts.Releases == nil {
		return nil, err
	}
	m.mu.Lock()
	var protect []string
	for _, i := range []*Instance{m.active, m.draining, m.incoming} {
		if i != nil {
			protect = append(protect, i.Release)
		}
	}
	if m.target != "" {
		protect = append(protect, m.target)
	}
	protect = append(protect, m.rollbackTargetLocked())
	doomed := m.record.Prunable(staged, protect, m.opts.Keep)
	m.mu.Unlock()
	var out []Pruned
	for _, v := range doomed {
		out = append(out, Pruned{Release: v, Err: m.opts.Releases.Remove(v)})
	}
	return out, nil
}

// WaitIdle returns the machine's status once no swap runs: at once when
// none does, else when the running one (and any that began right after
// it) has ended. The status is the one taken when the machine was idle.
func (m *Machine) WaitIdle(ctx context.Context) (Status, error) {
	for {
		m.mu.Lock()
		done := m.done
		if done == nil { // idle
			st := m.statusLocked()
			m.mu.Unlock()
			return st, nil
		}
		m.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return Status{}, fmt.Errorf("wait for the running swap to end: %w", ctx.Err())
		}
	}
}
