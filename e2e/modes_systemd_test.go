package e2e_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

// modeRow is one row of the README's "Files and their modes" table.
type modeRow struct{ path, owner, mode, why string }

// readmeModes reads the table of "Files and their modes" in README.md.
func readmeModes(t *testing.T) []modeRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	defer f.Close()
	var rows []modeRow
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "### Files and their modes":
			in = true
		case in && strings.HasPrefix(line, "#"):
			in = false
		case in && strings.HasPrefix(line, "| `/"):
			c := strings.Split(line, "|")
			require.Len(t, c, 6, "README table row %q", line)
			rows = append(rows, modeRow{strings.Trim(strings.TrimSpace(c[1]), "`"), strings.TrimSpace(c[2]),
				strings.TrimSpace(c[3]), strings.TrimSpace(c[4])})
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(rows), 15, "README.md has no table under \"### Files and their modes\"")
	return rows
}

// tarEntry is a file or directory (name ending in "/") with its mode.
type tarEntry struct {
	name string
	mode int64
	body []byte
}

// writeTarballModes writes a release tarball with the given modes, owned by
// uid 4242 in the archive.
func writeTarballModes(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: e.mode, Size: int64(len(e.body)), Uid: 4242, Gid: 4242}
		if strings.HasSuffix(e.name, "/") {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		require.NoError(t, tw.WriteHeader(hdr))
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
}

// probeScript is bin/hello of an open release: as the instance's own
// user, it writes to $STATE_DIRECTORY/probe what it could write or read of
// its release and of beamdeploy's files, then runs the real server.
const probeScript = `#!/bin/sh
{
	echo "uid $(id -u)"
	for f in . bin bin/hello bin/hello.real VERSION beamdeploy.json data data/file \
		"$STATE" "$STATE/releases" "$STATE/hot" /etc/beamdeploy "/etc/beamdeploy/$BEAMDEPLOY_APP.json"; do
		[ -w "$f" ] && echo "writable $f"
	done
	for f in "$STATE/state.json" "$STATE/handoff.json"; do
		cat "$f" >/dev/null 2>&1 && echo "readable $f"
	done
	touch new 2>/dev/null && echo "created new in the release"
	echo done
} >"$STATE_DIRECTORY/probe" 2>&1
exec "$(dirname "$0")/hello.real" "$@"
`

// openRelease is a hello release packed with modes 0777 and 0666 whose
// bin/hello probes what its instance may write.
func openRelease(t *testing.T, version, app string) string {
	t.Helper()
	bin, err := os.ReadFile(helloBin(t, version))
	require.NoError(t, err)
	script := strings.Replace(probeScript, "#!/bin/sh\n", "#!/bin/sh\nSTATE="+config.Paths{}.StateDir(app)+"\n", 1)
	p := filepath.Join(t.TempDir(), "hello-"+version+".tar.gz")
	writeTarballModes(t, p, []tarEntry{
		{"bin/", 0o777, nil},
		{"bin/hello", 0o777, []byte(script)},
		{"bin/hello.real", 0o777, bin},
		{"VERSION", 0o666, []byte(version + "\n")},
		{"beamdeploy.json", 0o666, []byte(`{"compat":"hello-1"}`)},
		{"data/", 0o777, nil},
		{"data/file", 0o666, []byte("x")},
	})
	return p
}

// asUID runs a shell script as uid:gid with no supplementary groups and
// returns its output.
func asUID(t *testing.T, uid, gid uint32, script string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

func owner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// After init (under umask 077, over directories left at 0700), swaps and
// a hot upgrade, every path in the README's table has the owner and mode
// the table gives; a release packed with 0777/0666 modes is writable by
// nobody but root; and its instance, as the app's dynamic user, can write
// neither its release nor any file of beamdeploy's, nor read the parent's.
func TestSystemdFileModesMatchREADME(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	p := config.Paths{}
	for _, d := range []string{p.StateDir(a.name), p.RunDir(a.name)} {
		require.NoError(t, os.Chmod(d, 0o700))
	}
	out, err := exec.CommandContext(t.Context(), "sh", "-c", `umask 077 && exec "$@"`, "sh", a.bin, "init", a.name,
		"--listen", a.addr, "--exec", "bin/hello", "--drain-timeout", "5s", "--ready-timeout", "10s", "--force").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "instances run as "+config.DynamicUserName(a.name))
	// The deploy group exists (as after the package's install), so that the
	// admin socket is the group's.
	require.NoError(t, exec.Command("groupadd", "-f", "--system", "beamdeploy").Run())
	out, err = exec.Command("systemctl", "restart", a.name+".service").CombinedOutput()
	require.NoError(t, err, "%s", out)

	a.mustUpgrade(hotRelease(t, "1.0.0", "hello-1"))
	a.mustUpgrade(openRelease(t, "1.1.0", a.name)) // the old instance puts its count: handoff.json
	res, stderr, err := a.hotUpgrade(hotRelease(t, "1.2.0", "hello-1"))
	require.NoError(t, err, stderr)
	unit := res.To.Unit
	requireServing(t, a, "1.2.0")

	uid, gid := owner(t, "/proc/"+strconv.Itoa(mainPID(t, unit)))
	assert.Equal(t, config.DynamicUserName(a.name), show(unit, "User"))
	require.True(t, uid >= config.DynamicUIDMin && uid <= config.DynamicUIDMax, "instance uid %d is not a dynamic user's", uid)

	for _, row := range readmeModes(t) {
		path := strings.NewReplacer("APP", a.name, "UNIT", unit).Replace(row.path)
		wantUID, wantGID := uint32(0), uint32(0)
		switch row.owner {
		case "the app's user":
			wantUID, wantGID = uid, gid
		case "root, group beamdeploy":
			g, err := user.LookupGroup("beamdeploy")
			require.NoError(t, err)
			n, err := strconv.Atoi(g.Gid)
			require.NoError(t, err)
			wantGID = uint32(n)
		default:
			require.Equal(t, "root", row.owner, "README row %s", row.path)
		}
		if strings.HasSuffix(path, "/VERSION") {
			dirs, err := filepath.Glob(strings.TrimSuffix(path, "VERSION") + "*")
			require.NoError(t, err)
			require.Len(t, dirs, 3, "releases")
			for _, d := range dirs {
				requireReleaseModes(t, d)
			}
			continue
		}
		fi, err := os.Lstat(path)
		if !assert.NoError(t, err, "README row %s", row.path) {
			continue
		}
		gotUID, gotGID := owner(t, path)
		assert.Equal(t, [2]uint32{wantUID, wantGID}, [2]uint32{gotUID, gotGID}, "owner of %s", path)
		switch kind, perm, _ := strings.Cut(row.mode, " "); {
		case kind == "symlink":
			target := regexp.MustCompile("`([^`]+)`").FindStringSubmatch(row.why)
			require.NotNil(t, target, "README row %s names no target", row.path)
			assert.Equal(t, fs.ModeSymlink, fi.Mode().Type(), path)
			got, err := os.Readlink(path)
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(target[1], "APP", a.name), got, path)
		default:
			want, err := strconv.ParseUint(kind, 8, 32)
			require.NoError(t, err, "README row %s: mode %q", row.path, row.mode)
			assert.Equal(t, fs.FileMode(want), fi.Mode().Perm(), "mode of %s", path)
			assert.Equal(t, perm == "socket", fi.Mode().Type() == fs.ModeSocket, "%s is a socket: %v", path, fi.Mode())
		}
	}

	// The open release: nothing writable but by root, all readable.
	rel := filepath.Join(p.StateDir(a.name), "releases", "1.1.0")
	for name, want := range map[string]fs.FileMode{"bin/hello": 0o755, "VERSION": 0o644, "data": fs.ModeDir | 0o755, "data/file": 0o644} {
		fi, err := os.Lstat(filepath.Join(rel, name))
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode(), name)
	}

	// What its instance saw, as the app's user, inside its sandbox.
	probe, err := os.ReadFile(filepath.Join(p.StateDir(a.name), "data", "probe"))
	require.NoError(t, err, "the instance of 1.1.0 wrote no probe into $STATE_DIRECTORY")
	assert.Equal(t, "uid "+strconv.Itoa(int(uid))+"\ndone\n", string(probe), "the instance could write or read more than its state directory")

	// The same user outside the sandbox, where only the modes protect.
	var paths []string
	require.NoError(t, filepath.WalkDir(filepath.Join(p.StateDir(a.name), "releases"), func(path string, d fs.DirEntry, err error) error {
		paths = append(paths, path)
		return err
	}))
	paths = append(paths, p.StateDir(a.name), filepath.Join(p.StateDir(a.name), "hot"), p.RunDir(a.name), p.Config(a.name))
	got := asUID(t, uid, gid, `for f; do [ -w "$f" ] && echo "writable $f"; [ -d "$f" ] && touch "$f/new" 2>/dev/null && echo "created $f/new"; done; `+
		`for f in state.json handoff.json; do cat "`+p.StateDir(a.name)+`/$f" >/dev/null 2>&1 && echo "read $f"; done; echo done`, paths...)
	assert.Equal(t, "done\n", got, "the app's user may write into beamdeploy's files or read the parent's")
	check, err := a.run("check", a.name)
	require.NoError(t, err, check)
	assert.NotContains(t, check, "warning", "a dynamic user: nothing to warn about")
}

// requireReleaseModes checks a release directory against the README row:
// root's, 0755 directories and executables, 0644 other files.
func requireReleaseModes(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		fi, err := d.Info()
		require.NoError(t, err)
		uid, gid := owner(t, path)
		assert.Equal(t, [2]uint32{0, 0}, [2]uint32{uid, gid}, "owner of %s", path)
		switch m := fi.Mode(); {
		case m.IsDir():
			assert.Equal(t, fs.FileMode(0o755), m.Perm(), "mode of %s", path)
		case m.IsRegular():
			assert.Contains(t, []fs.FileMode{0o755, 0o644}, m.Perm(), "mode of %s", path)
		default:
			assert.Equal(t, fs.ModeSymlink, m.Type(), "%s: only directories, files and symlinks", path)
		}
		return nil
	}))
}

// A configuration written before dynamic users has no "user": its app
// keeps running as root, check warns and says how to change that, and the
// change it names runs the app as its dynamic user.
func TestSystemdConfigWithoutUserKeepsRunningAsRoot(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.editConfig(func(c *config.Config) { c.User = "" })
	a.mustUpgrade(release(t, "1.0.0"))
	unit := a.status().Active.Unit
	uid, _ := owner(t, "/proc/"+strconv.Itoa(mainPID(t, unit)))
	assert.Zero(t, uid, "an instance of a configuration without \"user\" runs as root")
	assert.Equal(t, "no", show(unit, "DynamicUser"))

	out, err := a.run("check", a.name)
	require.NoError(t, err, "a warning is not a failure: %s", out)
	assert.Contains(t, out, `warning: `+config.Paths{}.Config(a.name)+` has no "user": instances of `+a.name+` run as root`)
	assert.Contains(t, out, `set "user": "dynamic" in `+config.Paths{}.Config(a.name)+`, run systemctl restart `+a.name)

	a.editConfig(func(c *config.Config) { c.User = config.DynamicUser }) // restarts the parent only
	out, err = a.run("reload", a.name)                                   // a swap into an instance under the new config
	require.NoError(t, err, out)
	// No require inside: Eventually runs the condition off the test goroutine.
	require.Eventually(t, func() bool {
		out, err := exec.Command(a.bin, "--json", "status", a.name).Output()
		var st control.Status
		return err == nil && json.Unmarshal(out, &st) == nil && st.Active != nil && st.Active.Release == "1.0.0" &&
			show(st.Active.Unit, "ActiveState") == "active"
	}, 60*time.Second, 100*time.Millisecond)
	unit = a.status().Active.Unit
	uid, _ = owner(t, "/proc/"+strconv.Itoa(mainPID(t, unit)))
	assert.True(t, uid >= config.DynamicUIDMin && uid <= config.DynamicUIDMax, "uid %d after the change", uid)
	requireServing(t, a, "1.0.0")
	out, err = a.run("check", a.name)
	require.NoError(t, err, out)
	assert.NotContains(t, out, "warning")
}
