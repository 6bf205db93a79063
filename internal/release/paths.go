package release

import (
	"archive/tar"
	"fmt"
	"strings"
)

const maxComponentLen = 255 // NAME_MAX on Linux

// cleanPath validates an archive entry name and returns it relative to the
// extraction root, without "." or empty components and without a trailing
// slash; the root itself is ".".
func cleanPath(name string, lim Limits) (string, error) {
	if len(name) > lim.MaxPathLen {
		return "", limitErr("path length", int64(len(name)), int64(lim.MaxPathLen))
	}
	switch {
	case name == "":
		return "", fmt.Errorf("%w: entry with an empty name", ErrInvalidRelease)
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: entry %q: NUL in name", ErrInvalidRelease, name)
	case name[0] == '/':
		return "", fmt.Errorf("%w: entry %q: absolute path", ErrInvalidRelease, name)
	}
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return "", fmt.Errorf("%w: entry %q: \"..\" component", ErrInvalidRelease, name)
		case len(c) > maxComponentLen:
			return "", fmt.Errorf("%w: entry %q: component longer than %d bytes", ErrInvalidRelease, name, maxComponentLen)
		}
		parts = append(parts, c)
	}
	if len(parts) > lim.MaxDepth {
		return "", limitErr("path depth", int64(len(parts)), int64(lim.MaxDepth))
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

// checkLinkTarget validates the target of the symlink at the clean path
// link. The target must be relative, may use ".." only as leading
// components, and must not climb above the root from the link's directory.
// Because no entry may have a symlink ancestor, every directory above a
// link is real, so each link resolves inside the root no matter how links
// chain: it climbs real directories, then only descends.
func checkLinkTarget(link, target string) error {
	switch {
	case target == "":
		return fmt.Errorf("%w: symlink %q: empty target", ErrInvalidRelease, link)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("%w: symlink %q: NUL in target", ErrInvalidRelease, link)
	case target[0] == '/':
		return fmt.Errorf("%w: symlink %q -> %q: absolute target", ErrInvalidRelease, link, target)
	}
	up, named := 0, false
	for c := range strings.SplitSeq(target, "/") {
		switch {
		case c == "" || c == ".":
		case c != "..":
			named = true
		case named:
			return fmt.Errorf("%w: symlink %q -> %q: \"..\" after a name", ErrInvalidRelease, link, target)
		default:
			up++
		}
	}
	if depth := strings.Count(link, "/"); up > depth {
		return fmt.Errorf("%w: symlink %q -> %q: target outside the release", ErrInvalidRelease, link, target)
	}
	return nil
}

func limitErr(limit string, value, maximum int64) error {
	return fmt.Errorf("%w: %s %d exceeds %d", ErrLimit, limit, value, maximum)
}

func typeName(flag byte) string {
	switch flag {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	default:
		return fmt.Sprintf("type %q", flag)
	}
}
