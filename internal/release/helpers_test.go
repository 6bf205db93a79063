package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ent is one archive entry for tarOf.
type ent struct {
	name  string
	typ   byte // tar.TypeReg if zero
	body  string
	zeros int64 // if set, the body is this many zero bytes
	mode  int64 // 0644 for files, 0755 for directories if zero
	link  string
	major int64
	minor int64
	pax   map[string]string
	uid   int // owner in the header
	gid   int
}

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid,
			Devmajor: e.major, Devminor: e.minor, PAXRecords: e.pax, ModTime: time.Unix(1700000000, 0)}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body)) + e.zeros
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Name: e.name, Typeflag: e.typ, PAXRecords: e.pax, Format: tar.FormatPAX}
		}
		require.NoError(t, tw.WriteHeader(hdr))
		_, err := io.WriteString(tw, e.body)
		require.NoError(t, err)
		_, err = io.CopyN(tw, zeroReader{}, e.zeros)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func gzipOf(t testing.TB, raw []byte) []byte {
	t.Helper()
	return gzipLevel(t, raw, gzip.DefaultCompression)
}

func gzipLevel(t testing.TB, raw []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	require.NoError(t, err)
	_, err = zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func tgz(t testing.TB, ents ...ent) []byte { return gzipOf(t, tarOf(t, ents...)) }

// bomb returns a gzip file, made of concatenated members so that it is
// quick to build, holding a tar with one file of mib MiB of zeros.
func bomb(t testing.TB, mib int) []byte {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(mib) << 20}))
	out := gzipOf(t, hdr.Bytes()) // the header block; the writer is abandoned
	zeros := gzipOf(t, make([]byte, 1<<20))
	for range mib {
		out = append(out, zeros...)
	}
	return append(out, gzipOf(t, make([]byte, 2*512))...)
}

// sparseTar returns a tar holding a PAX 0.1 sparse file of logical size
// size with a single data byte. archive/tar cannot write sparse files, so
// the local PAX header is a global one with its type flag patched.
func sparseTar(t testing.TB, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"GNU.sparse.numblocks": "1", "GNU.sparse.map": "0,1",
			"GNU.sparse.size": fmt.Sprint(size)}}))
	require.NoError(t, tw.Flush())
	pax := buf.Bytes()
	pax[156] = tar.TypeXHeader
	copy(pax[148:156], "        ")
	var sum int64
	for _, b := range pax[:512] {
		sum += int64(b)
	}
	copy(pax[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return append(pax, tarOf(t, ent{name: "sparse", body: "x"})...)
}

// random returns n random bytes.
func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sandbox is an app state directory D = parent/app next to a sentinel
// directory, so that writes outside D can be detected.
type sandbox struct {
	parent string
	store  *Store
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	return newSandboxIn(t, t.TempDir())
}

// newSandboxIn is newSandbox in the existing empty directory parent.
func newSandboxIn(t testing.TB, parent string) *sandbox {
	t.Helper()
	require.NoError(t, os.Mkdir(filepath.Join(parent, "sentinel"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "sentinel", "keep"), []byte("keep"), 0o644))
	return &sandbox{parent: parent, store: &Store{Dir: filepath.Join(parent, "app")}}
}

func (sb *sandbox) stage(t testing.TB, name string, data []byte, opts StageOptions) (Release, error) {
	t.Helper()
	return sb.store.Stage(t.Context(), name, bytes.NewReader(data), opts)
}

// requireOnly fails unless parent holds nothing but the sentinel, D, its
// releases and staging directories, and the given staged versions, with
// staging empty.
func (sb *sandbox) requireOnly(t testing.TB, versions ...string) {
	t.Helper()
	allowed := map[string]bool{".": true, "sentinel": true, "sentinel/keep": true,
		"app": true, "app/releases": true, "app/staging": true}
	var unexpected []string
	err := filepath.WalkDir(sb.parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(sb.parent, p)
		if err != nil {
			return err
		}
		if !allowed[rel] && !underVersion(rel, versions) {
			unexpected = append(unexpected, rel)
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, unexpected, "paths outside the expected tree")
	data, err := os.ReadFile(filepath.Join(sb.parent, "sentinel", "keep"))
	require.NoError(t, err)
	require.Equal(t, "keep", string(data))
}

func underVersion(rel string, versions []string) bool {
	for _, v := range versions {
		dir := filepath.Join("app", "releases", v)
		if rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// requireLinksInside fails if a symlink under dir resolves outside it,
// judged by the kernel (EvalSymlinks) for links that resolve and by
// os.Root for dangling ones.
func requireLinksInside(t testing.TB, dir string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer root.Close()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if target, err := filepath.EvalSymlinks(p); err == nil {
			assert.True(t, target == real || strings.HasPrefix(target, real+"/"), "%s resolves to %s", p, target)
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		// os.Root has no exported error for escapes.
		_, err = root.Stat(rel)
		assert.NotContains(t, err.Error(), "escapes", "dangling symlink %s", p)
		return nil
	})
	require.NoError(t, err)
}
