package beamdeploy

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

// successor is a process started by a hot upgrade.
type successor struct {
	pid    int
	exited chan struct{} // closed once it is reaped
}

// startSuccessor starts order's command with this process's listeners at
// fd 3 on. It does not wait for it to be ready: the parent watches for its
// MAINPID=.
func startSuccessor(order control.HotOrder) (*successor, error) {
	if len(order.Argv) == 0 {
		return nil, fmt.Errorf("%w: the order names no command", errSuccessor)
	}
	ls, err := loadInherited()
	if err != nil {
		return nil, fmt.Errorf("%w: no listeners to pass on: %w", errSuccessor, err)
	}
	files := []uintptr{0, 1, 2}
	defer func() {
		for _, fd := range files[3:] {
			_ = unix.Close(int(fd)) // our copies; the successor has its own
		}
	}()
	names := make([]string, len(ls))
	for i, l := range ls {
		fd, err := dupListener(l)
		if err != nil {
			return nil, fmt.Errorf("%w: listener %s: %w", errSuccessor, l.Name, err)
		}
		files = append(files, uintptr(fd))
		names[i] = l.Name
	}
	env := contract.SuccessorEnv(os.Environ(), order.Env, names)
	// syscall.ForkExec, not os/exec: exec.Cmd.ExtraFiles calls Fd(), which
	// would put the shared listening sockets into blocking mode.
	pid, err := syscall.ForkExec(order.Argv[0], order.Argv, &syscall.ProcAttr{Dir: order.Dir, Env: env, Files: files})
	if err != nil {
		return nil, fmt.Errorf("%w: start %s: %w", errSuccessor, order.Argv[0], err)
	}
	s := &successor{pid: pid, exited: make(chan struct{})}
	go func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(s.exited)
	}()
	return s, nil
}

// stop ends a successor that did not take over, with this process the
// unit's main process again. The successor is paused (SIGSTOP) for the
// take-back, so that a claim it sent before lands first and none comes
// after; then it gets SIGTERM and drains the connections it accepted
// (SIGKILL after drain). An SDK successor that has not claimed the unit
// sends neither a claim nor STOPPING=1 once it drains (see Ready and
// Stopping).
func (s *successor) stop(takeBack func(), drain time.Duration) {
	_ = unix.Kill(s.pid, unix.SIGSTOP) // it may be gone already
	takeBack()
	_ = unix.Kill(s.pid, unix.SIGTERM) // pending until it runs again
	_ = unix.Kill(s.pid, unix.SIGCONT)
	if drain <= 0 {
		drain = 30 * time.Second
	}
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-s.exited:
		return
	case <-t.C:
	}
	_ = unix.Kill(s.pid, unix.SIGKILL) // not reaped yet: the pid is still its
	<-s.exited                         // SIGKILL cannot be ignored: this ends
}

// dupListener duplicates l's descriptor without touching the blocking
// mode of the file description it shares with other processes.
func dupListener(l NamedListener) (int, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket listener")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return -1, err
	}
	return nfd, derr
}
