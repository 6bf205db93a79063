package gate

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxGroups bounds the supplementary groups read (Linux allows 65536).
const maxGroups = 1 << 16

// PeerCred returns the kernel's record of the process at the other end
// of c, taken when it connected: SO_PEERCRED and SO_PEERGROUPS.
func PeerCred(c *net.UnixConn) (Cred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred Cred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = peerCred(int(fd)) }); err != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	return cred, cerr
}

func peerCred(fd int) (Cred, error) {
	uc, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Cred{}, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	groups, err := peerGroups(fd)
	if err != nil {
		return Cred{}, err
	}
	return Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid), Groups: groups}, nil
}

// peerGroups reads SO_PEERGROUPS, growing the buffer to the size the
// kernel asks for.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 16)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			out := make([]int, size/4)
			for i := range out {
				out[i] = int(buf[i])
			}
			return out, nil
		case errors.Is(errno, unix.ERANGE) && int(size/4) > len(buf) && size/4 <= maxGroups:
			buf = make([]uint32, size/4)
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
	}
}
