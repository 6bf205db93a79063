package e2e_test

// A hostile local user: an unprivileged user with a service manager of
// its own (as on any host with logind) names its units like the app's
// instances, and runs a process inside another app's real instance. None
// of them is an instance of the app: every attempt on the control socket
// and the fd broker is refused, the handoff store is untouched, and the
// app keeps answering every request itself.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// localUser is an unprivileged user (not root, not in the beamdeploy
// group) with a running user service manager.
type localUser struct {
	name     string
	uid, gid int
}

// newLocalUser creates the user and starts its service manager (the
// recipe of design.md: no logind in the sandbox).
func newLocalUser(t *testing.T, name string) localUser {
	t.Helper()
	out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name).CombinedOutput()
	require.NoError(t, err, "useradd: %s", out)
	t.Cleanup(func() { _ = exec.Command("userdel", "--remove", name).Run() }) // cleanup
	u, err := user.Lookup(name)
	require.NoError(t, err)
	lu := localUser{name: name}
	lu.uid, _ = strconv.Atoi(u.Uid)
	lu.gid, _ = strconv.Atoi(u.Gid)
	if _, err := os.Stat("/etc/pam.d/systemd-user"); os.IsNotExist(err) {
		require.NoError(t, os.WriteFile("/etc/pam.d/systemd-user", []byte("account required pam_permit.so\nsession required pam_permit.so\n"), 0o644))
	}
	dropIn := "/run/systemd/system/user@.service.d"
	require.NoError(t, os.MkdirAll(dropIn, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dropIn, "bdtest-runtime-dir.conf"), []byte("[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%i\n"), 0o644))
	out, err = exec.Command("systemctl", "daemon-reload").CombinedOutput()
	require.NoError(t, err, "daemon-reload: %s", out)
	manager := fmt.Sprintf("user@%d.service", lu.uid)
	out, err = exec.CommandContext(t.Context(), "systemctl", "start", manager).CombinedOutput()
	require.NoError(t, err, "start %s: %s", manager, out)
	t.Cleanup(func() { _ = exec.Command("systemctl", "stop", manager).Run() }) // cleanup
	return lu
}

// command runs name as the user, without supplementary groups, with the
// environment its user manager needs.
func (u localUser) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/home/" + u.name,
		fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", u.uid), fmt.Sprintf("DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/%d/bus", u.uid)}
	return cmd
}

func TestSystemdHostileLocalUserGetsNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	other := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	other.mustUpgrade(release(t, "1.0.0"))
	out, err := a.run("handoff", a.name, "put", "secret", "s3")
	require.NoError(t, err, out)
	handoffBefore, err := a.run("--json", "handoff", a.name, "list")
	require.NoError(t, err, handoffBefore)
	before := a.status()
	self := helperBin(t)
	alice := newLocalUser(t, "bdalice"+strings.TrimPrefix(a.name, "e2e"))
	reports, err := os.MkdirTemp("/run", "bdtest-hostile-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(reports) }) // cleanup
	require.NoError(t, os.Chown(reports, alice.uid, alice.gid))
	attackConfigFor := func(out string) string {
		b, err := json.Marshal(attackConfig{App: a.name, Bin: a.bin, Self: self, Tarball: worldReadable(t, release(t, "1.1.0")),
			Socket: config.Paths{}.ControlSocket(a.name), Out: filepath.Join(reports, out), Serve: 3 * time.Second})
		require.NoError(t, err)
		return string(b)
	}

	// alice's own units, named like instances of a, of every app, and like
	// another app's instance.
	userUnits := []string{a.name + "@blue", a.name + "@green", "blue", "green", other.name + "@blue"}
	// A process of alice inside the other app's real instance unit.
	otherCgroup := "/sys/fs/cgroup" + show(other.status().Active.Unit, "ControlGroup")
	var wg sync.WaitGroup
	fresh, kept := loadAround(t, a, func() {
		for _, unit := range userUnits {
			cmd := alice.command("systemd-run", "--user", "--quiet", "--collect", "--unit="+unit,
				"-E", envHelper+"=attack", "-E", envConfig+"="+attackConfigFor(unit+".json"), self)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "systemd-run --user --unit=%s: %s", unit, out)
		}
		inside := exec.CommandContext(t.Context(), "sh", "-c", `echo $$ > "$1/cgroup.procs" && exec setpriv --reuid="$2" --regid="$3" --clear-groups -- "$4"`,
			"sh", otherCgroup, strconv.Itoa(alice.uid), strconv.Itoa(alice.gid), self)
		inside.Env = append(os.Environ(), envHelper+"=attack", envConfig+"="+attackConfigFor("inside-other-instance.json"))
		wg.Go(func() {
			out, err := inside.CombinedOutput()
			assert.NoError(t, err, "the attacker inside %s: %s", otherCgroup, out)
		})
		waitForFiles(t, alice, reports, len(userUnits)+1)
		wg.Wait()
	})

	// Every attempt of every attacker was refused, saying so.
	entries, err := filepath.Glob(filepath.Join(reports, "*.json"))
	require.NoError(t, err)
	require.Len(t, entries, len(userUnits)+1)
	for _, path := range entries {
		var rep []attempt
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &rep), "%s", b)
		where := strings.TrimSuffix(filepath.Base(path), ".json")
		require.Len(t, rep, 16, where)
		assert.Equal(t, "cgroup", rep[0].What)
		if where == "inside-other-instance" {
			assert.True(t, strings.HasSuffix(strings.TrimSpace(rep[0].Output), "/"+other.status().Active.Unit), "%s runs in %s", where, rep[0].Output)
		} else {
			assert.Contains(t, rep[0].Output, fmt.Sprintf("/user.slice/user-%d.slice/user@%d.service/", alice.uid, alice.uid), where)
			assert.True(t, strings.HasSuffix(strings.TrimSpace(rep[0].Output), "/"+where+".service"), "%s runs in %s", where, rep[0].Output)
		}
		for _, at := range rep[1:] {
			if strings.HasPrefix(at.What, "hot ") || at.What == "peers" {
				assert.Equal(t, 403, at.Status, "%s: %s got %d: %s", where, at.What, at.Status, at.Output)
			} else {
				assert.NotZero(t, at.Status, "%s: %s succeeded: %s", where, at.What, at.Output)
			}
			assert.Contains(t, at.Output, "permission denied", "%s: %s", where, at.What)
			assert.NotContains(t, at.Output, "s3", "%s: %s read the handoff store", where, at.What)
		}
	}

	// The app answered every request itself, and nothing changed.
	t.Logf("requests: new connections %d answered (%v), keep-alive %d answered (%v)", fresh.OK, fresh.Releases, kept.OK, kept.Releases)
	assert.Zero(t, fresh.Releases[attackerRelease]+kept.Releases[attackerRelease], "requests answered by an attacker")
	assert.Zero(t, fresh.Failed+kept.Failed, "failed requests: %v %v", fresh.Errors, kept.Errors)
	assert.GreaterOrEqual(t, fresh.OK, int64(200), "new-connection requests while the attackers ran")
	handoffAfter, err := a.run("--json", "handoff", a.name, "list")
	assert.NoError(t, err, handoffAfter)
	assert.Equal(t, handoffBefore, handoffAfter, "the handoff store is unchanged")
	after := a.status()
	require.NotNil(t, after.Active)
	assert.Equal(t, before.Active.Unit, after.Active.Unit)
	assert.Equal(t, before.Active.InvocationID, after.Active.InvocationID)
	assert.Equal(t, before.LastSwap.ID, after.LastSwap.ID, "no swap ran")
	rels, err := a.run("releases", a.name)
	assert.NoError(t, err, rels)
	assert.NotContains(t, rels, "1.1.0", "nothing was staged")
}

// waitForFiles waits until dir holds n reports (*.json), for at most three
// minutes; on timeout it shows what the user's units logged.
func waitForFiles(t *testing.T, u localUser, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got, err := filepath.Glob(filepath.Join(dir, "*.json"))
		require.NoError(t, err)
		if len(got) == n {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("journalctl", "--no-pager", "-n", "80", "_UID="+strconv.Itoa(u.uid)).CombinedOutput()
			t.Fatalf("%d of %d attackers reported within 3 minutes (%v); %s's journal:\n%s", len(got), n, got, u.name, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSystemdPIDReuseIsNotTakenForAnInstance: a peer connects, hands its
// connection to a child and exits; its PID then goes to a process inside
// the app's active instance unit, before the parent looks at the
// connection (the parent is frozen meanwhile, as a busy parent would be
// slow). Systemd now says that PID belongs to the active instance, yet
// neither the control socket nor the fd broker takes the connection for
// an instance's: the peer's process was pinned when it connected.
func TestSystemdPIDReuseIsNotTakenForAnInstance(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.mustUpgrade(release(t, "1.0.0"))
	st := a.status()
	require.NotNil(t, st.Active)
	self := helperBin(t)
	m, err := units.Dial(t.Context())
	require.NoError(t, err)
	defer m.Close()
	cgroup := "/sys/fs/cgroup" + show(st.Active.Unit, "ControlGroup")

	parent := strconv.Itoa(st.ParentPID)
	sendSignal(t, "STOP", parent)
	t.Cleanup(func() { _ = exec.Command("kill", "-CONT", parent).Run() }) // never leave the parent frozen
	holders := map[string]*connHolder{}
	for kind, sock := range map[string]string{"control": config.Paths{}.ControlSocket(a.name), "broker": config.Paths{}.BrokerSocket(a.name)} {
		// Another process or thread may take the freed pid first (the
		// suite runs tests in parallel): then a new peer tries again.
		var h *connHolder
		for try := 0; h == nil; try++ {
			require.Less(t, try, 10, "could not give the pid of a %s peer to a process of the instance in 10 tries", kind)
			if c := connectAndExit(t, self, kind, sock); reusePID(t, c.peerPID, cgroup) {
				h = c
			}
		}
		holders[kind] = h
		o, err := m.ProcessOwner(t.Context(), h.peerPID, -1)
		require.NoError(t, err)
		require.Equal(t, units.Owner{Unit: st.Active.Unit, InvocationID: st.Active.InvocationID}, o,
			"pid %d, the %s peer's, now names a process of the active instance", h.peerPID, kind)
	}
	sendSignal(t, "CONT", parent)

	got := holders["control"].use(t)
	assert.Contains(t, got, "status 403")
	assert.Contains(t, got, "permission denied")
	assert.NotContains(t, got, "secret")
	got = holders["broker"].use(t)
	assert.Contains(t, got, "fds 0:")
	assert.Contains(t, got, "permission denied")
	requireServing(t, a, "1.0.0")
}

// reuseUID is the PID-reuse peer's uid: in systemd's dynamic range
// (config.DynamicUIDMin..Max) and allocated to no unit of the test.
const reuseUID = 61999

// connHolder is the child a reuse-peer left holding its connection.
type connHolder struct {
	peerPID int
	goWrite *os.File // a line tells it to use the connection
	outRead *os.File // what it got
}

// connectAndExit runs a peer, as nobody, that connects to sock, hands the
// connection to a child of its own and exits; it returns once the peer is
// gone and reaped.
func connectAndExit(t *testing.T, self, kind, sock string) *connHolder {
	t.Helper()
	goRead, goWrite, err := os.Pipe()
	require.NoError(t, err)
	outRead, outWrite, err := os.Pipe()
	require.NoError(t, err)
	cfg, err := json.Marshal(reuseConfig{Socket: sock, Kind: kind})
	require.NoError(t, err)
	peer := exec.Command(self)
	peer.Env = append(os.Environ(), envHelper+"=reuse-peer", envConfig+"="+string(cfg))
	// A uid from systemd's dynamic range, as the app's instances have: the
	// parent asks systemd about such a peer (any other uid is refused
	// before), so the PID's reuse is what must be caught.
	peer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: reuseUID, Gid: reuseUID, Groups: []uint32{}}}
	// Files, not buffers: Run would wait for the holder to close them too.
	stderr, err := os.CreateTemp(t.TempDir(), "stderr-")
	require.NoError(t, err)
	defer stderr.Close()
	peer.Stdin, peer.Stdout, peer.Stderr = goRead, outWrite, stderr
	if err := peer.Run(); err != nil {
		b, _ := os.ReadFile(stderr.Name())
		t.Fatalf("the %s peer: %v: %s", kind, err, b)
	}
	_ = goRead.Close()   // the holder has its own copies
	_ = outWrite.Close() // ditto: reading ends when the holder is done
	h := &connHolder{peerPID: peer.Process.Pid, goWrite: goWrite, outRead: outRead}
	t.Cleanup(func() { _ = goWrite.Close(); _ = outRead.Close() }) // cleanup: the holder exits on EOF
	return h
}

// use tells the holder to use its connection and returns what it printed.
func (h *connHolder) use(t *testing.T) string {
	t.Helper()
	_, err := h.goWrite.WriteString("go\n")
	require.NoError(t, err)
	require.NoError(t, h.outRead.SetReadDeadline(time.Now().Add(time.Minute)))
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := h.outRead.Read(buf)
		b.Write(buf[:n])
		if err != nil { // EOF once the holder exited
			break
		}
	}
	t.Logf("peer pid %d: the holder got: %s", h.peerPID, b.String())
	return b.String()
}

// reusePID gives pid, which nothing holds, to a new process inside the
// cgroup: it sets the namespace's last PID just below it and starts
// processes until one gets it (other processes may take a PID first).
// False once another process or thread holds pid.
func reusePID(t *testing.T, pid int, cgroup string) bool {
	t.Helper()
	for range 500 {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil { // any task, threads too
			t.Logf("pid %d was taken by another process or thread first", pid)
			return false
		}
		require.NoError(t, os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0o644))
		cmd := exec.Command("sleep", "300")
		require.NoError(t, cmd.Start())
		if cmd.Process.Pid != pid {
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // reaped: not ours to keep
			continue
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // cleanup
		require.NoError(t, os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644))
		return true
	}
	t.Logf("could not start a process with pid %d in 500 tries", pid)
	return false
}
