package beamdeploy

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddrMatches(t *testing.T) {
	v4 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}
	any6 := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}
	sock := &net.UnixAddr{Name: "/run/hello.sock", Net: "unix"}
	tests := []struct {
		network, addr string
		got           net.Addr
		want          bool
	}{
		{"tcp", "127.0.0.1:8080", v4, true},
		{"tcp4", "127.0.0.1:8080", v4, true},
		{"tcp", "127.0.0.1:8081", v4, false},
		{"tcp", "127.0.0.2:8080", v4, false},
		{"tcp", ":8080", v4, false},
		{"tcp", ":8080", any6, true},
		{"tcp", "0.0.0.0:8080", any6, true},
		{"tcp", "[::]:8080", any6, true},
		{"tcp", "127.0.0.1:8080", any6, false},
		{"tcp", "not an address", v4, false},
		{"tcp", "/run/hello.sock", sock, false},
		{"unix", "/run/hello.sock", sock, true},
		{"unix", "/run/other.sock", sock, false},
		{"unix", "127.0.0.1:8080", v4, false},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr+" vs "+tt.got.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, addrMatches(tt.network, tt.addr, tt.got))
		})
	}
}

// TestListenStandalone: without BEAM_DEPLOY, Listen is net.Listen and the
// inherited set is never consulted.
func TestListenStandalone(t *testing.T) {
	t.Setenv(EnvEnabled, "0")
	ln, err := Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.NotEqual(t, 0, ln.Addr().(*net.TCPAddr).Port)

	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.Close())

	_, err = Listen("tcp", ln.Addr().String())
	require.Error(t, err, "the port is taken: plain net.Listen semantics")
}
