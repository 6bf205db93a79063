package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Stage extracts the release tarball read from r, whose name filename
// encodes the app and version (see [ParseFilename]), into
// D/releases/VERSION and returns the staged release. r is read to the end;
// the sha256 of everything read is recorded and, if opts.SHA256 is set,
// must match it (checked at the end, error wrapping [ErrChecksumMismatch]).
//
// If the version is already staged, r is only hashed, not extracted: with
// the same sha256 Stage returns the existing release with Reused set and a
// nil error; with a different one the error wraps [ErrExists]. With
// opts.Force the version is always extracted and replaces the staged one
// (atomically where the filesystem supports RENAME_EXCHANGE), unless it is
// pinned ([Store.Pin]): then the error wraps [ErrInUse], before r is read
// when it is pinned already, else when the extraction is complete.
//
// Before extracting, the filesystem holding D must have at least twice the
// compressed size (see [StageOptions.Size]) or [MinFreeSpace], whichever
// is larger, available; otherwise, or if it fills up during extraction,
// the error wraps [ErrNoSpace]. Other errors wrap [ErrInvalidRelease],
// [ErrLimit] or [ErrCorrupt], or are ctx's error. Cancellation is noticed
// between reads of r; a caller whose r may block must unblock it.
//
// On error nothing is left in D/releases or D/staging.
func (s *Store) Stage(ctx context.Context, filename string, r io.Reader, opts StageOptions) (Release, error) {
	rel, err := s.stage(ctx, filename, r, opts)
	if err != nil {
		if isNoSpace(err) && !errors.Is(err, ErrNoSpace) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return Release{}, fmt.Errorf("stage %s: %w", filepath.Base(filename), err)
	}
	return rel, nil
}

func (s *Store) stage(ctx context.Context, filename string, r io.Reader, opts StageOptions) (Release, error) {
	if s.Dir == "" {
		return Release{}, errors.New("release: store has no directory")
	}
	app, version, err := ParseUpload(filename, opts.Version)
	if err != nil {
		return Release{}, err
	}
	want := strings.ToLower(opts.SHA256)
	if want != "" && !isSHA256(want) {
		return Release{}, fmt.Errorf("expected sha256 %q is not 64 hex digits", opts.SHA256)
	}
	if opts.Force {
		if err := s.inUse(version, "replaced"); err != nil {
			return Release{}, err
		}
	}
	src := newSource(ctx, r, opts.Progress)
	old, err := s.load(version)
	switch {
	case err == nil && !opts.Force:
		return compareExisting(src, old, want)
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt) && opts.Force:
	default:
		return Release{}, err
	}
	rel := Release{App: app, Version: version, Dir: filepath.Join(s.releasesPath(), version)}
	size := compressedSize(r, opts.Size)
	return s.stageNew(ctx, src, size, rel, want, opts)
}

// compareExisting hashes the rest of src and compares it with the staged
// release old.
func compareExisting(src *source, old Release, want string) (Release, error) {
	if _, err := io.Copy(io.Discard, src); err != nil {
		return Release{}, err
	}
	sum := src.sum()
	if want != "" && sum != want {
		return Release{}, checksumErr(want, sum)
	}
	if sum != old.SHA256 {
		return Release{}, fmt.Errorf("%w: %s has sha256 %s, tarball %s", ErrExists, old.Version, old.SHA256, sum)
	}
	old.Reused = true
	return old, nil
}

func checksumErr(want, got string) error {
	return fmt.Errorf("%w: want sha256 %s, got %s", ErrChecksumMismatch, want, got)
}

func (s *Store) stageNew(ctx context.Context, src *source, size int64, rel Release, want string, opts StageOptions) (Release, error) {
	if err := os.MkdirAll(s.releasesPath(), 0o755); err != nil {
		return Release{}, fmt.Errorf("create releases directory: %w", err)
	}
	if err := os.MkdirAll(s.stagingPath(), 0o700); err != nil {
		return Release{}, fmt.Errorf("create staging directory: %w", err)
	}
	if err := checkSpace(s.stagingPath(), size); err != nil {
		return Release{}, err
	}
	tmp, err := os.MkdirTemp(s.stagingPath(), "stage-"+rel.Version+"-*")
	if err != nil {
		return Release{}, fmt.Errorf("create staging directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // best effort; CleanStaging removes leftovers
	x, err := extract(ctx, filepath.Join(tmp, "tree"), rel.App, src, s.Limits.withDefaults())
	if err != nil {
		return Release{}, err
	}
	rel.SHA256 = src.sum()
	if want != "" && rel.SHA256 != want {
		return Release{}, checksumErr(want, rel.SHA256)
	}
	m, err := readManifest(x.root, rel.Version)
	if err != nil {
		return Release{}, err
	}
	rel.Command, rel.Compat, rel.Hot = m.Command, m.Compat, m.Hot
	command := opts.Command
	if len(m.Command) > 0 {
		command = m.Command[0]
	}
	if command != "" {
		if err := CheckCommand(x.root, command); err != nil {
			return Release{}, err
		}
	}
	rel.Size, rel.Files, rel.StagedAt = x.size, x.files, time.Now().UTC()
	if err := writeMetadata(x.root, rel); err != nil {
		return Release{}, err
	}
	return s.install(x.root, filepath.Join(tmp, "old"), rel, opts.Force)
}

// install renames the complete release root dir to rel.Dir, under the
// store's lock. An existing release is replaced if force is set and it is
// not pinned (moved to aside if it cannot be exchanged atomically), else
// compared by sha256. The rename is made durable after the lock is
// released: pinning (a swap's end, which status waits for) never waits
// for the disk.
func (s *Store) install(dir, aside string, rel Release, force bool) (Release, error) {
	got, err := s.rename(dir, aside, rel, force)
	if err != nil || got.Reused {
		return got, err
	}
	if err := syncDir(s.releasesPath()); err != nil {
		return Release{}, fmt.Errorf("install release: %w", err)
	}
	return got, nil
}

// rename is install's step under the store's lock.
func (s *Store) rename(dir, aside string, rel Release, force bool) (Release, error) {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	err := renameNoReplace(dir, rel.Dir)
	if errors.Is(err, fs.ErrExist) {
		if !force {
			return s.installedConcurrently(rel)
		}
		if err := s.inUseLocked(rel.Version, "replaced"); err != nil {
			return Release{}, err
		}
		err = replace(dir, rel.Dir, aside)
	}
	if err != nil {
		return Release{}, fmt.Errorf("install release: %w", err)
	}
	return rel, nil
}

// installedConcurrently handles rel's version having been staged by
// someone else while rel was extracted.
func (s *Store) installedConcurrently(rel Release) (Release, error) {
	old, err := s.load(rel.Version)
	if err != nil {
		return Release{}, fmt.Errorf("install release: %w", err)
	}
	if old.SHA256 != rel.SHA256 {
		return Release{}, fmt.Errorf("%w: %s has sha256 %s, tarball %s", ErrExists, old.Version, old.SHA256, rel.SHA256)
	}
	old.Reused = true
	return old, nil
}

// replace puts the release root dir in place of the existing dst.
func replace(dir, dst, aside string) error {
	err := renameExchange(dir, dst)
	switch {
	case err == nil:
		return nil // the old tree is now at dir and goes with the staging directory
	case errors.Is(err, fs.ErrNotExist):
		return renameNoReplace(dir, dst) // removed concurrently
	case !errors.Is(err, errors.ErrUnsupported):
		return err
	}
	if err := os.Rename(dst, aside); err != nil {
		return err
	}
	if err := renameNoReplace(dir, dst); err != nil {
		_ = os.Rename(aside, dst) // best effort: put the old release back
		return err
	}
	return nil
}

// renameIfAbsent is the portable, racy fallback for renameNoReplace.
func renameIfAbsent(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

// compressedSize returns size if positive, else the size of r if it is a
// regular file, else 0 (unknown).
func compressedSize(r io.Reader, size int64) int64 {
	if size > 0 {
		return size
	}
	if st, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return 0
}

// checkSpace refuses to extract unless dir's filesystem has
// max(2×compressed, MinFreeSpace) bytes available. Where free space cannot
// be queried (not Linux) it does nothing.
func checkSpace(dir string, compressed int64) error {
	need := MinFreeSpace
	if compressed > math.MaxInt64/2 {
		need = math.MaxInt64
	} else if 2*compressed > need {
		need = 2 * compressed
	}
	free, err := freeSpace(dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check free space: %w", err)
	}
	if free < need {
		return fmt.Errorf("%w: %d bytes available in %s, need %d", ErrNoSpace, free, dir, need)
	}
	return nil
}
