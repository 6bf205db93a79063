package contract

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShimArgv(t *testing.T) {
	cmd := []string{"/rel/bin/hello", "--port", "--"}
	assert.Equal(t, []string{"/usr/bin/beamdeploy", "exec", "hello", "--", "/rel/bin/hello", "--port", "--"},
		ExecArgv("/usr/bin/beamdeploy", "hello", cmd))
	assert.Equal(t, []string{"/usr/bin/beamdeploy", "exec", "hello", "--handover", "--", "/rel/bin/hello", "--port", "--"},
		HandoverArgv("/usr/bin/beamdeploy", "hello", cmd))
	assert.Equal(t, []string{"/rel/bin/hello", "--port", "--"}, cmd, "the command is not changed")
}

func TestSuccessorEnv(t *testing.T) {
	base := []string{"PATH=/bin", "LISTEN_PID=42", "LISTEN_FDS=9", "LISTEN_FDNAMES=x", "BEAMDEPLOY_RELEASE=1.0.0", "HOME=/root"}
	env := SuccessorEnv(base, []string{"BEAMDEPLOY_RELEASE=1.1.0"}, []string{"http", "admin"})
	slices.Sort(env)
	assert.Equal(t, []string{"BEAMDEPLOY_RELEASE=1.1.0", "HOME=/root", "LISTEN_FDNAMES=http:admin", "LISTEN_FDS=2", "PATH=/bin"}, env,
		"the order's variables on top; LISTEN_PID is left to the exec shim")
}
