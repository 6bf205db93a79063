package release

import (
	"fmt"
	"path/filepath"
	"strings"
)

const (
	maxNameLen  = 64
	wantNameMsg = "want NAME-VERSION.tar.gz or NAME_VERSION_OS_ARCH.tar.gz (or .tgz) " +
		"with VERSION starting with a digit or v and a digit"
)

// ParseFilename returns the app name and version encoded in a release
// tarball name; any directory part of filename is ignored. Two forms are
// accepted, with the suffix .tar.gz or .tgz:
//
//	NAME-VERSION          my-app-1.2.3.tar.gz        → my-app, 1.2.3
//	NAME_VERSION_OS_ARCH  hello_1.2.3_linux_amd64.tgz → hello, 1.2.3
//
// VERSION is the first part, after a "-" (or "_" in the second form), that
// starts with a digit or with "v" and a digit. NAME is up to 64 characters
// from [A-Za-z0-9._-] starting with a letter or digit; VERSION up to 64
// from [A-Za-z0-9._+~-]. Other names give an error wrapping
// [ErrInvalidRelease].
func ParseFilename(filename string) (app, version string, err error) {
	base := filepath.Base(filename)
	stem, ok := strings.CutSuffix(base, ".tar.gz")
	if !ok {
		stem, ok = strings.CutSuffix(base, ".tgz")
	}
	if ok {
		app, version, ok = splitGoStyle(stem)
		if !ok {
			app, version, ok = splitDashStyle(stem)
		}
	}
	if !ok || validApp(app) != nil || validVersion(version) != nil {
		return "", "", fmt.Errorf("%w: file name %q: %s", ErrInvalidRelease, base, wantNameMsg)
	}
	return app, version, nil
}

// ParseUpload is ParseFilename for an upload whose version may be given
// apart from its file name (CI artifacts named app.tar.gz, a tarball read
// from stdin). With version empty it is ParseFilename. Otherwise version
// is the release's version, the file name need only end in .tar.gz or
// .tgz, and app is the NAME the file name carries, else its stem.
func ParseUpload(filename, version string) (app, ver string, err error) {
	if version == "" {
		return ParseFilename(filename)
	}
	if err := validVersion(version); err != nil {
		return "", "", err
	}
	if app, _, err := ParseFilename(filename); err == nil {
		return app, version, nil
	}
	base := filepath.Base(filename)
	stem, ok := strings.CutSuffix(base, ".tar.gz")
	if !ok {
		stem, ok = strings.CutSuffix(base, ".tgz")
	}
	if !ok || validApp(stem) != nil {
		return "", "", fmt.Errorf("%w: file name %q: want NAME.tar.gz or NAME.tgz, NAME up to %d characters from [A-Za-z0-9._-]", ErrInvalidRelease, base, maxNameLen)
	}
	return stem, version, nil
}

// splitGoStyle splits NAME_VERSION_OS_ARCH; OS and ARCH may themselves
// contain underscores (x86_64).
func splitGoStyle(stem string) (app, version string, ok bool) {
	parts := strings.Split(stem, "_")
	for i := 1; i+2 < len(parts); i++ {
		if startsVersion(parts[i]) {
			for _, p := range parts[i+1:] {
				if p == "" || strings.Trim(p, alnum) != "" {
					return "", "", false
				}
			}
			return strings.Join(parts[:i], "_"), parts[i], true
		}
	}
	return "", "", false
}

func splitDashStyle(stem string) (app, version string, ok bool) {
	for i := 1; i < len(stem); i++ {
		if stem[i-1] == '-' && startsVersion(stem[i:]) {
			return stem[:i-1], stem[i:], true
		}
	}
	return "", "", false
}

func startsVersion(s string) bool {
	s = strings.TrimPrefix(s, "v")
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func validApp(app string) error {
	if !validName(app, alnum+"._-") {
		return fmt.Errorf("%w: app name %q: want up to %d characters from [A-Za-z0-9._-] starting with a letter or digit",
			ErrInvalidRelease, app, maxNameLen)
	}
	return nil
}

// validVersion reports whether version is usable as a directory name under
// D/releases: up to 64 characters from [A-Za-z0-9._+~-] starting with a
// letter or digit (so never ".", ".." or hidden).
func validVersion(version string) error {
	if !validName(version, alnum+"._+~-") {
		return fmt.Errorf("%w: version %q: want up to %d characters from [A-Za-z0-9._+~-] starting with a letter or digit",
			ErrInvalidRelease, version, maxNameLen)
	}
	return nil
}

func validName(s, allowed string) bool {
	return s != "" && len(s) <= maxNameLen &&
		strings.IndexByte(alnum, s[0]) >= 0 && strings.Trim(s, allowed) == ""
}
