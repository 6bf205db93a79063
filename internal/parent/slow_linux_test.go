package parent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A quick request that takes slowRequest or longer, counted from the
// gate's accept, is logged with its stages; others are not, nor is the
// idle time of a keep-alive connection before its next request.
func TestSlowRequestsAreLogged(t *testing.T) {
	var logs syncBuffer
	s := &server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	var delay time.Duration
	var mu sync.Mutex
	h := s.timed(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		d := delay
		mu.Unlock()
		time.Sleep(d)
		writeJSON(w, http.StatusOK, control.Status{MessageType: control.TypeStatus})
	})
	c := serveGate(t, gate.Config[verdict]{
		Privileged: func(gate.Cred) bool { return true },
		Authorize: func(context.Context, *net.UnixConn) (verdict, bool) {
			time.Sleep(50 * time.Millisecond) // a slow identification, which counts
			return verdict{access: access{deploy: true}}, true
		},
	}, h)

	_, err := c.Status(t.Context())
	require.NoError(t, err)
	time.Sleep(slowRequest) // idle on the keep-alive connection: does not count
	_, err = c.Status(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, logs.String(), "slow control request")

	mu.Lock()
	delay = slowRequest
	mu.Unlock()
	_, err = c.Status(t.Context())
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "slow control request")
	assert.Contains(t, logs.String(), "path="+control.PathStatus)
	assert.Contains(t, logs.String(), "handler=1.")
}
