package parent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/units"
)

// process pins the peer's process while the system manager is asked
// about it, so that the answer cannot be about another process that got
// its PID meanwhile: a pidfd (SO_PEERPIDFD, Linux >= 6.5), else the start
// time of the PID, read before and after the question.
type process struct {
	pid   int
	pidfd int    // -1 without SO_PEERPIDFD
	start string // without a pidfd: the start time of pid when pinned
}

// credentials reads the kernel's record of c's peer from connect time
// (SO_PEERCRED, SO_PEERGROUPS) and pins its process. A peer whose process
// cannot be pinned (it exited) has its UnitErr set and no process: it may
// still deploy by its credentials, but is no instance.
func credentials(c *net.UnixConn) (peer, *process) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{Err: fmt.Errorf("read the peer's credentials: %w", err)}, nil
	}
	var p peer
	var proc *process
	if err := rc.Control(func(fd uintptr) { p, proc = sockCredentials(int(fd)) }); err != nil {
		return peer{Err: fmt.Errorf("read the peer's credentials: %w", err)}, nil
	}
	return p, proc
}

func sockCredentials(fd int) (peer, *process) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return peer{Err: fmt.Errorf("read the peer's credentials (SO_PEERCRED): %w", err)}, nil
	}
	groups, err := peerGroups(fd)
	if err != nil {
		return peer{Err: fmt.Errorf("read the peer's groups (SO_PEERGROUPS): %w", err)}, nil
	}
	p := peer{PID: int(cred.Pid), UID: int(cred.Uid), Groups: append([]int{int(cred.Gid)}, groups...)}
	proc, err := pin(fd, p.PID, p.UID)
	if err != nil {
		p.UnitErr = err
	}
	return p, proc
}

// peerGroups returns the supplementary groups of the peer of socket fd
// from connect time.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 64)
	for range 2 { // a second try with the size the kernel asked for
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno == unix.ERANGE && int(n) > len(buf)*4 {
			buf = make([]uint32, n/4)
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		out := make([]int, n/4)
		for i := range out {
			out[i] = int(buf[i])
		}
		return out, nil
	}
	return nil, unix.ERANGE
}

// pin pins the process pid, of user uid, that connected to socket fd.
func pin(fd, pid, uid int) (*process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("the kernel reports no process for the peer (pid %d)", pid)
	}
	pidfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err == nil {
		return &process{pid: pid, pidfd: pidfd}, nil
	}
	if !errors.Is(err, unix.ENOPROTOOPT) { // ESRCH: it exited
		return nil, fmt.Errorf("pin pid %d (SO_PEERPIDFD): %w", pid, err)
	}
	return pinByStartTime(pid, uid) // Linux < 6.5
}

// pinByStartTime pins pid by its start time: a process that got the PID
// of one that exited has another. It cannot tell a process that got the
// PID between connect and this call, which the pidfd can; so it also
// requires the process to be of the user that connected: a peer that
// exited cannot hand its PID to another user's process (an instance of an
// app running as root, say) and pass for it.
func pinByStartTime(pid, uid int) (*process, error) {
	start, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("pin pid %d: %w", pid, err)
	}
	cred, err := procCredential(pid)
	if err != nil {
		return nil, fmt.Errorf("pin pid %d: %w", pid, err)
	}
	if int(cred.UID) != uid {
		return nil, fmt.Errorf("pid %d is now a process of uid %d, not of the peer's uid %d: the peer exited", pid, cred.UID, uid)
	}
	again, err := startTime(pid)
	if err != nil || again != start {
		return nil, fmt.Errorf("pid %d exited while it was pinned", pid)
	}
	return &process{pid: pid, pidfd: -1, start: start}, nil
}

// owner asks the system manager for the unit of the pinned process and
// checks afterwards that the process is still the one pinned.
func (p *process) owner(ctx context.Context, m *units.Manager) (units.Owner, error) {
	o, err := m.ProcessOwner(ctx, p.pid, p.pidfd)
	if err != nil {
		return units.Owner{}, err
	}
	if err := p.check(); err != nil {
		return units.Owner{}, err
	}
	return o, nil
}

// check fails once the pinned process has exited (its PID may name
// another process by now).
func (p *process) check() error {
	if p.pidfd < 0 {
		if now, err := startTime(p.pid); err != nil || now != p.start {
			return fmt.Errorf("pid %d exited: the pid may name another process now", p.pid)
		}
		return nil
	}
	if (&watchedProcess{pidfd: p.pidfd}).exited() {
		return fmt.Errorf("pid %d exited: the pid may name another process now", p.pid)
	}
	return nil
}

// release closes the pidfd. A nil process has nothing to release.
func (p *process) release() {
	if p != nil && p.pidfd >= 0 {
		_ = unix.Close(p.pidfd) // a pidfd we own; nothing to do on error
	}
}

// startTime returns field 22 of /proc/PID/stat (starttime, in clock ticks
// since boot).
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The fields after the command name, which is in parentheses, start
	// with field 3 (state).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	fields := strings.Fields(s[i+1:])
	if i < 0 || len(fields) < 20 {
		return "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return fields[19], nil
}
