package release

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	releasesDir  = "releases"
	stagingDir   = "staging"
	metaDir      = ".beamdeploy"
	metaFile     = "release.json"
	maxMetaBytes = 1 << 20
)

// metadata is the content of .beamdeploy/release.json; fields are only
// ever added.
type metadata struct {
	App      string    `json:"app"`
	Version  string    `json:"version"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Files    int       `json:"files"`
	StagedAt time.Time `json:"staged_at"`
	Command  []string  `json:"command,omitempty"`
	Compat   string    `json:"compat,omitempty"`
	Hot      string    `json:"hot,omitempty"`
}

func (s *Store) releasesPath() string { return filepath.Join(s.Dir, releasesDir) }
func (s *Store) stagingPath() string  { return filepath.Join(s.Dir, stagingDir) }

// Get returns the staged release version. The error wraps [ErrNotFound] if
// it is not staged, [ErrCorrupt] if its metadata is unreadable, and
// [ErrInvalidRelease] if version is not a valid version.
func (s *Store) Get(version string) (Release, error) {
	if err := validVersion(version); err != nil {
		return Release{}, fmt.Errorf("get release: %w", err)
	}
	return s.load(version)
}

func (s *Store) load(version string) (Release, error) {
	dir := filepath.Join(s.releasesPath(), version)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Release{}, fmt.Errorf("%w: %s", ErrNotFound, version)
	}
	if err != nil {
		return Release{}, fmt.Errorf("stat release %s: %w", version, err)
	}
	if !fi.IsDir() {
		return Release{}, fmt.Errorf("%w: %s is not a directory", ErrCorrupt, dir)
	}
	m, err := readMetadata(dir)
	if err != nil {
		return Release{}, fmt.Errorf("%w: release %s: %w", ErrCorrupt, version, err)
	}
	if m.Version != version || validApp(m.App) != nil || !isSHA256(m.SHA256) || m.Size < 0 || m.Files < 0 {
		return Release{}, fmt.Errorf("%w: release %s: invalid %s/%s", ErrCorrupt, version, metaDir, metaFile)
	}
	return Release{App: m.App, Version: m.Version, Dir: dir, SHA256: m.SHA256,
		Size: m.Size, Files: m.Files, StagedAt: m.StagedAt, Command: m.Command, Compat: m.Compat, Hot: m.Hot}, nil
}

func readMetadata(dir string) (metadata, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return metadata{}, err
	}
	defer root.Close()
	f, err := root.Open(filepath.Join(metaDir, metaFile))
	if err != nil {
		return metadata{}, err
	}
	defer f.Close()
	var m metadata
	if err := json.NewDecoder(io.LimitReader(f, maxMetaBytes)).Decode(&m); err != nil {
		return metadata{}, fmt.Errorf("decode %s: %w", metaFile, err)
	}
	return m, nil
}

// writeMetadata atomically writes .beamdeploy/release.json into the
// release root dir and fsyncs both directories.
func writeMetadata(dir string, rel Release) error {
	data, err := json.MarshalIndent(metadata{App: rel.App, Version: rel.Version, SHA256: rel.SHA256,
		Size: rel.Size, Files: rel.Files, StagedAt: rel.StagedAt, Command: rel.Command, Compat: rel.Compat, Hot: rel.Hot}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(metaDir, 0o755); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	tmp := filepath.Join(metaDir, metaFile+".tmp")
	if err := writeFileSync(root, tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if err := root.Rename(tmp, filepath.Join(metaDir, metaFile)); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return errors.Join(syncRootDir(root, metaDir, 0o755), syncRootDir(root, ".", 0o755))
}

func writeFileSync(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncRootDir sets the mode of the directory name in root and fsyncs it.
func syncRootDir(root *os.Root, name string, perm fs.FileMode) error {
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// List returns the staged releases sorted by StagedAt, then Version.
// Entries of D/releases that are not directories with a valid version name
// are ignored; a release with corrupt metadata is an error wrapping
// [ErrCorrupt].
func (s *Store) List() ([]Release, error) {
	ents, err := os.ReadDir(s.releasesPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	var out []Release
	for _, e := range ents {
		if !e.IsDir() || validVersion(e.Name()) != nil {
			continue
		}
		rel, err := s.load(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed concurrently
		}
		if err != nil {
			return nil, fmt.Errorf("list releases: %w", err)
		}
		out = append(out, rel)
	}
	slices.SortFunc(out, func(a, b Release) int {
		if c := a.StagedAt.Compare(b.StagedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out, nil
}

// Remove deletes the staged release version; the error wraps [ErrNotFound]
// if it is not staged and [ErrInUse] if it is pinned ([Store.Pin]). The
// release is first renamed into D/staging, under the store's lock, so it
// disappears from D/releases atomically.
func (s *Store) Remove(version string) error {
	if err := validVersion(version); err != nil {
		return fmt.Errorf("remove release: %w", err)
	}
	aside, err := s.moveAside(version)
	if aside != "" {
		defer func() { _ = os.RemoveAll(aside) }() // leftovers are removed by CleanStaging
	}
	if err != nil {
		return err
	}
	// Durable, outside the store's lock (see install).
	if err := syncDir(s.releasesPath()); err != nil {
		return fmt.Errorf("remove release %s: %w", version, err)
	}
	return nil
}

// moveAside renames the release version into a fresh directory under
// D/staging, which it returns (also with an error, when it was created),
// under the store's lock.
func (s *Store) moveAside(version string) (string, error) {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	if err := s.inUseLocked(version, "removed"); err != nil {
		return "", fmt.Errorf("remove release: %w", err)
	}
	dir := filepath.Join(s.releasesPath(), version)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove release: %w: %s", ErrNotFound, version)
	}
	if err := os.MkdirAll(s.stagingPath(), 0o700); err != nil {
		return "", fmt.Errorf("remove release %s: %w", version, err)
	}
	aside, err := os.MkdirTemp(s.stagingPath(), "remove-"+version+"-*")
	if err != nil {
		return "", fmt.Errorf("remove release %s: %w", version, err)
	}
	if err := os.Rename(dir, filepath.Join(aside, "tree")); errors.Is(err, fs.ErrNotExist) {
		return aside, fmt.Errorf("remove release: %w: %s", ErrNotFound, version)
	} else if err != nil {
		return aside, fmt.Errorf("remove release %s: %w", version, err)
	}
	return aside, nil
}

// CleanStaging removes everything under D/staging: extractions and
// removals left by a process that died. Call it when the owning process
// starts, before any [Store.Stage] or [Store.Remove] on this Store; it
// must not run concurrently with them.
func (s *Store) CleanStaging() error {
	ents, err := os.ReadDir(s.stagingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean staging: %w", err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(s.stagingPath(), e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean staging: %w", err)
	}
	return nil
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && strings.ToLower(s) == s
}
