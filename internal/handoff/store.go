package handoff

import (
	"github.com/beamdeploy/beamdeploy/internal/safefile"

	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// Default limits, used for zero fields of [Limits].
const (
	DefaultMaxKeys     = 1024
	DefaultMaxKeyLen   = 256
	DefaultMaxValueLen = 64 << 10
	DefaultMaxTotal    = 4 << 20
)

// fileVersion is the version written to, and accepted from, the store file.
const fileVersion = 1

var (
	// ErrNotFound is returned by [Store.Get] and [Store.Delete] for a key
	// the store does not hold.
	ErrNotFound = errors.New("handoff: no such key")
	// ErrInvalidKey is wrapped by errors for keys that are empty, too long
	// or contain bytes outside printable ASCII without space ('!' to '~').
	ErrInvalidKey = errors.New("handoff: invalid key")
	// ErrLimit is wrapped by errors for writes that would exceed a [Limits]
	// field. A key over MaxKeyLen wraps both ErrLimit and [ErrInvalidKey].
	ErrLimit = errors.New("handoff: limit exceeded")
	// ErrCorrupt is wrapped by [Open] when the store file exists but cannot
	// be decoded. Move the file aside to start with an empty store.
	ErrCorrupt = errors.New("handoff: corrupt store file")
)

// Limits bounds what a [Store] accepts. A zero (or negative) field means the
// matching Default constant.
type Limits struct {
	MaxKeys     int // number of keys; default [DefaultMaxKeys]
	MaxKeyLen   int // bytes per key; default [DefaultMaxKeyLen]
	MaxValueLen int // bytes per value; default [DefaultMaxValueLen]
	// MaxTotal bounds the sum of all key and value lengths in bytes (the
	// file is larger: values are base64); default [DefaultMaxTotal].
	MaxTotal int
}

// withDefaults returns l with zero or negative fields replaced by defaults.
func (l Limits) withDefaults() Limits {
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	return Limits{
		MaxKeys:     def(l.MaxKeys, DefaultMaxKeys),
		MaxKeyLen:   def(l.MaxKeyLen, DefaultMaxKeyLen),
		MaxValueLen: def(l.MaxValueLen, DefaultMaxValueLen),
		MaxTotal:    def(l.MaxTotal, DefaultMaxTotal),
	}
}

// fileFormat is the on-disk JSON document; encoding/json base64-encodes
// the []byte values.
type fileFormat struct {
	Version int               `json:"version"`
	Entries map[string][]byte `json:"entries"`
}

// Store is a durable key/value store backed by one JSON file. It is safe for
// concurrent use: writes are serialised, and reads never wait for a write's
// fsync, only for the pointer swap that publishes it.
type Store struct {
	path   string
	limits Limits

	writeMu sync.Mutex // serialises Put and Delete, held across persisting

	mu      sync.RWMutex      // guards entries and total
	entries map[string][]byte // never mutated after publication; replaced whole
	total   int               // sum of key and value lengths in entries
}

// Open returns a Store persisted at path, loading path if it exists. A
// missing file yields an empty store (the file is created by the first
// write); a file that cannot be decoded is an error wrapping [ErrCorrupt].
// Entries loaded from disk are kept even if they exceed limits; limits apply
// to later writes. Stray temp files from an interrupted write are removed:
// one Store, in one process, writes path.
func Open(path string, limits Limits) (*Store, error) {
	if err := safefile.RemoveTemps(path); err != nil {
		return nil, err
	}
	entries, err := load(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, limits: limits.withDefaults(), entries: entries}
	for k, v := range entries {
		s.total += len(k) + len(v)
	}
	return s, nil
}

// load reads and decodes the store file at path.
func load(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load handoff store: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, corrupt(path, err)
	}
	if f.Version != fileVersion {
		return nil, corrupt(path, fmt.Errorf("version %d, want %d", f.Version, fileVersion))
	}
	if f.Entries == nil {
		f.Entries = map[string][]byte{}
	}
	return f.Entries, nil
}

// corrupt builds the error for an undecodable store file.
func corrupt(path string, err error) error {
	return fmt.Errorf("load %s: %w: %w (move the file aside to start with an empty store)",
		path, ErrCorrupt, err)
}
