package beamdeploy

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseListenEnv(t *testing.T) {
	const self = 4242
	tests := []struct {
		name    string
		pid     string
		fds     string
		want    int
		noLns   bool // error wraps ErrNoListeners
		wantErr bool
	}{
		{name: "ok", pid: "4242", fds: "2", want: 2},
		{name: "fds unset", pid: "4242", fds: "", noLns: true},
		{name: "pid unset", pid: "", fds: "1", noLns: true},
		{name: "other pid", pid: "1", fds: "1", noLns: true},
		{name: "zero fds", pid: "4242", fds: "0", noLns: true},
		{name: "bad pid", pid: "x", fds: "1", wantErr: true},
		{name: "bad fds", pid: "4242", fds: "two", wantErr: true},
		{name: "negative fds", pid: "4242", fds: "-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parseListenEnv(tt.pid, tt.fds, self)
			switch {
			case tt.noLns:
				require.ErrorIs(t, err, ErrNoListeners)
			case tt.wantErr:
				require.Error(t, err)
				assert.NotErrorIs(t, err, ErrNoListeners)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.want, n)
			}
		})
	}
}

func TestSplitNames(t *testing.T) {
	assert.Equal(t, []string{"unknown", "unknown"}, splitNames("", 2))
	assert.Equal(t, []string{"web", "admin"}, splitNames("web:admin", 2))
	assert.Equal(t, []string{"web", "unknown", "x"}, splitNames("web::x", 3))
	assert.Equal(t, []string{"web", "unknown"}, splitNames("web", 2), "fewer names than fds")
	assert.Equal(t, []string{"web"}, splitNames("web:admin", 1), "more names than fds")
}

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
