package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const tarBlockSize = 512

type kind uint8

const (
	kindNone        kind = iota
	kindImplicitDir      // parent directory created for an entry
	kindDir
	kindFile
	kindSymlink
)

type link struct{ path, target string }

// extractor unpacks one archive into root. nodes mirrors everything it
// created, so the tree never has to be inspected through the filesystem.
type extractor struct {
	root    *os.Root
	lim     Limits
	src     *source
	inf     *inflated
	nodes   map[string]kind
	links   []link
	entries int // headers read plus implicit directories
	used    int // entries other than the root and global headers
	size    int64
	files   int

	app      string // app name, for recognising a wrapper directory
	top      string // first component of the first entry
	strip    bool   // so far, every entry is in top and top is a wrapper
	reserved bool   // some entry is TOP/.beamdeploy or under it
}

// extracted is what extract produced: the release root (dir, or one
// top-level directory inside it) and its content totals.
type extracted struct {
	root  string
	size  int64
	files int
}

// extract unpacks the gzip-compressed tar stream read from src into the
// new directory dir, fsyncing files and directories.
func extract(ctx context.Context, dir, app string, src *source, lim Limits) (extracted, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return extracted{}, fmt.Errorf("extract: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return extracted{}, fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	x := &extractor{root: root, lim: lim, src: src, app: app, nodes: map[string]kind{}}
	gz, err := gzip.NewReader(src)
	if err != nil {
		return extracted{}, x.readErr("read gzip header", err)
	}
	x.inf = &inflated{r: gz, src: src, ratio: lim.MaxRatio}
	if err := x.run(ctx, tar.NewReader(x.inf)); err != nil {
		return extracted{}, err
	}
	top, err := x.finish()
	if err != nil {
		return extracted{}, err
	}
	return extracted{root: filepath.Join(dir, top), size: x.size, files: x.files}, nil
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := x.inf.n
		hdr, err := tr.Next()
		if err == io.EOF {
			// archive/tar also reports io.EOF when the stream stops at an
			// entry boundary; a real end has at least one zero block.
			if x.inf.n-before < tarBlockSize {
				return fmt.Errorf("%w: tar archive truncated (no end-of-archive marker)", ErrInvalidRelease)
			}
			break
		}
		if err != nil {
			return x.readErr("read tar header", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	if x.used == 0 {
		return fmt.Errorf("%w: archive has no entries", ErrInvalidRelease)
	}
	// Read the rest so the sha256 covers the whole tarball, but no more
	// than MaxTrailing bytes.
	left := x.lim.MaxTrailing
	for _, part := range []struct {
		what string
		r    io.Reader
	}{{"after end of tar archive", x.inf}, {"after end of gzip stream", x.src}} {
		n, err := io.Copy(io.Discard, io.LimitReader(part.r, left+1))
		if err != nil {
			return x.readErr("read "+part.what, err)
		}
		if left -= n; left < 0 {
			return limitErr("bytes after the end of the tar archive", x.lim.MaxTrailing-left, x.lim.MaxTrailing)
		}
	}
	return nil
}

// readErr classifies an error from reading the archive: cancellation, a
// failing source and the ratio limit pass through; the rest means the
// archive is malformed.
func (x *extractor) readErr(what string, err error) error {
	if x.src.err != nil {
		return x.src.err
	}
	if x.inf != nil && x.inf.err != nil {
		return x.inf.err
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidRelease, what, err)
}

func (x *extractor) count() error {
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return limitErr("entry count", int64(x.entries), int64(x.lim.MaxEntries))
	}
	return nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if err := x.count(); err != nil || hdr.Typeflag == tar.TypeXGlobalHeader {
		return err // global pax headers (git archive) carry no file
	}
	if err := checkType(hdr); err != nil {
		return err
	}
	p, err := cleanPath(hdr.Name, x.lim)
	switch {
	case err != nil:
		return err
	case p == "." && hdr.Typeflag == tar.TypeDir:
		return nil // the release root is a directory like any other
	case p == ".":
		return fmt.Errorf("%w: entry %q: the release root must be a directory", ErrInvalidRelease, hdr.Name)
	}
	if err := x.track(p, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	if err := x.parents(p); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(p)
	case tar.TypeSymlink:
		return x.symlink(p, hdr)
	default:
		return x.file(p, hdr, r)
	}
}

// isWrapper reports whether a top-level directory is named after the
// release (APP, APP-…, APP_…), so that it is stripped when it holds
// every entry. A lone bin/ or app/ directory is content, not a wrapper.
func isWrapper(name, app string) bool {
	return name == app || strings.HasPrefix(name, app+"-") || strings.HasPrefix(name, app+"_")
}

// checkType refuses all but regular files, directories and symlinks.
// Sparse files are refused too: their holes would bypass the ratio limit.
func checkType(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeSymlink:
		return nil
	case tar.TypeReg:
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("%w: entry %q: sparse file not allowed", ErrInvalidRelease, hdr.Name)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: entry %q: %s not allowed", ErrInvalidRelease, hdr.Name, typeName(hdr.Typeflag))
}

// track enforces the reserved directory and records what decides whether
// the single top-level directory is stripped.
func (x *extractor) track(p string, isDir bool) error {
	first, rest, nested := strings.Cut(p, "/")
	if first == metaDir {
		return fmt.Errorf("%w: entry %q: %s is reserved for the release root", ErrInvalidRelease, p, metaDir+"/")
	}
	if x.used == 0 {
		x.top, x.strip = first, isWrapper(first, x.app)
	}
	x.used++
	if first != x.top || !nested && !isDir {
		x.strip = false
	}
	if nested && (rest == metaDir || strings.HasPrefix(rest, metaDir+"/")) {
		x.reserved = true
	}
	return nil
}

// parents creates the missing ancestors of p, refusing symlink or file
// ancestors.
func (x *extractor) parents(p string) error {
	for i := range len(p) {
		if p[i] != '/' {
			continue
		}
		switch q := p[:i]; x.nodes[q] {
		case kindDir, kindImplicitDir:
		case kindSymlink:
			return fmt.Errorf("%w: entry %q: ancestor %q is a symlink", ErrInvalidRelease, p, q)
		case kindFile:
			return fmt.Errorf("%w: entry %q: ancestor %q is a file", ErrInvalidRelease, p, q)
		default:
			if err := x.count(); err != nil {
				return err
			}
			if err := x.root.Mkdir(q, 0o700); err != nil {
				return fmt.Errorf("create directory %s: %w", q, err)
			}
			x.nodes[q] = kindImplicitDir
		}
	}
	return nil
}

// claim records p as k, refusing duplicates; an implicitly created
// directory may be claimed once by a directory entry.
func (x *extractor) claim(p string, k kind) error {
	if old := x.nodes[p]; old != kindNone && (old != kindImplicitDir || k != kindDir) {
		return fmt.Errorf("%w: duplicate entry %q", ErrInvalidRelease, p)
	}
	x.nodes[p] = k
	return nil
}

func (x *extractor) dir(p string) error {
	existed := x.nodes[p] == kindImplicitDir
	if err := x.claim(p, kindDir); err != nil {
		return err
	}
	if existed {
		return nil
	}
	if err := x.root.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", p, err)
	}
	return nil
}

func (x *extractor) symlink(p string, hdr *tar.Header) error {
	if len(hdr.Linkname) > x.lim.MaxPathLen {
		return limitErr("symlink target length", int64(len(hdr.Linkname)), int64(x.lim.MaxPathLen))
	}
	if err := checkLinkTarget(p, hdr.Linkname); err != nil {
		return err
	}
	if err := x.claim(p, kindSymlink); err != nil {
		return err
	}
	if err := x.root.Symlink(hdr.Linkname, p); err != nil {
		return fmt.Errorf("create symlink %s: %w", p, err)
	}
	x.links = append(x.links, link{p, hdr.Linkname})
	return nil
}

func (x *extractor) file(p string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size > x.lim.MaxSize-x.size {
		return limitErr("unpacked size", x.size+hdr.Size, x.lim.MaxSize)
	}
	if err := x.claim(p, kindFile); err != nil {
		return err
	}
	f, err := x.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	err = x.write(f, p, hdr, r)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", p, cerr)
	}
	x.size += hdr.Size
	x.files++
	return err
}

func (x *extractor) write(f *os.File, p string, hdr *tar.Header, r io.Reader) error {
	er := &errReader{r: r}
	n, err := io.Copy(f, er)
	if er.err != nil {
		return x.readErr("read "+p, er.err)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: entry %q: %d of %d bytes", ErrInvalidRelease, p, n, hdr.Size)
	}
	if err := f.Chmod(fileMode(hdr.Mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// Modes in a release: whatever the archive says, nothing is writable but
// by its owner (the extracting process: root), and everything is readable
// by the app's user, who owns none of it. Setuid, setgid and sticky bits
// are dropped.
const (
	dirMode  fs.FileMode = 0o755
	execMode fs.FileMode = 0o755 // a file with any execute bit
	dataMode fs.FileMode = 0o644 // any other file
)

// fileMode is the mode of a file whose archive header says mode.
func fileMode(mode int64) fs.FileMode {
	if mode&0o111 != 0 {
		return execMode
	}
	return dataMode
}

// finish picks the release root, applies directory modes and fsyncs every
// directory, deepest first. It returns the release root relative to the
// extraction root.
func (x *extractor) finish() (string, error) {
	top, err := x.releaseRoot()
	if err != nil {
		return "", err
	}
	var dirs []string
	for p, k := range x.nodes {
		if k == kindDir || k == kindImplicitDir {
			dirs = append(dirs, p)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range append(dirs, ".") {
		if err := syncRootDir(x.root, d, dirMode); err != nil {
			return "", fmt.Errorf("sync directory %s: %w", d, err)
		}
	}
	return top, nil
}

// releaseRoot returns the wrapper directory to strip, or ".", after
// checking that stripping neither exposes .beamdeploy nor lets a symlink
// climb out of the new root.
func (x *extractor) releaseRoot() (string, error) {
	if k := x.nodes[x.top]; !x.strip || (k != kindDir && k != kindImplicitDir) {
		return ".", nil
	}
	if x.reserved {
		return "", fmt.Errorf("%w: %s/%s is reserved for the release root", ErrInvalidRelease, x.top, metaDir)
	}
	for _, l := range x.links {
		if err := checkLinkTarget(strings.TrimPrefix(l.path, x.top+"/"), l.target); err != nil {
			return "", err
		}
	}
	return x.top, nil
}
