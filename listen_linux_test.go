package beamdeploy

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpListeners opens n loopback listeners and returns them with files to
// pass to a child.
func tcpListeners(t *testing.T, n int) ([]net.Listener, []*os.File) {
	t.Helper()
	var lns []net.Listener
	var files []*os.File
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		lns = append(lns, ln)
		files = append(files, listenerFile(t, ln))
	}
	return lns, files
}

func TestListenersInherited(t *testing.T) {
	lns, files := tcpListeners(t, 2)
	r := runHelperReport(t, "listeners", files, "LISTEN_FDS=2", "LISTEN_FDNAMES=web:admin", helperSetPID+"=1")
	require.Empty(t, r.Err)
	assert.Equal(t, []string{"web", "admin"}, r.Names)
	assert.Equal(t, []string{lns[0].Addr().String(), lns[1].Addr().String()}, r.Addrs)
	assert.Empty(t, r.Env, "LISTEN_* unset for children")
	assert.Equal(t, r.FDsBefore, r.FDsAfter, "inherited fds closed, only the dups kept")
	assert.True(t, r.SecondSame, "a second call returns the same listeners")
	assert.True(t, r.Accepted, "the inherited listener accepts")
	assertNonblocking(t, lns[0])
}

// assertNonblocking: the shared socket's file description is still in
// non-blocking mode after a child took it over.
func assertNonblocking(t *testing.T, ln net.Listener) {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	var flags int
	var fcntlErr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		flags = int(r)
		if errno != 0 {
			fcntlErr = errno
		}
	}))
	require.NoError(t, fcntlErr)
	assert.NotZero(t, flags&syscall.O_NONBLOCK, "O_NONBLOCK on the shared socket")
}

func TestListenersErrors(t *testing.T) {
	_, files := tcpListeners(t, 1)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()
	tests := []struct {
		name  string
		files []*os.File
		env   []string
		noLns bool
		want  string
	}{
		{name: "no LISTEN_FDS", noLns: true, want: "LISTEN_FDS unset"},
		{name: "LISTEN_PID of another process", files: files, env: []string{"LISTEN_FDS=1", "LISTEN_PID=1"}, noLns: true, want: "LISTEN_PID 1"},
		{name: "LISTEN_PID unset", files: files, env: []string{"LISTEN_FDS=1"}, noLns: true, want: "LISTEN_PID unset"},
		{name: "not a socket", files: []*os.File{pr}, env: []string{"LISTEN_FDS=1", helperSetPID + "=1"}, want: "inherited fd 3 (unknown)"},
		{name: "LISTEN_FDS 0", files: files, env: []string{"LISTEN_FDS=0", helperSetPID + "=1"}, want: `LISTEN_FDS="0": not a count from 1 to 65536`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runHelperReport(t, "listeners", tt.files, tt.env...)
			assert.Contains(t, r.Err, tt.want)
			assert.Equal(t, tt.noLns, r.NoLns, "errors.Is ErrNoListeners: %s", r.Err)
			assert.Empty(t, r.Env, "LISTEN_* unset even on error")
		})
	}
}

func TestListenersDefaultNames(t *testing.T) {
	_, files := tcpListeners(t, 2)
	r := runHelperReport(t, "listeners", files, "LISTEN_FDS=2", helperSetPID+"=1")
	require.Empty(t, r.Err)
	assert.Equal(t, []string{"unknown", "unknown"}, r.Names)
}

func TestListenManaged(t *testing.T) {
	lns, files := tcpListeners(t, 2)
	a0, a1 := lns[0].Addr().String(), lns[1].Addr().String()
	managed := []string{EnvEnabled + "=yes", "LISTEN_FDS=2", helperSetPID + "=1"}
	tests := []struct {
		name  string
		files []*os.File
		env   []string
		addrs string
		want  []string
		noLns bool
	}{
		{name: "matches by address", files: files, env: managed, addrs: a1 + " " + a0 + " " + a1, want: []string{a1, a0, a1}},
		{name: "single listener whatever the address", files: files[:1], env: []string{EnvEnabled + "=1", "LISTEN_FDS=1", helperSetPID + "=1"}, addrs: "127.0.0.1:1", want: []string{a0}},
		{name: "no match", files: files, env: managed, addrs: "127.0.0.1:1", noLns: true},
		{name: "nothing inherited", env: []string{EnvEnabled + "=on"}, addrs: "127.0.0.1:0", noLns: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runHelperReport(t, "listen", tt.files, append(tt.env, "HELPER_ADDRS="+tt.addrs)...)
			if tt.noLns {
				assert.True(t, r.NoLns, "errors.Is ErrNoListeners: %q", r.Err)
				return
			}
			require.Empty(t, r.Err)
			assert.Equal(t, tt.want, r.Addrs)
		})
	}
}

// TestServeSwapProcesses is a blue-green swap with real processes: two
// instances serve one inherited socket under keep-alive POST load, the old one
// gets SIGTERM, drains, and exits 0; no request fails.
func TestServeSwapProcesses(t *testing.T) {
	lns, files := tcpListeners(t, 1)
	notify := listenNotify(t, t.TempDir()+"/notify.sock")
	env := []string{EnvEnabled + "=1", "LISTEN_FDS=1", helperSetPID + "=1", "NOTIFY_SOCKET=" + os.Getenv("NOTIFY_SOCKET")}
	blue := startServeHelper(t, files, env, notify)
	l := startLoad("http://"+lns[0].Addr().String()+"/", 8)
	green := startServeHelper(t, files, env, notify)
	require.Eventually(t, func() bool { s, _ := l.snapshot(); return len(s) == 2 }, 10*time.Second, 10*time.Millisecond,
		"both instances serve")

	require.NoError(t, blue.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, "STOPPING=1", readNotify(t, notify))
	require.NoError(t, blue.Wait(), "blue drained and exited 0")
	atStop, _ := l.snapshot()
	greenPID := strconv.Itoa(green.Process.Pid)
	require.Eventually(t, func() bool { s, _ := l.snapshot(); return s[greenPID] > atStop[greenPID]+300 },
		10*time.Second, 10*time.Millisecond, "green keeps serving")
	served, errs := l.finish()
	assert.Empty(t, errs, "failed requests")
	t.Logf("served %v", served)

	require.NoError(t, green.Process.Signal(syscall.SIGTERM))
	require.NoError(t, green.Wait())
}

// startServeHelper starts an instance and waits for its READY=1.
func startServeHelper(t *testing.T, files []*os.File, env []string, notify *net.UnixConn) *exec.Cmd {
	t.Helper()
	cmd := helperCmd(t, "serve", files, env...)
	require.NoError(t, cmd.Start())
	assert.Equal(t, "READY=1", readNotify(t, notify))
	return cmd
}
