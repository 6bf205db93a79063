package contract

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseListenFDs(t *testing.T) {
	const self = 4242
	tests := []struct {
		name            string
		pid, fds, names string
		want            []string // nil: an error
		noLns           bool     // the error wraps ErrNoListeners
		msg             string   // the error says
	}{
		{name: "one", pid: "4242", fds: "1", want: []string{"unknown"}},
		{name: "two named", pid: "4242", fds: "2", names: "web:admin", want: []string{"web", "admin"}},
		{name: "more than one fd-passing message carries", pid: "4242", fds: "254", want: splitNames("", 254)},
		{name: "the most", pid: "4242", fds: "65536", want: splitNames("", 65536)},
		{name: "nothing set", noLns: true, msg: "LISTEN_FDS unset"},
		{name: "pid unset", fds: "1", noLns: true, msg: "LISTEN_PID unset"},
		{name: "fds unset", pid: "4242", noLns: true, msg: "LISTEN_FDS unset"},
		{name: "another process", pid: "1", fds: "1", noLns: true, msg: "LISTEN_PID 1 is not this process 4242"},
		{name: "another process, bad count", pid: "1", fds: "x", noLns: true, msg: "LISTEN_PID 1"},
		{name: "pid not a number", pid: "x", fds: "1", msg: `LISTEN_PID="x"`},
		{name: "pid not a number, fds unset", pid: "x", msg: `LISTEN_PID="x"`},
		{name: "pid 0", pid: "0", fds: "1", msg: `LISTEN_PID="0"`},
		{name: "pid negative", pid: "-4242", fds: "1", msg: `LISTEN_PID="-4242"`},
		{name: "pid with space", pid: " 4242", fds: "1", msg: "not a pid"},
		{name: "count not a number", pid: "4242", fds: "two", msg: `LISTEN_FDS="two": not a count from 1 to 65536`},
		{name: "count 0", pid: "4242", fds: "0", msg: `LISTEN_FDS="0"`},
		{name: "count negative", pid: "4242", fds: "-1", msg: `LISTEN_FDS="-1"`},
		{name: "count over the most", pid: "4242", fds: "65537", msg: `LISTEN_FDS="65537"`},
		{name: "count overflows", pid: "4242", fds: "99999999999999999999", msg: "not a count"},
		{name: "names unset", pid: "4242", fds: "2", want: []string{"unknown", "unknown"}},
		{name: "name empty", pid: "4242", fds: "3", names: "web::x", want: []string{"web", "unknown", "x"}},
		{name: "fewer names", pid: "4242", fds: "2", names: "web", want: []string{"web", "unknown"}},
		{name: "more names", pid: "4242", fds: "1", names: "web:admin", want: []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, err := ParseListenFDs(tt.pid, tt.fds, tt.names, self)
			if tt.want != nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, names)
				return
			}
			require.Error(t, err)
			assert.Nil(t, names)
			assert.Equal(t, tt.noLns, errors.Is(err, ErrNoListeners), "errors.Is ErrNoListeners: %v", err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestTakeListenFDsUnsets(t *testing.T) {
	for _, pid := range []string{strconv.Itoa(os.Getpid()), "1"} {
		t.Setenv(EnvListenPID, pid)
		t.Setenv(EnvListenFDs, "1")
		t.Setenv(EnvListenFDNames, "web")
		_, _ = TakeListenFDs() // fd 3 need not be a socket: only the variables are read
		for _, k := range []string{EnvListenPID, EnvListenFDs, EnvListenFDNames} {
			_, set := os.LookupEnv(k)
			assert.False(t, set, "%s unset after LISTEN_PID=%s", k, pid)
		}
	}
	t.Setenv(EnvListenPID, strconv.Itoa(os.Getpid()))
	t.Setenv(EnvListenFDs, "2")
	t.Setenv(EnvListenFDNames, "web:admin")
	names, err := TakeListenFDs()
	require.NoError(t, err)
	assert.Equal(t, []string{"web", "admin"}, names, "this process's own pid")
}
