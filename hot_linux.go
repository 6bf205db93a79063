package beamdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// startSuccessor starts order's command with this process's listeners
// and waits until it is ready. It returns the new process's pid.
func startSuccessor(ctx context.Context, order control.HotOrder) (int, error) {
	if len(order.Argv) == 0 {
		return 0, fmt.Errorf("%w: the order names no command", errSuccessor)
	}
	ls, err := loadInherited()
	if err != nil {
		return 0, fmt.Errorf("%w: no listeners to pass on: %w", errSuccessor, err)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd) // our copies; the successor has its own
		}
	}()
	names := make([]string, len(ls))
	for i, l := range ls {
		fd, err := dupListener(l)
		if err != nil {
			return 0, fmt.Errorf("%w: listener %s: %w", errSuccessor, l.Name, err)
		}
		fds = append(fds, fd)
		names[i] = l.Name
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("%w: readiness pipe: %w", errSuccessor, err)
	}
	rd, wr := p[0], p[1]
	defer unix.Close(rd)
	files := []uintptr{0, 1, 2}
	for _, fd := range fds {
		files = append(files, uintptr(fd))
	}
	files = append(files, uintptr(wr))
	env := successorEnv(os.Environ(), order.Env, names, len(files)-1)
	// syscall.ForkExec, not os/exec: exec.Cmd.ExtraFiles calls Fd(), which
	// would put the shared listening sockets into blocking mode.
	pid, err := syscall.ForkExec(order.Argv[0], order.Argv, &syscall.ProcAttr{Dir: order.Dir, Env: env, Files: files})
	_ = unix.Close(wr)
	if err != nil {
		return 0, fmt.Errorf("%w: start %s: %w", errSuccessor, order.Argv[0], err)
	}
	ready := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := unix.Read(rd, b[:]) // EOF: the successor exited (or closed the pipe)
		ready <- n == 1
	}()
	timeout := order.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	// signalled turns the readiness pipe's outcome into startSuccessor's.
	signalled := func(ok bool) (int, error) {
		if ok {
			return pid, nil
		}
		return 0, fmt.Errorf("%w: it %s before it was ready", errSuccessor, endSuccessor(pid))
	}
	var failure error
	select {
	case ok := <-ready:
		return signalled(ok)
	case <-t.C:
		failure = fmt.Errorf("%w: not ready within %s; stopped it", errSuccessor, timeout)
	case <-ctx.Done():
		failure = fmt.Errorf("%w: %w", errSuccessor, ctx.Err())
	}
	// A successor that got ready just now is as good as one that got ready
	// in time, and must not be stopped: it may be the main process already.
	select {
	case ok := <-ready:
		return signalled(ok)
	case <-time.After(lateReady):
	}
	stopSuccessor(pid, order.Drain, ready)
	return 0, failure
}

// lateReady is how long a successor that missed its deadline still gets
// to signal readiness before it is stopped.
const lateReady = 100 * time.Millisecond

// stopSuccessor stops a successor that never got ready: SIGTERM, so that it
// drains the connections it may have accepted, then SIGKILL after drain.
// ready yields once its readiness pipe closes (it exited).
func stopSuccessor(pid int, drain time.Duration, ready <-chan bool) {
	reclaimMain()                    // in case it claimed the unit after all
	_ = unix.Kill(pid, unix.SIGTERM) // it may be gone already
	if drain <= 0 {
		drain = 30 * time.Second
	}
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-ready:
		endSuccessor(pid)
	case <-t.C:
		killSuccessor(pid)
	}
}

// endSuccessor reaps a successor whose readiness pipe closed and says how
// it ended. One that closed the pipe but lives on is killed.
func endSuccessor(pid int) string {
	for range 100 {
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil || got == pid {
			if err != nil {
				return "exited"
			}
			if ws.Signaled() {
				return fmt.Sprintf("was killed by signal %d", ws.Signal())
			}
			return fmt.Sprintf("exited with status %d", ws.ExitStatus())
		}
		time.Sleep(10 * time.Millisecond)
	}
	reclaimMain()
	killSuccessor(pid)
	return "closed its readiness pipe without signalling and was killed"
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

// successorEnv is the environment of a successor: this process's, with
// the order's variables on top, LISTEN_FDS for its listeners at fd 3 on
// and the readiness pipe at fd readyFD. LISTEN_PID is set by the exec
// shim the order runs, once it knows its pid.
func successorEnv(base, extra, names []string, readyFD int) []string {
	set := map[string]string{
		"LISTEN_FDS":     strconv.Itoa(len(names)),
		"LISTEN_FDNAMES": strings.Join(names, ":"),
		EnvReadyFD:       strconv.Itoa(readyFD),
	}
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = v
		}
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok && k != "LISTEN_PID" {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// killSuccessor SIGKILLs a successor and reaps it.
func killSuccessor(pid int) {
	if pid <= 0 {
		return
	}
	_ = unix.Kill(pid, unix.SIGKILL) // it may be gone already
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, 0, nil) // SIGKILL cannot be ignored: this returns
}

// successorReady is Ready for a process started by a hot upgrade: it
// makes itself the unit's main process, then tells its predecessor.
func successorReady(fd int) error {
	err := notify("ready", fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()))
	if _, werr := unix.Write(fd, []byte{'1'}); werr != nil {
		err = errors.Join(err, fmt.Errorf("signal readiness to the old process: %w", werr))
	}
	_ = unix.Close(fd)
	return err
}
