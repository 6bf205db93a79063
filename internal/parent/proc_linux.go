package parent

import (
	"errors"

	"golang.org/x/sys/unix"
)

// watchedProcess tells whether a process has exited, by a pidfd: a PID
// reused by another process does not pass for it. Without a pidfd (no
// descriptor left, or a kernel without pidfd_open) it asks kill(pid, 0),
// which takes a zombie, and a reused PID, for the process.
type watchedProcess struct{ pidfd, pid int }

// watchProcess watches pid; nil if it exited already. Callers close it.
func watchProcess(pid int) *watchedProcess {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		return &watchedProcess{pidfd: fd, pid: pid}
	case errors.Is(err, unix.ESRCH):
		return nil
	default:
		return &watchedProcess{pidfd: -1, pid: pid}
	}
}

// exited reports whether the process has exited (a zombie has); true
// once the pidfd cannot be read, and for a nil watchedProcess (it was
// gone already). Unlike the state in /proc/PID/stat, which shows the
// thread-group leader's "Z" while another thread of the process runs
// execve (a Go program's exec), a pidfd is ready only when the whole
// process has exited.
func (w *watchedProcess) exited() bool {
	if w == nil {
		return true
	}
	if w.pidfd < 0 {
		return errors.Is(unix.Kill(w.pid, 0), unix.ESRCH)
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
	if w != nil && w.pidfd >= 0 {
		_ = unix.Close(w.pidfd) // our pidfd; nothing to do on error
	}
}
