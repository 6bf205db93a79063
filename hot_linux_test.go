package beamdeploy

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSuccessorEnv(t *testing.T) {
	base := []string{"PATH=/bin", "LISTEN_PID=42", "LISTEN_FDS=9", "BEAMDEPLOY_RELEASE=1.0.0", "HOME=/root"}
	env := successorEnv(base, []string{"BEAMDEPLOY_RELEASE=1.1.0"}, []string{"http", "admin"})
	slices.Sort(env)
	assert.Equal(t, []string{"BEAMDEPLOY_RELEASE=1.1.0", "HOME=/root", "LISTEN_FDNAMES=http:admin", "LISTEN_FDS=2", "PATH=/bin"}, env,
		"the order's variables on top; LISTEN_PID is left to the exec shim")
}
