package release

import (
	"errors"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// Defaults used for the zero fields of [Limits], and the free-space floor
// used by [Store.Stage].
const (
	DefaultMaxSize    int64 = 2 << 30 // 2 GiB of file contents
	DefaultMaxEntries       = 100_000
	DefaultMaxPathLen       = 1024 // bytes
	DefaultMaxDepth         = 64   // path components
	DefaultMaxRatio   int64 = 200  // uncompressed bytes per compressed byte
	// DefaultMaxTrailing: tar pads an archive to its record size (10 KiB
	// for GNU tar; some tools use more), nothing else belongs there.
	DefaultMaxTrailing int64 = 1 << 20

	// RatioCheckAfter is how many bytes must have been decompressed before
	// the compression ratio is enforced, so small, highly compressible
	// archives are not refused.
	RatioCheckAfter int64 = 1 << 20

	// MinFreeSpace is the least free space D must have before Stage
	// extracts; see [Store.Stage].
	MinFreeSpace int64 = 64 << 20
)

// Errors returned (wrapped) by this package; test for them with [errors.Is].
var (
	// ErrInvalidRelease means the file name or the archive is malformed or
	// contains something refused (see the package documentation).
	ErrInvalidRelease = errors.New("release: invalid release")
	// ErrChecksumMismatch means the archive does not have the expected sha256.
	ErrChecksumMismatch = errors.New("release: checksum mismatch")
	// ErrExists means the version is already staged with different content.
	ErrExists = errors.New("release: version already staged with different content")
	// ErrNotFound means the version is not staged.
	ErrNotFound = errors.New("release: no such release")
	// ErrCorrupt means a staged release has missing or malformed metadata.
	ErrCorrupt = errors.New("release: corrupt release metadata")
	// ErrLimit means the archive exceeds one of the [Limits]; the message
	// names the limit and the value.
	ErrLimit = errors.New("release: limit exceeded")
	// ErrNoSpace means the filesystem holding D is (or would become) full.
	ErrNoSpace = errors.New("release: not enough disk space")
	// ErrInUse means the version is pinned (see [Store.Pin]): a swap is
	// starting it or an instance runs it, so it is neither replaced nor
	// removed.
	ErrInUse = errors.New("release: in use")
)

// Limits bounds what [Store.Stage] accepts. A zero or negative field means
// the matching Default constant.
type Limits struct {
	// MaxSize bounds the total size of regular file contents.
	MaxSize int64
	// MaxEntries bounds the archive entries plus the directories created
	// implicitly for entries whose parents are not in the archive.
	MaxEntries int
	// MaxPathLen bounds the length in bytes of entry names and symlink targets.
	MaxPathLen int
	// MaxDepth bounds the number of components of an entry name.
	MaxDepth int
	// MaxRatio bounds decompressed bytes per compressed byte read so far,
	// checked once more than RatioCheckAfter bytes were decompressed.
	MaxRatio int64
	// MaxTrailing bounds what is read after the tar end-of-archive marker,
	// decompressed and after the gzip stream together: Stage reads it to
	// hash the whole tarball, and the upload it reads may hold the swap
	// lock.
	MaxTrailing int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = DefaultMaxPathLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	if l.MaxTrailing <= 0 {
		l.MaxTrailing = DefaultMaxTrailing
	}
	return l
}

// Release describes a staged release.
type Release struct {
	App      string    // app name from the tarball name
	Version  string    // version from the tarball name
	Dir      string    // release root, D/releases/VERSION
	SHA256   string    // lowercase hex sha256 of the tarball as read
	Size     int64     // total size of regular file contents
	Files    int       // number of regular files
	StagedAt time.Time // when the release was staged
	// Command, Compat and Hot come from the release's optional ManifestFile.
	Command []string
	Compat  string
	Hot     string // hot upgrade mode as declared; see [Release.HotMode]
	// Reused is set by [Store.Stage] when the version was already staged
	// with the same sha256 and nothing was extracted.
	Reused bool
}

// Store stages and lists the releases of one app. Its methods may be called
// concurrently from several goroutines, except [Store.CleanStaging]. Every
// change to D/releases is made under the Store's lock, atomically with the
// check of its pins (see [Store.Pin]); so only one Store, in one process
// (the app's parent), may change D/releases. Others may read it. A Store
// must not be copied after first use.
type Store struct {
	Dir    string // app state directory D, e.g. /var/lib/beamdeploy/hello
	Limits Limits // extraction limits; the zero value means the defaults

	pins pins
}

// StageOptions are the optional parameters of [Store.Stage].
type StageOptions struct {
	// Version, when set, is the release's version whatever the file name
	// says (see ParseUpload).
	Version string
	// SHA256 is the expected hex sha256 of the tarball; empty means any.
	SHA256 string
	// Force replaces an already staged version whose content differs.
	Force bool
	// Size is the compressed size of the tarball for the free-space check.
	// Zero or negative (an unknown HTTP ContentLength) means: the size of r
	// if it is a regular *os.File, else unknown.
	Size int64
	// Progress, if set, is called with the cumulative number of compressed
	// bytes read, about every MiB and once at the end. It runs on the
	// calling goroutine and must not block.
	Progress func(bytesRead int64)
	// Command, if set, is the app's command relative to the release root;
	// the release is refused unless it passes CheckCommand. Checked only
	// when the release is extracted, not when an identical one is reused.
	Command string
}

// HotMode is how the release is hot-upgraded: the manifest's "hot", or
// control.HotSuccessor when it declares none.
func (r Release) HotMode() string {
	if r.Hot == "" {
		return control.HotSuccessor
	}
	return r.Hot
}
