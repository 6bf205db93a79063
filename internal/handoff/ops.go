package handoff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/beamdeploy/beamdeploy/internal/safefile"
)

// Put stores a copy of value under key, replacing any previous value. It
// returns after the whole store is durable on disk. Invalid keys wrap
// [ErrInvalidKey]; writes over a limit wrap [ErrLimit]. On error the store
// is unchanged.
func (s *Store) Put(key string, value []byte) error {
	if err := checkKey(key, s.limits.MaxKeyLen); err != nil {
		return fmt.Errorf("put %s: %w", quoteKey(key), err)
	}
	if len(value) > s.limits.MaxValueLen {
		return fmt.Errorf("put %s: %w: value of %d bytes is over the %d-byte limit",
			quoteKey(key), ErrLimit, len(value), s.limits.MaxValueLen)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old, exists := s.entries[key] // only writers replace entries, and we are one
	if !exists && len(s.entries) >= s.limits.MaxKeys {
		return fmt.Errorf("put %s: %w: store already holds %d keys, the limit",
			quoteKey(key), ErrLimit, len(s.entries))
	}
	total := s.total + len(value) - len(old)
	if !exists {
		total += len(key)
	}
	if total > s.limits.MaxTotal && total > s.total {
		return fmt.Errorf("put %s: %w: store of %d bytes would be over the %d-byte total limit",
			quoteKey(key), ErrLimit, total, s.limits.MaxTotal)
	}
	next := maps.Clone(s.entries)
	next[key] = bytes.Clone(value)
	if err := s.commitLocked(next, total); err != nil {
		return fmt.Errorf("put %s: %w", quoteKey(key), err)
	}
	return nil
}

// Get returns a copy of the value stored under key, or an error wrapping
// [ErrNotFound].
func (s *Store) Get(key string) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.entries[key]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", quoteKey(key), ErrNotFound)
	}
	return append([]byte{}, v...), nil
}

// Delete removes key and returns after the store is durable on disk. A key
// the store does not hold is an error wrapping [ErrNotFound]. On error the
// store is unchanged.
func (s *Store) Delete(key string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old, ok := s.entries[key] // only writers replace entries, and we are one
	if !ok {
		return fmt.Errorf("delete %s: %w", quoteKey(key), ErrNotFound)
	}
	next := maps.Clone(s.entries)
	delete(next, key)
	if err := s.commitLocked(next, s.total-len(key)-len(old)); err != nil {
		return fmt.Errorf("delete %s: %w", quoteKey(key), err)
	}
	return nil
}

// List returns a copy of every entry; callers may modify it freely.
func (s *Store) List() map[string][]byte {
	s.mu.RLock()
	entries := s.entries
	s.mu.RUnlock()
	out := make(map[string][]byte, len(entries))
	for k, v := range entries {
		out[k] = append([]byte{}, v...)
	}
	return out
}

// Keys returns every key in ascending byte order.
func (s *Store) Keys() []string {
	s.mu.RLock()
	entries := s.entries
	s.mu.RUnlock()
	return slices.Sorted(maps.Keys(entries))
}

// commitLocked persists next and then publishes it. The caller holds
// writeMu; readers are blocked only for the swap, not the fsync.
func (s *Store) commitLocked(next map[string][]byte, total int) error {
	data, err := json.Marshal(fileFormat{Version: fileVersion, Entries: next})
	if err != nil {
		return fmt.Errorf("encode handoff store: %w", err)
	}
	if err := safefile.Write(s.path, data, 0o600); err != nil {
		return fmt.Errorf("save handoff store: %w", err)
	}
	s.mu.Lock()
	s.entries, s.total = next, total
	s.mu.Unlock()
	return nil
}
