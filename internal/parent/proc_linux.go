package parent

import (
	"errors"

	"golang.org/x/sys/unix"
)

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

// exited reports whether the process has exited (a zombie has); true
// once the pidfd cannot be read, and for a nil watchedProcess (the process
// could not be watched: it was gone already). Unlike the state in
// /proc/PID/stat, which shows the thread-group leader's "Z" while another
// thread of the process runs execve (a Go program's exec), a pidfd is
// ready only when the whole process has exited.
func (w *watchedProcess) exited() bool {
	if w == nil {
		return true
	}
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
