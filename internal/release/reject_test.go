package release

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// pwnedEtc is where the "/etc" case would write if the symlink were followed.
const pwnedEtc = "/etc/beamdeploy-release-test-pwned"

// TestStageRejects checks that each malicious or malformed archive is
// refused with the right sentinel, that nothing was written outside D's
// releases and staging directories, and that nothing partial remains in
// them.
func TestStageRejects(t *testing.T) {
	t.Parallel()
	many := make([]ent, 10_000)
	for i := range many {
		many[i] = ent{name: fmt.Sprintf("d%05d/", i), typ: tar.TypeDir}
	}
	file := ent{name: "bin/hello", body: strings.Repeat("hello\n", 1000)}
	validTar := tarOf(t, file)

	tests := []struct {
		name   string
		file   string // default hello-1.0.tar.gz
		build  func(t testing.TB, sb *sandbox) []byte
		limits Limits
		opts   StageOptions
		err    error
		msg    string // substring of the error, if set
	}{
		{name: "dotdot entry", err: ErrInvalidRelease, msg: `".." component`,
			build: ents(ent{name: "../../sentinel/pwned", body: "x"})},
		{name: "dotdot inside entry", err: ErrInvalidRelease,
			build: ents(ent{name: "a/../../sentinel/pwned", body: "x"})},
		{name: "absolute path", err: ErrInvalidRelease, msg: "absolute path",
			build: func(t testing.TB, sb *sandbox) []byte {
				return tgz(t, ent{name: filepath.Join(sb.parent, "sentinel", "pwned"), body: "x"})
			}},
		{name: "symlink to /etc then file through it", err: ErrInvalidRelease, msg: "absolute target",
			build: ents(ent{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
				ent{name: "etc/" + filepath.Base(pwnedEtc), body: "x"})},
		{name: "absolute symlink to sentinel then file through it", err: ErrInvalidRelease,
			build: func(t testing.TB, sb *sandbox) []byte {
				return tgz(t, ent{name: "s", typ: tar.TypeSymlink, link: filepath.Join(sb.parent, "sentinel")},
					ent{name: "s/pwned", body: "x"})
			}},
		{name: "relative symlink escaping then file through it", err: ErrInvalidRelease, msg: "outside the release",
			build: ents(ent{name: "s", typ: tar.TypeSymlink, link: "../../../../sentinel"},
				ent{name: "s/pwned", body: "x"})},
		{name: "symlink inside used as a directory", err: ErrInvalidRelease, msg: "is a symlink",
			build: ents(ent{name: "d/", typ: tar.TypeDir}, ent{name: "l", typ: tar.TypeSymlink, link: "d"},
				ent{name: "l/f", body: "x"})},
		{name: "directory replaced by symlink", err: ErrInvalidRelease, msg: "duplicate entry",
			build: ents(ent{name: "d/", typ: tar.TypeDir}, ent{name: "d", typ: tar.TypeSymlink, link: "."},
				ent{name: "d/pwned", body: "x"})},
		{name: "implicit directory replaced by symlink", err: ErrInvalidRelease, msg: "duplicate entry",
			build: ents(ent{name: "d/f", body: "x"}, ent{name: "d", typ: tar.TypeSymlink, link: "."})},
		{name: "symlink with trailing slash escaping", err: ErrInvalidRelease, msg: "outside the release",
			build: ents(ent{name: "a", typ: tar.TypeSymlink, link: "../../x/"}, ent{name: "a/f", body: "x"})},
		{name: "symlink climbing through another symlink", err: ErrInvalidRelease, msg: `".." after a name`,
			build: ents(ent{name: "s", typ: tar.TypeSymlink, link: "."},
				ent{name: "e", typ: tar.TypeSymlink, link: "s/.."})},
		{name: "symlink escaping the stripped top directory", err: ErrInvalidRelease, msg: "outside the release",
			build: ents(ent{name: "hello-1.0/", typ: tar.TypeDir}, ent{name: "hello-1.0/bin/x", body: "x"},
				ent{name: "hello-1.0/l", typ: tar.TypeSymlink, link: "../hello-1.0/bin/x"})},
		{name: "hardlink to a file outside", err: ErrInvalidRelease, msg: "hard link",
			build: ents(ent{name: "h", typ: tar.TypeLink, link: "../../sentinel/keep"})},
		{name: "hardlink to an absolute path", err: ErrInvalidRelease, msg: "hard link",
			build: ents(ent{name: "h", typ: tar.TypeLink, link: "/etc/passwd"})},
		{name: "sparse file", err: ErrInvalidRelease, msg: "sparse file",
			build: func(t testing.TB, _ *sandbox) []byte { return gzipOf(t, sparseTar(t, 1<<30)) }},
		{name: "char device", err: ErrInvalidRelease, msg: "character device",
			build: ents(ent{name: "null", typ: tar.TypeChar, major: 1, minor: 3})},
		{name: "block device", err: ErrInvalidRelease, msg: "block device",
			build: ents(ent{name: "sda", typ: tar.TypeBlock, major: 8})},
		{name: "fifo", err: ErrInvalidRelease, msg: "fifo",
			build: ents(ent{name: "p", typ: tar.TypeFifo})},
		{name: "entry count over a lowered limit", err: ErrLimit, msg: "entry count 1001 exceeds 1000",
			limits: Limits{MaxEntries: 1000}, build: ents(many...)},
		{name: "implicit directories count as entries", err: ErrLimit, msg: "entry count",
			limits: Limits{MaxEntries: 10}, build: ents(ent{name: strings.Repeat("d/", 20) + "f"})},
		{name: "gzip bomb", err: ErrLimit, msg: "compression ratio",
			build: func(t testing.TB, _ *sandbox) []byte { return bomb(t, 50) }},
		{name: "single-stream gzip bomb", err: ErrLimit, msg: "compression ratio",
			build: ents(ent{name: "zeros", zeros: 8 << 20})},
		{name: "unpacked size", err: ErrLimit, msg: "unpacked size 6000 exceeds 5000",
			limits: Limits{MaxSize: 5000}, build: ents(file)},
		{name: "duplicate entries", err: ErrInvalidRelease, msg: "duplicate entry",
			build: ents(ent{name: "a", body: "1"}, ent{name: "./a", body: "2"})},
		{name: "over-long path", err: ErrLimit, msg: "path length",
			build: ents(ent{name: strings.Repeat(strings.Repeat("p", 100)+"/", 11) + "f"})},
		{name: "over-long symlink target", err: ErrLimit, msg: "symlink target length",
			build: ents(ent{name: "l", typ: tar.TypeSymlink, link: strings.Repeat("x/", 600)})},
		{name: "over-deep path", err: ErrLimit, msg: "path depth 71 exceeds 64",
			build: ents(ent{name: strings.Repeat("a/", 70) + "f"})},
		{name: "over-long component", err: ErrInvalidRelease, msg: "component longer",
			build: ents(ent{name: strings.Repeat("c", 256)})},
		{name: "corrupted gzip", err: ErrInvalidRelease, build: func(t testing.TB, _ *sandbox) []byte {
			gz := gzipOf(t, validTar)
			gz[len(gz)/2] ^= 0xff
			return gz
		}},
		{name: "not gzip", err: ErrInvalidRelease, msg: "gzip",
			build: func(testing.TB, *sandbox) []byte { return validTar }},
		{name: "empty file", err: ErrInvalidRelease,
			build: func(testing.TB, *sandbox) []byte { return nil }},
		{name: "truncated tar", err: ErrInvalidRelease, msg: "unexpected EOF",
			build: func(t testing.TB, _ *sandbox) []byte { return gzipOf(t, validTar[:512+3000]) }},
		{name: "tar without end marker", err: ErrInvalidRelease, msg: "no end-of-archive marker",
			build: func(t testing.TB, _ *sandbox) []byte { return gzipOf(t, validTar[:512+6144]) }},
		{name: "empty archive", err: ErrInvalidRelease, msg: "no entries", build: ents()},
		{name: "only the root directory", err: ErrInvalidRelease, msg: "no entries",
			build: ents(ent{name: "./", typ: tar.TypeDir})},
		{name: "entry under .beamdeploy", err: ErrInvalidRelease, msg: "reserved",
			build: ents(file, ent{name: ".beamdeploy/release.json", body: "{}"})},
		{name: "entry under .beamdeploy after stripping", err: ErrInvalidRelease, msg: "reserved",
			build: ents(ent{name: "hello-1.0/bin/x"}, ent{name: "hello-1.0/.beamdeploy/release.json", body: "{}"})},
		{name: "root entry that is a file", err: ErrInvalidRelease, msg: "must be a directory",
			build: ents(ent{name: ".", typ: tar.TypeReg})},
		{name: "bad filename", file: "hello.tar.gz", err: ErrInvalidRelease, msg: "want NAME-VERSION.tar.gz",
			build: ents(file)},
		{name: "bad suffix", file: "hello-1.0.zip", err: ErrInvalidRelease, build: ents(file)},
		{name: "bad version character", file: "hello-1.0%.tar.gz", err: ErrInvalidRelease, build: ents(file)},
		{name: "sha256 mismatch", err: ErrChecksumMismatch, opts: StageOptions{SHA256: sha256Hex(nil)},
			build: ents(file)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb := newSandbox(t)
			sb.store.Limits = tt.limits
			name := tt.file
			if name == "" {
				name = "hello-1.0.tar.gz"
			}
			_, err := sb.stage(t, name, tt.build(t, sb), tt.opts)
			t.Log(err)
			require.ErrorIs(t, err, tt.err)
			if tt.msg != "" {
				require.ErrorContains(t, err, tt.msg)
			}
			sb.requireOnly(t)
			_, err = os.Lstat(pwnedEtc)
			require.ErrorIs(t, err, os.ErrNotExist)
			_, err = sb.store.Get("1.0")
			require.ErrorIs(t, err, ErrNotFound)
		})
	}
}

// ents returns a build function for a gzipped tar of es.
func ents(es ...ent) func(testing.TB, *sandbox) []byte {
	return func(t testing.TB, _ *sandbox) []byte { return tgz(t, es...) }
}
