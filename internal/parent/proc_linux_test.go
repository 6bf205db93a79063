package parent

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatchedProcess(t *testing.T) {
	self := watchProcess(os.Getpid())
	require.NotNil(t, self)
	defer self.close()
	assert.False(t, self.exited())

	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	w := watchProcess(cmd.Process.Pid)
	require.NotNil(t, w)
	defer w.close()
	assert.False(t, w.exited())
	require.NoError(t, cmd.Process.Kill())
	assert.Eventually(t, w.exited, 5*time.Second, 10*time.Millisecond, "a killed, unreaped child (zombie) has exited")
	_ = cmd.Wait()
	assert.True(t, w.exited(), "reaped")
	assert.Nil(t, watchProcess(cmd.Process.Pid), "a reaped process cannot be watched")
	// Without a pidfd it asks kill(pid, 0).
	cmd = exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	noFD := &watchedProcess{pidfd: -1, pid: cmd.Process.Pid}
	assert.False(t, noFD.exited())
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.True(t, noFD.exited(), "reaped")
	noFD.close()
	var gone *watchedProcess
	assert.True(t, gone.exited(), "nil: could not be watched, gone")
	gone.close()
}

// TestHelperExecFromThread is not a test: run with BDTEST_EXEC=1, it is
// a Go process that runs execve from a thread other than its main one,
// as `beamdeploy exec --handover` may (Go runs a goroutine on any thread).
func TestHelperExecFromThread(t *testing.T) {
	if os.Getenv("BDTEST_EXEC") == "" {
		t.Skip("helper process")
	}
	time.Sleep(5 * time.Millisecond) // the main thread parks: what widens the kernel's window
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // not the main thread: that one runs the test runner
		done <- syscall.Exec("/bin/sleep", []string{"sleep", "0.1"}, nil)
	}()
	<-done
	os.Exit(2)
}

// While a Go process execs from another thread than its main one, the
// kernel shows the main thread as a zombie in /proc/PID/stat until the
// execing thread takes its place; a successor mid-exec was taken for an
// exited one (the CI flake "the new process exited before it was ready").
// A pidfd tells the process's exit only.
func TestWatchedProcessNotExitedDuringExec(t *testing.T) {
	for range 40 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperExecFromThread$")
		cmd.Env = append(os.Environ(), "BDTEST_EXEC=1")
		require.NoError(t, cmd.Start())
		w := watchProcess(cmd.Process.Pid)
		require.NotNil(t, w)
		// The exec comes within the helper's start-up; the sleep it execs
		// lasts 100 ms. (The old check of /proc/PID/stat saw the zombie in 1
		// to 8 of 100 runs on 2 idle cores, more on busy ones.)
		for end := time.Now().Add(60 * time.Millisecond); time.Now().Before(end); {
			if w.exited() {
				t.Fatalf("pid %d taken for exited while it ran execve", cmd.Process.Pid)
			}
		}
		w.close()
		require.NoError(t, cmd.Wait(), "the helper exec'd sleep, which exited 0")
	}
}
