// Package beam_test runs the Erlang example (examples/beam) as a real BEAM
// with a listening socket at fd 3 and a NOTIFY_SOCKET, outside systemd:
// its readiness and its drain on SIGTERM. The e2e package runs it under
// beamdeploy (e2e/beam_systemd_test.go).
package beam_test

import (
	"bufio"
	"fmt"
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
	"golang.org/x/sys/unix"
)

const version = "9.8.7"

// release builds the example with scripts/example-release and unpacks it.
func release(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("erlc"); err != nil {
		t.Skip("erlc is not installed (Debian: erlang-base; make deps installs it)")
	}
	dist, root := t.TempDir(), t.TempDir()
	cmd := exec.CommandContext(t.Context(), "../../scripts/example-release", version)
	cmd.Env = append(os.Environ(), "EXAMPLE=beam", "DIST="+dist)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "example-release: %s", out)
	out, err = exec.CommandContext(t.Context(), "tar", "-xzf", filepath.Join(dist, "beam-"+version+".tar.gz"), "-C", root).CombinedOutput()
	require.NoError(t, err, "unpack: %s", out)
	return root
}

// notifications listens where the app sends its sd_notify messages.
func notifications(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	msgs := make(chan string, 16)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func await(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	timeout := time.After(60 * time.Second) // the BEAM starts in about a second; the machine may be busy
	for {
		select {
		case m, ok := <-msgs:
			require.True(t, ok, "notify socket closed before %q", want)
			if strings.Contains(m, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q on NOTIFY_SOCKET", want)
		}
	}
}

// keptConn is a keep-alive HTTP/1.1 connection of its own.
type keptConn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *keptConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &keptConn{c: c, r: bufio.NewReader(c)}
}

func (k *keptConn) do(t *testing.T, method, body string) (*http.Response, string) {
	t.Helper()
	require.NoError(t, k.c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err := fmt.Fprintf(k.c, "%s / HTTP/1.1\r\nHost: beam\r\nContent-Length: %d\r\n\r\n%s", method, len(body), body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(k.r, nil)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(b)
}

// The BEAM takes its listener from fd 3, says READY=1, and on SIGTERM
// drains like the Go SDK's Serve: it answers the next request on an idle
// keep-alive connection with Connection: close, keeps a connection that
// stays idle until its drain deadline (BEAMDEPLOY_DRAIN_TIMEOUT less a
// quarter), exits 0, and leaves the shared listener non-blocking.
func TestBeamServesFD3AndDrains(t *testing.T) {
	root := release(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	defer f.Close()
	fd := int(f.Fd()) // Fd (and so exec) puts the socket in blocking mode: set it again after Start
	notify, msgs := notifications(t)

	// LISTEN_PID is the pid that execs the BEAM (bin/beam and erl exec).
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0"`, filepath.Join(root, "bin", "beam"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET="+notify, "BEAMDEPLOY_DRAIN_TIMEOUT=4s", "BEAMDEPLOY_UNIT=beam@blue.service")
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	require.NoError(t, unix.SetNonblock(fd, true)) // as a Go holder leaves it
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	await(t, msgs, "READY=1")

	used, idle := dial(t, ln.Addr().String()), dial(t, ln.Addr().String())
	for _, k := range []*keptConn{used, idle} {
		resp, body := k.do(t, http.MethodGet, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, version, resp.Header.Get("X-Release"))
		assert.Equal(t, "hello from beam "+version+"\n", body)
		assert.False(t, resp.Close, "keep-alive")
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	sigterm := time.Now()
	await(t, msgs, "STOPPING=1")
	resp, _ := used.do(t, http.MethodPost, "after SIGTERM")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a request on an idle connection is served during the drain")
	assert.Equal(t, "13", resp.Header.Get("X-Received"))
	assert.True(t, resp.Close, "with Connection: close")
	_, err = used.r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "and the connection closed after it")

	select {
	case err := <-exited:
		require.NoError(t, err, "exit status 0")
	case <-time.After(60 * time.Second):
		t.Fatal("the BEAM did not exit after its drain deadline")
	}
	// The connection left idle was kept until the deadline (3 s).
	assert.GreaterOrEqual(t, time.Since(sigterm), 2500*time.Millisecond)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	require.NoError(t, err)
	assert.NotZero(t, flags&unix.O_NONBLOCK, "the shared listener is still non-blocking")
}
