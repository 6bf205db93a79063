package beamdeploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listenNotify listens on a unixgram socket at name and points NOTIFY_SOCKET
// at it.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// readNotify returns the next datagram on conn.
func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	names := map[string]string{"path": filepath.Join(t.TempDir(), "notify.sock")}
	if runtime.GOOS == "linux" {
		names["abstract"] = fmt.Sprintf("@beamdeploy-test-%d", os.Getpid())
	}
	for kind, name := range names {
		t.Run(kind, func(t *testing.T) {
			conn := listenNotify(t, name)

			require.NoError(t, Ready())
			assert.Equal(t, "READY=1", readNotify(t, conn))
			require.NoError(t, Status("serving\nrelease 1.2.3"))
			assert.Equal(t, "STATUS=serving release 1.2.3", readNotify(t, conn))
			require.NoError(t, Stopping())
			assert.Equal(t, "STOPPING=1", readNotify(t, conn))
			assert.Equal(t, name, os.Getenv("NOTIFY_SOCKET"), "kept for later notifications")
		})
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	require.NoError(t, os.Unsetenv("NOTIFY_SOCKET"))
	assert.NoError(t, Ready())
	assert.NoError(t, Stopping())
	assert.NoError(t, Status("x"))
}

func TestNotifyNoListener(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody.sock"))
	err := Ready()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "notify ready")
}

func TestReadyInSuccessor(t *testing.T) {
	conn := listenNotify(t, filepath.Join(t.TempDir(), "notify.sock"))
	t.Setenv(EnvSuccessor, "1")

	require.NoError(t, Stopping())
	require.NoError(t, Ready())
	assert.Equal(t, fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()), readNotify(t, conn),
		"nothing before Ready (STOPPING=1 would stop the unit), then MAINPID= with READY=1")
	_, set := os.LookupEnv(EnvSuccessor)
	assert.False(t, set, "unset: children are no successors")
	require.NoError(t, Ready())
	assert.Equal(t, "READY=1", readNotify(t, conn), "a second Ready is an ordinary one")
}
