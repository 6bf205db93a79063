package release

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzStage feeds arbitrary tar streams to Stage; the harness fixes header
// checksums and gzips, so the fuzzer explores header fields rather than
// checksums and deflate. It checks that Stage and checks that it
// never panics, never writes outside D's releases and staging
// directories, leaves nothing behind on error, and on success produces a
// tree whose symlinks all resolve inside the release.
func FuzzStage(f *testing.F) {
	seeds := [][]ent{
		{{name: "bin/hello", body: "hi", mode: 0o4755}, {name: "l", typ: tar.TypeSymlink, link: "bin/hello"}},
		{{name: "fuzz-1.0/", typ: tar.TypeDir}, {name: "fuzz-1.0/a/b", body: "x"}, {name: "fuzz-1.0/l", typ: tar.TypeSymlink, link: "../x"}},
		{{name: "fuzz/a", body: "x"}, {name: "fuzz/.beamdeploy/x", body: "x"}, {name: "fuzz/l", typ: tar.TypeSymlink, link: "a/../.."}},
		{{name: "../../sentinel/pwned", body: "x"}},
		{{name: "s", typ: tar.TypeSymlink, link: "../../sentinel"}, {name: "s/pwned", body: "x"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d", typ: tar.TypeSymlink, link: "."}, {name: "d/f", body: "x"}},
		{{name: "a", typ: tar.TypeSymlink, link: "../../x/"}},
		{{name: "s", typ: tar.TypeSymlink, link: "."}, {name: "e", typ: tar.TypeSymlink, link: "s/.."}},
		{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}},
		{{name: "null", typ: tar.TypeChar, major: 1, minor: 3}},
		{{name: "a", body: "1"}, {name: "a", body: "2"}},
		{{name: ".beamdeploy/release.json", body: "{}"}},
	}
	for _, s := range seeds {
		f.Add(tarOf(f, s...))
	}
	f.Add(sparseTar(f, 1<<30))
	base := fuzzBase(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		parent, err := os.MkdirTemp(base, "")
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, os.RemoveAll(parent)) })
		sb := newSandboxIn(t, parent)
		sb.store.Limits = Limits{MaxSize: 1 << 20, MaxEntries: 200, MaxDepth: 16, MaxPathLen: 256}
		var rel Release
		rel, err = sb.stage(t, "fuzz-1.0.tar.gz", gzipOf(t, fixChecksums(raw)), StageOptions{})
		if err != nil {
			if !errors.Is(err, ErrInvalidRelease) && !errors.Is(err, ErrLimit) {
				t.Fatalf("unexpected error class: %v", err)
			}
			sb.requireOnly(t)
			return
		}
		sb.requireOnly(t, "1.0")
		requireLinksInside(t, rel.Dir)
		got, err := sb.store.Get("1.0")
		require.NoError(t, err)
		require.Equal(t, rel, got)
		require.False(t, strings.HasPrefix(rel.Dir, sb.parent+"/sentinel"))
	})
}

// fuzzBase returns a directory for the fuzz sandboxes: on /dev/shm if
// possible, because fsync there is free and the fuzzer runs ~5× faster.
func fuzzBase(f *testing.F) string {
	dir, err := os.MkdirTemp("/dev/shm", "beamdeploy-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fixChecksums returns raw with the checksum of every header block it can
// find recomputed, so mutated headers still reach the extractor.
func fixChecksums(raw []byte) []byte {
	raw = bytes.Clone(raw)
	for off := 0; off+512 <= len(raw); {
		blk := raw[off : off+512]
		if bytes.Equal(blk, make([]byte, 512)) {
			break
		}
		copy(blk[148:156], "        ")
		var sum int64
		for _, b := range blk {
			sum += int64(b)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		size, err := strconv.ParseInt(strings.Trim(string(blk[124:136]), " \x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(raw)) {
			break
		}
		if strings.IndexByte("123456", blk[156]) >= 0 { // header-only types
			size = 0
		}
		off += 512 + int(size+511)/512*512
	}
	return raw
}
