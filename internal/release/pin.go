package release

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// One lock for every change to the releases, shared with swaps.
//
// Every change to D/releases — staging a new version, a forced stage that
// replaces one, and removal (retention) — ends in one rename, made under
// [Store]'s mutex. Swaps take part through pins: a version pinned with
// [Store.Pin] cannot be replaced or removed, and the check is made under
// that same mutex, in the same step as the rename, so "is it in use?" and
// "replace or delete it" can never interleave (no check-then-act).
//
// Why the store owns the lock, not the swap machine: the machine is busy
// for a whole swap (seconds to minutes, waiting on systemd), and staging an
// unrelated version must not wait for that; the store's critical sections
// are a rename and a metadata read. The machine instead pins what it uses
// (swap.Options.Pin): a swap's target from the moment the swap chose it to
// its end (start, settle, cutover, drain), and the active instance's
// release for as long as it is active, so the draining one stays pinned
// until its swap ends.

// pins records who holds which versions.
type pins struct {
	mu   sync.Mutex                   // guards held, seq; held across every rename into or out of D/releases
	held map[string]map[uint64]string // version → pin id → holder
	seq  uint64
}

// Pin marks version as in use by holder (words for messages, such as
// "swap 20260101T120000-abcdef") until unpin is called; calling unpin more
// than once does nothing more. While a version is pinned, [Store.Remove]
// and a forced [Store.Stage] of it fail with [ErrInUse]. The error wraps
// [ErrNotFound] if version is not staged and [ErrCorrupt] if its metadata
// is unreadable.
func (s *Store) Pin(version, holder string) (unpin func(), err error) {
	return s.pin(version, "", holder)
}

// PinStaged pins rel.Version like [Store.Pin], but only while it still
// has rel's content: the error wraps [ErrExists] if a forced stage replaced
// it since rel was staged.
func (s *Store) PinStaged(rel Release, holder string) (unpin func(), err error) {
	return s.pin(rel.Version, rel.SHA256, holder)
}

func (s *Store) pin(version, sha256, holder string) (func(), error) {
	if err := validVersion(version); err != nil {
		return nil, fmt.Errorf("pin release: %w", err)
	}
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	rel, err := s.load(version)
	if err != nil {
		return nil, fmt.Errorf("pin release: %w", err)
	}
	if sha256 != "" && rel.SHA256 != sha256 {
		return nil, fmt.Errorf("pin release: %w: %s has sha256 %s now, not %s (replaced by a forced stage)", ErrExists, version, rel.SHA256, sha256)
	}
	if s.pins.held == nil {
		s.pins.held = map[string]map[uint64]string{}
	}
	if s.pins.held[version] == nil {
		s.pins.held[version] = map[uint64]string{}
	}
	s.pins.seq++
	id := s.pins.seq
	s.pins.held[version][id] = holder
	var once sync.Once
	return func() {
		once.Do(func() {
			s.pins.mu.Lock()
			defer s.pins.mu.Unlock()
			delete(s.pins.held[version], id)
			if len(s.pins.held[version]) == 0 {
				delete(s.pins.held, version)
			}
		})
	}, nil
}

// inUseLocked returns an error wrapping ErrInUse if version is pinned, else
// nil. what names the refused change ("replace", "remove").
func (s *Store) inUseLocked(version, what string) error {
	held := s.pins.held[version]
	if len(held) == 0 {
		return nil
	}
	holders := slices.Sorted(maps.Values(held))
	return fmt.Errorf("%w: release %s is used by %s; it cannot be %s now", ErrInUse, version, strings.Join(slices.Compact(holders), " and "), what)
}

// inUse is inUseLocked for a caller without the lock: an early answer,
// which the change itself checks again under the lock.
func (s *Store) inUse(version, what string) error {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	return s.inUseLocked(version, what)
}
