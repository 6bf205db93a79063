// Package release stages release tarballs into an app's state directory and
// lists, reads and removes the staged releases.
//
// A [Store] owns one app state directory D:
//
//	D/releases/VERSION/                          a release root (the extracted tree)
//	D/releases/VERSION/.beamdeploy/release.json  its metadata (see [Release])
//	D/staging/                                   in-progress extractions
//
// Release tarballs are named NAME-VERSION.tar.gz or NAME_VERSION_OS_ARCH.tar.gz
// (also .tgz); see [ParseFilename].
//
// # Extraction
//
// [Store.Stage] is run as root on operator-supplied archives, so extraction
// is defensive. Every filesystem operation goes through an [os.Root] opened
// on a fresh directory under D/staging, and on top of that:
//
//   - only regular files, directories and relative symlinks are accepted;
//     hard links, devices, FIFOs and every other entry type are refused;
//   - entry names must be relative and must not contain ".." components;
//   - no entry may have a symlink as an ancestor, so nothing is ever written
//     through a symlink, even one that points inside the release;
//   - a symlink target must be relative, may only use ".." as leading
//     components ("../../lib/x", not "a/../b"), and must not climb above
//     the release root from the link's own directory; with the two rules
//     above this keeps every symlink in the tree, however chained, inside
//     the release root;
//   - duplicate entries and entries under .beamdeploy/ (reserved) are
//     refused;
//   - modes are not taken from the archive beyond its execute bits:
//     directories and files with any execute bit get 0755, other files
//     0644 (so nothing is writable by group or others, setuid, setgid and
//     sticky bits are dropped, and the app's user, who owns none of it,
//     can read all of it); everything is owned by the extracting process
//     (root), never by the archive's owners; times are ignored;
//   - size, entry count, path length and depth, and compression ratio are
//     bounded by [Limits].
//
// When every entry is under one top-level directory named after the
// release — the app name alone or followed by "-" or "_", as in
// "hello-1.2.3/bin/hello" or "hello_1.2.3_linux_amd64/hello" — that
// directory becomes the release root. Any other single top-level directory
// ("bin/hello") is kept. The tree and its metadata are
// fsynced and renamed into D/releases only when complete; on any error,
// including cancellation, nothing partial is left behind.
package release
