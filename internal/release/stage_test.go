package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStageNormal stages a typical release and checks the tree (contents,
// modes, symlinks, implicit directories), the returned Release, the
// metadata read back by Get and List, and progress reporting.
func TestStageNormal(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	big := random(t, 3<<20) // incompressible, so progress fires more than once
	data := gzipLevel(t, tarOf(t,
		ent{name: "bin/", typ: tar.TypeDir},
		ent{name: "bin/hello", body: "#!/bin/sh\necho hello\n", mode: 0o755},
		ent{name: "etc/config.toml", body: "port = 8080\n", mode: 0o640},
		ent{name: "share/doc/README", body: string(big)},
		ent{name: "share/doc/config", typ: tar.TypeSymlink, link: "../../etc/config.toml"},
		ent{name: "current", typ: tar.TypeSymlink, link: "./bin/hello"},
		ent{name: "private/", typ: tar.TypeDir, mode: 0o750},
	), gzip.NoCompression)
	var progress []int64
	before := time.Now()
	rel, err := sb.stage(t, "hello-1.2.3.tar.gz", data, StageOptions{
		SHA256:   strings.ToUpper(sha256Hex(data)),
		Progress: func(n int64) { progress = append(progress, n) },
	})
	require.NoError(t, err)

	assert.Equal(t, "hello", rel.App)
	assert.Equal(t, "1.2.3", rel.Version)
	assert.Equal(t, filepath.Join(sb.store.Dir, "releases", "1.2.3"), rel.Dir)
	assert.Equal(t, sha256Hex(data), rel.SHA256)
	assert.Equal(t, int64(len(big)+21+12), rel.Size)
	assert.Equal(t, 3, rel.Files)
	assert.False(t, rel.Reused)
	assert.WithinRange(t, rel.StagedAt, before, time.Now())

	requireNormalTree(t, rel.Dir)
	requireMode(t, rel.Dir, ".beamdeploy/release.json", 0o644)

	require.GreaterOrEqual(t, len(progress), 3)
	assert.IsIncreasing(t, progress)
	assert.Equal(t, int64(len(data)), progress[len(progress)-1])

	stored, err := sb.store.Get("1.2.3")
	require.NoError(t, err)
	assert.Equal(t, rel, stored)
	list, err := sb.store.List()
	require.NoError(t, err)
	assert.Equal(t, []Release{rel}, list)
	sb.requireOnly(t, "1.2.3")
}

// requireNormalTree checks the tree staged by TestStageNormal.
func requireNormalTree(t *testing.T, dir string) {
	t.Helper()
	requireFile(t, dir, "bin/hello", "#!/bin/sh\necho hello\n", 0o755)
	requireFile(t, dir, "etc/config.toml", "port = 8080\n", 0o644) // readable by the app's user
	requireMode(t, dir, ".", fs.ModeDir|0o755)
	requireMode(t, dir, "bin", fs.ModeDir|0o755)
	requireMode(t, dir, "share/doc", fs.ModeDir|0o755) // implicit
	requireMode(t, dir, "private", fs.ModeDir|0o755)
	requireLink(t, dir, "current", "./bin/hello")
	requireLink(t, dir, "share/doc/config", "../../etc/config.toml")
	got, err := os.ReadFile(filepath.Join(dir, "share/doc/config"))
	require.NoError(t, err)
	assert.Equal(t, "port = 8080\n", string(got))
	requireLinksInside(t, dir)
}

func requireFile(t *testing.T, dir, name, body string, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	assert.Equal(t, body, string(got))
	requireMode(t, dir, name, mode)
}

func requireMode(t *testing.T, dir, name string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, name))
	require.NoError(t, err)
	assert.Equal(t, mode, fi.Mode(), name)
}

func requireLink(t *testing.T, dir, name, target string) {
	t.Helper()
	got, err := os.Readlink(filepath.Join(dir, name))
	require.NoError(t, err)
	assert.Equal(t, target, got)
}

// TestStageStripsModeBits checks that setuid, setgid and sticky bits are
// accepted but dropped.
func TestStageStripsModeBits(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	rel, err := sb.stage(t, "hello-1.0.tgz", tgz(t,
		ent{name: "bin/su", body: "x", mode: 0o4755},
		ent{name: "bin/sg", body: "x", mode: 0o2711},
		ent{name: "shared/", typ: tar.TypeDir, mode: 0o3777},
	), StageOptions{})
	require.NoError(t, err)
	requireMode(t, rel.Dir, "bin/su", 0o755)
	requireMode(t, rel.Dir, "bin/sg", 0o755)
	requireMode(t, rel.Dir, "shared", fs.ModeDir|0o755)
	sb.requireOnly(t, "1.0")
}

// TestStageReleaseNotWritable stages a tarball whose entries are writable
// by everyone, or by nobody, and owned by another user: every directory
// and executable ends up 0755 and every other file 0644, owned by the
// staging process (root in the parent), so that nobody but root can change
// a release and the app's user, who owns none of it, can read all of it.
func TestStageReleaseNotWritable(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	owner := func(e ent) ent { e.uid, e.gid = 4242, 4242; return e }
	rel, err := sb.stage(t, "hello-1.0.tgz", tgz(t,
		owner(ent{name: "hello-1.0/", typ: tar.TypeDir, mode: 0o777}),
		owner(ent{name: "hello-1.0/bin/", typ: tar.TypeDir, mode: 0o777}),
		owner(ent{name: "hello-1.0/bin/hello", body: "#!/bin/sh\n", mode: 0o777}),
		owner(ent{name: "hello-1.0/bin/owner-only", body: "#!/bin/sh\n", mode: 0o700}),
		owner(ent{name: "hello-1.0/etc/config", body: "x", mode: 0o666}),
		owner(ent{name: "hello-1.0/etc/secret", body: "x", mode: 0o600}),
		owner(ent{name: "hello-1.0/etc/owner-read", body: "x", mode: 0o400}),
		owner(ent{name: "hello-1.0/closed/", typ: tar.TypeDir, mode: 0o700}),
		owner(ent{name: "hello-1.0/closed/f", body: "x", mode: 0o2777}),
	), StageOptions{})
	require.NoError(t, err)
	want := map[string]fs.FileMode{
		".": fs.ModeDir | 0o755, "bin": fs.ModeDir | 0o755, "etc": fs.ModeDir | 0o755, "closed": fs.ModeDir | 0o755,
		"bin/hello": 0o755, "bin/owner-only": 0o755, "closed/f": 0o755,
		"etc/config": 0o644, "etc/secret": 0o644, "etc/owner-read": 0o644,
		".beamdeploy": fs.ModeDir | 0o755, ".beamdeploy/release.json": 0o644,
	}
	got := map[string]fs.FileMode{}
	require.NoError(t, filepath.WalkDir(rel.Dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		name, err := filepath.Rel(rel.Dir, path)
		require.NoError(t, err)
		got[name] = fi.Mode()
		assert.Zero(t, fi.Mode().Perm()&0o022, "%s is writable by group or others", name)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, uint32(os.Getuid()), st.Uid, "%s: the archive's owner is ignored", name)
		assert.Equal(t, uint32(os.Getgid()), st.Gid, "%s: the archive's group is ignored", name)
		return nil
	}))
	assert.Equal(t, want, got)
}

// TestStageTopLevelDir checks that a single top-level directory is
// stripped when it is named after the release, and only then.
func TestStageTopLevelDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ents []ent
		want []string // paths that must exist in the release root
	}{
		{"stripped", []ent{{name: "hello-1.2.3/", typ: tar.TypeDir, mode: 0o700}, {name: "hello-1.2.3/bin/hello"},
			{name: "hello-1.2.3/l", typ: tar.TypeSymlink, link: "bin/hello"}}, []string{"bin/hello", "l"}},
		{"stripped without directory entry", []ent{{name: "./hello-1.2.3/bin/hello"}, {name: "hello-1.2.3/README"}},
			[]string{"bin/hello", "README"}},
		{"git archive with a pax global header", []ent{{name: "pax_global_header", typ: tar.TypeXGlobalHeader,
			pax: map[string]string{"comment": "0123abcd"}}, {name: "hello-1.2.3/", typ: tar.TypeDir},
			{name: "hello-1.2.3/main.go"}}, []string{"main.go"}},
		{"two top-level entries", []ent{{name: "bin/hello"}, {name: "README"}}, []string{"bin/hello", "README"}},
		{"single file", []ent{{name: "hello"}}, []string{"hello"}},
		{"single symlink beside a directory", []ent{{name: "d/f"}, {name: "l", typ: tar.TypeSymlink, link: "d"}},
			[]string{"d/f", "l"}},
		{"wrapper named after the app", []ent{{name: "hello/bin/hello"}}, []string{"bin/hello"}},
		{"Go-style wrapper", []ent{{name: "hello_1.2.3_linux_amd64/hello"}}, []string{"hello"}},
		{"lone bin directory kept (scripts/example-release)", []ent{{name: "bin/", typ: tar.TypeDir},
			{name: "bin/hello", mode: 0o755}}, []string{"bin/hello"}},
		{"other lone directory kept, .beamdeploy inside it allowed", []ent{{name: "app/x"}, {name: "app/.beamdeploy/y"}},
			[]string{"app/x", "app/.beamdeploy/y"}},
		{"dot-slash entries", []ent{{name: "./", typ: tar.TypeDir}, {name: "./bin/hello"}, {name: "./etc/x"}},
			[]string{"bin/hello", "etc/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb := newSandbox(t)
			rel, err := sb.stage(t, "hello-1.2.3.tar.gz", tgz(t, tt.ents...), StageOptions{})
			require.NoError(t, err)
			for _, p := range tt.want {
				_, err := os.Lstat(filepath.Join(rel.Dir, p))
				assert.NoError(t, err, p)
			}
			requireMode(t, rel.Dir, ".", fs.ModeDir|0o755)
			_, err = sb.store.Get("1.2.3")
			require.NoError(t, err)
			sb.requireOnly(t, "1.2.3")
		})
	}
}

// TestStageGoStyleName stages a NAME_VERSION_OS_ARCH tarball.
func TestStageGoStyleName(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	rel, err := sb.stage(t, "/tmp/upload/hello_1.2.3_linux_amd64.tar.gz", tgz(t, ent{name: "hello", mode: 0o755}), StageOptions{})
	require.NoError(t, err)
	assert.Equal(t, "hello", rel.App)
	assert.Equal(t, "1.2.3", rel.Version)
	requireFile(t, rel.Dir, "hello", "", 0o755)
	sb.requireOnly(t, "1.2.3")
}

// TestStageExisting covers staging a version that is already staged: same
// content is reused, different content is refused unless forced, and
// forcing replaces the tree.
func TestStageExisting(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	v1 := tgz(t, ent{name: "a", body: "one"}, ent{name: "old-only", body: "x"})
	v1b := tgz(t, ent{name: "a", body: "two"})
	first, err := sb.stage(t, "hello-1.0.tar.gz", v1, StageOptions{})
	require.NoError(t, err)

	again, err := sb.stage(t, "hello-1.0.tar.gz", v1, StageOptions{SHA256: sha256Hex(v1)})
	require.NoError(t, err)
	assert.True(t, again.Reused)
	again.Reused = false
	assert.Equal(t, first, again)

	_, err = sb.stage(t, "hello-1.0.tar.gz", v1, StageOptions{SHA256: sha256Hex(v1b)})
	require.ErrorIs(t, err, ErrChecksumMismatch)

	_, err = sb.stage(t, "hello-1.0.tar.gz", v1b, StageOptions{})
	require.ErrorIs(t, err, ErrExists)
	requireFile(t, first.Dir, "a", "one", 0o644)
	sb.requireOnly(t, "1.0")

	forced, err := sb.stage(t, "hello-1.0.tar.gz", v1b, StageOptions{Force: true})
	require.NoError(t, err)
	assert.False(t, forced.Reused)
	assert.Equal(t, sha256Hex(v1b), forced.SHA256)
	requireFile(t, forced.Dir, "a", "two", 0o644)
	_, err = os.Lstat(filepath.Join(forced.Dir, "old-only"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	got, err := sb.store.Get("1.0")
	require.NoError(t, err)
	assert.Equal(t, forced, got)
	sb.requireOnly(t, "1.0")
}

// TestStageConcurrentSameVersion stages one version from several
// goroutines: exactly one extraction is installed, the others are reused.
func TestStageConcurrentSameVersion(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	data := tgz(t, ent{name: "bin/hello", body: strings.Repeat("x", 1<<16)})
	const n = 4
	results := make([]Release, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = sb.stage(t, "hello-1.0.tar.gz", data, StageOptions{}) })
	}
	wg.Wait()
	installed := 0
	for i := range n {
		require.NoError(t, errs[i])
		if !results[i].Reused {
			installed++
		}
	}
	assert.Equal(t, 1, installed)
	sb.requireOnly(t, "1.0")
}

// TestStageCancel checks that cancellation, before or during the read,
// stops staging with ctx's error and leaves nothing behind.
func TestStageCancel(t *testing.T) {
	t.Parallel()
	data := gzipLevel(t, tarOf(t, ent{name: "a", body: "small"}, ent{name: "big", body: string(random(t, 4<<20))}),
		gzip.NoCompression)

	t.Run("before", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := sb.store.Stage(ctx, "hello-1.0.tar.gz", bytes.NewReader(data), StageOptions{})
		require.ErrorIs(t, err, context.Canceled)
		sb.requireOnly(t)
	})
	t.Run("during", func(t *testing.T) {
		t.Parallel()
		sb := newSandbox(t)
		ctx, cancel := context.WithCancel(t.Context())
		r := &cancelAfter{r: bytes.NewReader(data), n: 1 << 20, cancel: cancel}
		_, err := sb.store.Stage(ctx, "hello-1.0.tar.gz", r, StageOptions{})
		require.ErrorIs(t, err, context.Canceled)
		assert.Less(t, r.read, int64(len(data)))
		sb.requireOnly(t)
	})
}

// cancelAfter cancels once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.read += int64(n); c.read >= c.n {
		c.cancel()
	}
	return n, err
}

// TestStageFreeSpaceCheck checks that Stage refuses to extract when the
// declared size needs more space than is available.
func TestStageFreeSpaceCheck(t *testing.T) {
	t.Parallel()
	sb := newSandbox(t)
	_, err := sb.stage(t, "hello-1.0.tar.gz", tgz(t, ent{name: "a"}), StageOptions{Size: 1 << 60})
	require.ErrorIs(t, err, ErrNoSpace)
	sb.requireOnly(t)
}

// TestStageBoundsDataAfterTheArchive: tar's padding after the end marker
// is read and hashed; more than MaxTrailing bytes after it are refused,
// and an endless stream after it is not read to its end.
func TestStageBoundsDataAfterTheArchive(t *testing.T) {
	t.Parallel()
	archive := tarOf(t, ent{name: "bin/hello", body: "#!/bin/sh\n", mode: 0o755})

	sb := newSandbox(t)
	padded := gzipOf(t, append(archive, make([]byte, 64<<10)...))
	rel, err := sb.stage(t, "hello-1.0.0.tar.gz", padded, StageOptions{})
	require.NoError(t, err)
	assert.Equal(t, sha256Hex(padded), rel.SHA256, "the padding is hashed")

	// Incompressible, so that the ratio limit does not stop it first.
	more := append(gzipOf(t, archive), gzipOf(t, random(t, int(DefaultMaxTrailing)+1))...)
	_, err = sb.stage(t, "hello-1.0.1.tar.gz", more, StageOptions{})
	require.ErrorIs(t, err, ErrLimit)
	assert.Contains(t, err.Error(), "after the end of the tar archive")

	endless := &endlessGzip{chunk: gzipOf(t, random(t, 64<<10))}
	_, err = sb.store.Stage(t.Context(), "hello-1.0.2.tar.gz", io.MultiReader(bytes.NewReader(gzipOf(t, archive)), endless), StageOptions{})
	require.ErrorIs(t, err, ErrLimit)
	assert.Less(t, endless.read, 4*DefaultMaxTrailing, "read of an endless upload after the archive")
	sb.requireOnly(t, "1.0.0")
}

// endlessGzip repeats a gzip member forever and counts what was read.
type endlessGzip struct {
	chunk []byte
	off   int
	read  int64
}

func (e *endlessGzip) Read(p []byte) (int, error) {
	n := copy(p, e.chunk[e.off:])
	e.off = (e.off + n) % len(e.chunk)
	e.read += int64(n)
	return n, nil
}
