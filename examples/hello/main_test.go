package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildHello builds the binary with version 1.2.3.
func buildHello(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-tags", "faults", "-ldflags", "-X main.version=1.2.3", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// helloCmd returns cmd for bin with a clean environment plus env.
func helloCmd(t *testing.T, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "LISTEN_") && !strings.HasPrefix(k, "HELLO_") && !strings.HasPrefix(k, "BEAMDEPLOY_") &&
			k != "BEAM_DEPLOY" && k != "NOTIFY_SOCKET" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// startLogged starts cmd and returns its stderr lines.
func startLogged(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stderr = pw
	require.NoError(t, cmd.Start())
	require.NoError(t, pw.Close())
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		defer pr.Close()
		for s := bufio.NewScanner(pr); s.Scan(); {
			lines <- s.Text()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return lines
}

// startAddr waits for the start line and returns its addr= value.
func startAddr(t *testing.T, lines <-chan string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "hello exited before its start line")
			if _, rest, found := strings.Cut(l, " addr="); found && strings.Contains(l, "hello starting") {
				return strings.Fields(rest)[0]
			}
		case <-timeout:
			t.Fatal("no start line")
		}
	}
}

func get(t *testing.T, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

func stopHello(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	// The drain waits for clients to use or close their idle keep-alive
	// connections (or for its deadline): this client leaves.
	http.DefaultClient.CloseIdleConnections()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "drained and exited 0")
}

func TestStandalone(t *testing.T) {
	cmd := helloCmd(t, nil, buildHello(t), "-listen", "127.0.0.1:0")
	addr := startAddr(t, startLogged(t, cmd))
	url := "http://" + addr + "/"

	resp := get(t, http.MethodGet, url, "")
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "hello from 1.2.3\n", string(body))
	assert.Equal(t, "1.2.3", resp.Header.Get("X-Release"))
	host, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, host, resp.Header.Get("X-Instance"))

	resp = get(t, http.MethodPost, url, "12345")
	assert.Equal(t, "5", resp.Header.Get("X-Received"))

	begin := time.Now()
	resp = get(t, http.MethodGet, url+"?sleep=300ms", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(begin), 300*time.Millisecond)
	assert.Equal(t, http.StatusBadRequest, get(t, http.MethodGet, url+"?sleep=soon", "").StatusCode)
	stopHello(t, cmd)
}

// TestManaged passes a listener as systemd would and waits for READY=1.
func TestManaged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f := listenerFile(t, ln)
	notifyPath := filepath.Join(t.TempDir(), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	require.NoError(t, err)
	defer notify.Close()

	env := []string{"BEAM_DEPLOY=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http", "NOTIFY_SOCKET=" + notifyPath,
		"BEAMDEPLOY_UNIT=hello@blue.service", "HELLO_LISTEN=127.0.0.1:1"}
	// LISTEN_PID must be the app's pid: sh sets it to its own, then execs.
	cmd := helloCmd(t, env, "/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, buildHello(t))
	cmd.ExtraFiles = []*os.File{f}
	lines := startLogged(t, cmd)
	assert.Equal(t, ln.Addr().String(), startAddr(t, lines), "serves the inherited socket")
	assert.Equal(t, "READY=1", readNotify(t, notify))

	resp := get(t, http.MethodGet, "http://"+ln.Addr().String()+"/", "")
	assert.Equal(t, "hello@blue.service", resp.Header.Get("X-Instance"))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, "STOPPING=1", readNotify(t, notify))
	// Draining: the idle keep-alive connection is still served, told to
	// close, and then the drain is over.
	resp = get(t, http.MethodPost, "http://"+ln.Addr().String()+"/", "after SIGTERM")
	assert.True(t, resp.Close, "Connection: close")
	assert.Equal(t, "13", resp.Header.Get("X-Received"))
	require.NoError(t, cmd.Wait(), "drained and exited 0")
}

func TestCrashAtStart(t *testing.T) {
	cmd := helloCmd(t, []string{"HELLO_CRASH_AT_START=1"}, buildHello(t), "-listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode())
	assert.Contains(t, string(out), "HELLO_CRASH_AT_START")
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

// listenerFile dups ln's socket through SyscallConn (never File or Fd, which
// would switch the shared socket to blocking mode) for ExtraFiles.
func listenerFile(t *testing.T, ln net.Listener) *os.File {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	fd := -1
	var dupErr error
	require.NoError(t, rc.Control(func(s uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if fd, dupErr = syscall.Dup(int(s)); dupErr == nil {
			syscall.CloseOnExec(fd)
		}
	}))
	require.NoError(t, dupErr)
	f := os.NewFile(uintptr(fd), "listener")
	t.Cleanup(func() { _ = f.Close() })
	return f
}
