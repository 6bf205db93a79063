package parent

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// watchedProcess tells whether a process has exited, by a pidfd: a PID
// reused by another process does not pass for it.
type watchedProcess struct{ pidfd int }

// watchProcess watches pid; nil if it cannot (it exited already, or the
// kernel has no pidfd_open). Callers close it.
func watchProcess(pid int) *watchedProcess {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	return &watchedProcess{pidfd: fd}
}

// exited reports whether the process has exited; true once the pidfd
// cannot be read.
func (w *watchedProcess) exited() bool {
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}} // readable once it exited
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
}

// close releases the pidfd; a nil watchedProcess has none.
func (w *watchedProcess) close() {
	if w != nil {
		_ = unix.Close(w.pidfd) // our pidfd; nothing to do on error
	}
}
