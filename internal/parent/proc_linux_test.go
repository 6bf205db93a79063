package parent

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcessAlive(t *testing.T) {
	assert.True(t, processAlive(os.Getpid()))
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	assert.True(t, processAlive(pid))
	require.NoError(t, cmd.Process.Kill())
	assert.Eventually(t, func() bool { return !processAlive(pid) }, 5*time.Second, 10*time.Millisecond, "a killed, unreaped child (zombie) is not alive")
	_ = cmd.Wait()
	assert.False(t, processAlive(pid))
}
