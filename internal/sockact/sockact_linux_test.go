package sockact_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the instance: with BDTEST_FETCH it plays the
// exec shim (fetch, then exec itself as the app); with BDTEST_APP it
// plays an app that accepts one connection on its LISTEN_FDS socket.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("BDTEST_FETCH") != "":
		os.Exit(shim(os.Getenv("BDTEST_FETCH")))
	case os.Getenv("BDTEST_APP") != "":
		os.Exit(app())
	}
	os.Exit(m.Run())
}

func shim(path string) int {
	fds, err := sockact.Fetch(path, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 10
	}
	self, _ := os.Executable()
	env := []string{"BDTEST_APP=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BDTEST_FETCH=") {
			env = append(env, kv)
		}
	}
	err = sockact.Exec(fds, []string{self, "-test.run=^$"}, env)
	fmt.Fprintln(os.Stderr, err)
	return 11
}

func app() int {
	if os.Getenv("LISTEN_PID") != fmt.Sprint(os.Getpid()) {
		fmt.Fprintln(os.Stderr, "LISTEN_PID is not my pid")
		return 12
	}
	f := os.NewFile(3, "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fd 3 is not a listener:", err)
		return 13
	}
	_ = f.Close()
	conn, err := ln.Accept()
	if err != nil {
		return 14
	}
	fmt.Fprintf(conn, "%s %s\n", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
	_ = conn.Close()
	return 0
}

// rawFD returns a dup of l's descriptor without touching its blocking mode.
func rawFD(t *testing.T, l *net.TCPListener) int {
	t.Helper()
	rc, err := l.SyscallConn()
	require.NoError(t, err)
	var fd int
	var derr error
	require.NoError(t, rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }))
	require.NoError(t, derr)
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	require.NoError(t, err)
	return fl&unix.O_NONBLOCK != 0
}

func TestBrokerHandsListenerToExecedApp(t *testing.T) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer tcp.Close()
	fd := rawFD(t, tcp)
	require.True(t, nonblocking(t, fd))

	sock := filepath.Join(t.TempDir(), "fds.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sockact.Serve(ctx, ln, []sockact.FD{{Num: fd, Name: "web"}}) }()

	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, "-test.run=^$")
	// Go >= 1.25 keeps cgroup CPU files open at fds 3, 4 for GOMAXPROCS
	// updates unless told not to; cmd/beamdeploy says so with //go:debug.
	cmd.Env = append(os.Environ(), "BDTEST_FETCH="+sock, "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())

	conn, err := net.DialTimeout("tcp", tcp.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err, "child stderr: %s", stderr.String())
	assert.Equal(t, "1 web\n", line, "LISTEN_FDS and LISTEN_FDNAMES")
	require.NoError(t, cmd.Wait(), stderr.String())
	assert.True(t, nonblocking(t, fd), "the shared socket must stay non-blocking")

	cancel()
	require.NoError(t, <-done)
}

func TestFetchFailsWithoutBroker(t *testing.T) {
	_, err := sockact.Fetch(filepath.Join(t.TempDir(), "none.sock"), 200*time.Millisecond)
	require.ErrorIs(t, err, syscall.ENOENT)
}

// TestInheritedRules: the exec shim and the parent take LISTEN_* by the
// rules the SDK follows (contract.ParseListenFDs), and unset them.
func TestInheritedRules(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, pid, fds string
		noLns          bool // the error wraps contract.ErrNoListeners
	}{
		{name: "another process", pid: "1", fds: "1", noLns: true},
		{name: "unset", noLns: true},
		{name: "pid not a number", pid: "x", fds: "1"},
		{name: "count 0", pid: self, fds: "0"},
		{name: "count over 65536", pid: self, fds: "65537"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", tt.pid)
			t.Setenv("LISTEN_FDS", tt.fds)
			fds, err := sockact.Inherited()
			require.Error(t, err)
			assert.Empty(t, fds)
			assert.Equal(t, tt.noLns, errors.Is(err, contract.ErrNoListeners), "errors.Is ErrNoListeners: %v", err)
			for _, k := range []string{"LISTEN_PID", "LISTEN_FDS"} {
				_, set := os.LookupEnv(k)
				assert.False(t, set, "%s must be unset", k)
			}
		})
	}
}

func TestPlaceRefusesToOverwrite(t *testing.T) {
	// fd 3..5 in a test process are usually taken (epoll, pipes): Place
	// must notice instead of clobbering them.
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err != nil {
		t.Skip("fd 3 is free in this process")
	}
	_, err := sockact.Place([]sockact.FD{{Num: p[0], Name: "x"}})
	require.ErrorContains(t, err, "in use")
}

func TestBrokerTellsARefusedPeerWhy(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fds.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- sockact.Refuse(c, errors.New("permission denied: not an instance"))
	}()

	fds, err := sockact.Fetch(sock, 5*time.Second)
	require.ErrorIs(t, err, sockact.ErrRefused)
	assert.Contains(t, err.Error(), "permission denied: not an instance")
	assert.Empty(t, fds)
	require.NoError(t, <-done)
}
