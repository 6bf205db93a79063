package parent

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHelperConnect is not a test: run with BDTEST_CONNECT=PATH, it is a
// peer that connects to the unix socket PATH and waits for stdin to close.
func TestHelperConnect(t *testing.T) {
	path := os.Getenv("BDTEST_CONNECT")
	if path == "" {
		t.Skip("helper process")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Exit(2)
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
	_ = c.Close()
	os.Exit(0)
}

// connectedChild starts a child process connected to a fresh unix
// listener and returns the child and the parent's end of its connection.
func connectedChild(t *testing.T) (*exec.Cmd, io.WriteCloser, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peer.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConnect$")
	cmd.Env = append(os.Environ(), "BDTEST_CONNECT="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // cleanup: may be gone already
	c, err := ln.AcceptUnix()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return cmd, stdin, c
}

func TestCredentialsOfThePeer(t *testing.T) {
	cmd, stdin, c := connectedChild(t)
	p, proc := credentials(c)
	require.NoError(t, p.Err)
	require.NoError(t, p.UnitErr)
	defer proc.release()
	assert.Equal(t, cmd.Process.Pid, p.PID)
	assert.Equal(t, os.Getuid(), p.UID)
	groups, err := os.Getgroups()
	require.NoError(t, err)
	assert.Subset(t, p.Groups, append(groups, os.Getgid()), "primary and supplementary groups")
	assert.GreaterOrEqual(t, proc.pidfd, 0, "this kernel has SO_PEERPIDFD")
	require.NoError(t, proc.check(), "the peer runs")

	// It exits (a zombie until reaped, then its PID is free for reuse).
	require.NoError(t, stdin.Close())
	require.Eventually(t, func() bool { return proc.check() != nil }, 10*time.Second, 10*time.Millisecond, "the exit is seen")
	assert.ErrorContains(t, proc.check(), "exited")
	require.NoError(t, cmd.Wait())
	assert.ErrorContains(t, proc.check(), "exited", "reaped")
}

// Without SO_PEERPIDFD (Linux < 6.5) the start time pins the process.
func TestPinByStartTime(t *testing.T) {
	cmd, stdin, _ := connectedChild(t)
	_, err := pinByStartTime(cmd.Process.Pid, os.Getuid()+1)
	assert.ErrorContains(t, err, "not of the peer's uid", "the PID now names another user's process")
	proc, err := pinByStartTime(cmd.Process.Pid, os.Getuid())
	require.NoError(t, err)
	require.NoError(t, proc.check())
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	assert.ErrorContains(t, proc.check(), "exited")
	_, err = pinByStartTime(cmd.Process.Pid, os.Getuid())
	assert.Error(t, err, "a PID nobody has")
}

// A peer that exited before it was identified is never pinned as alive.
func TestPeerThatExitedBeforeItWasIdentified(t *testing.T) {
	cmd, stdin, c := connectedChild(t)
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	p, proc := credentials(c)
	require.NoError(t, p.Err, "its credentials from connect time remain")
	assert.Equal(t, os.Getuid(), p.UID)
	defer proc.release()
	if p.UnitErr == nil {
		assert.Error(t, proc.check())
	}
}
