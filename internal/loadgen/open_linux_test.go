package loadgen_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/loadgen"
)

// stalledListener listens on loopback with the smallest backlog and never
// accepts: once its queue is full the kernel drops further SYNs, so a dial
// hangs, as it does against a service that stopped accepting (systemctl
// restart draining an idle keep-alive pool).
func stalledListener(t *testing.T) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	return fmt.Sprintf("http://127.0.0.1:%d/", sa.(*unix.SockaddrInet4).Port)
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// Against a server that stopped accepting, requests time out while their
// dials go on; the open model must not keep dialing past MaxInFlight (a
// full bench once ran the load generator out of file descriptors this way,
// and the failures it counted were its own).
func TestRunOpenBoundsConnectionsToAStalledServer(t *testing.T) {
	url := stalledListener(t)
	const inFlight = 20
	before := openFDs(t)
	peak := before
	done := make(chan []loadgen.Sample)
	go func() {
		done <- loadgen.RunOpen(t.Context(), loadgen.OpenOptions{URL: url, KeepAlive: true, Rate: 400, Duration: time.Second,
			MaxInFlight: inFlight, Timeout: 50 * time.Millisecond})
	}()
	var samples []loadgen.Sample
	for samples == nil {
		select {
		case samples = <-done:
		case <-time.After(5 * time.Millisecond):
			peak = max(peak, openFDs(t))
		}
	}
	require.Len(t, samples, 400)
	for _, s := range samples {
		assert.NotEmpty(t, s.Class, "no request can succeed against a server that never accepts")
	}
	assert.LessOrEqual(t, peak-before, inFlight+8, "connections open at once (in flight %d)", inFlight)
}
