package sockact

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/contract"
)

// Inherited returns the sockets passed to this process by socket
// activation (the rules of contract.ParseListenFDs: an error wrapping
// contract.ErrNoListeners when none were), marks them close-on-exec and
// unsets LISTEN_* so that children do not inherit them by accident.
func Inherited() ([]FD, error) {
	names, err := contract.TakeListenFDs()
	if err != nil {
		return nil, err
	}
	fds := make([]FD, len(names))
	for i, name := range names {
		fds[i] = FD{Num: contract.ListenFDsStart + i, Name: name}
		unix.CloseOnExec(fds[i].Num)
	}
	return fds, nil
}

type header struct {
	Names []string `json:"names,omitempty"`
	Error string   `json:"error,omitempty"` // why no descriptors come
}

// Refuse tells the peer on conn why it gets no descriptors (Fetch returns
// it, wrapped in ErrRefused).
func Refuse(conn *net.UnixConn, why error) error {
	payload, err := json.Marshal(header{Error: why.Error()})
	if err != nil {
		return fmt.Errorf("encode refusal: %w", err)
	}
	if _, err := conn.Write(payload); err != nil {
		return fmt.Errorf("send refusal: %w", err)
	}
	return nil
}

// MsgConn is a connection that carries descriptors: a *net.UnixConn, or
// a type embedding one.
type MsgConn interface {
	WriteMsgUnix(b, oob []byte, addr *net.UnixAddr) (n, oobn int, err error)
}

// Send writes fds to conn in one message (SCM_RIGHTS), with their names.
func Send(conn MsgConn, fds []FD) error {
	if len(fds) == 0 || len(fds) > contract.MaxListenFDs {
		return fmt.Errorf("sockact: cannot send %d descriptors", len(fds))
	}
	h := header{Names: make([]string, len(fds))}
	nums := make([]int, len(fds))
	for i, fd := range fds {
		h.Names[i], nums[i] = fd.Name, fd.Num
	}
	payload, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode listener names: %w", err)
	}
	if _, _, err := conn.WriteMsgUnix(payload, unix.UnixRights(nums...), nil); err != nil {
		return fmt.Errorf("send listener fds: %w", err)
	}
	return nil
}

// Fetch connects to the broker socket at path and receives the listener
// fds. It uses blocking system calls only, so that it never starts the Go
// runtime's network poller: the poller's own descriptors would otherwise
// take the fd numbers Exec must place the listeners at. The received fds
// are not close-on-exec. It retries connecting until timeout, for a
// broker that is still starting.
func Fetch(path string, timeout time.Duration) ([]FD, error) {
	s, err := dialUnix(path, timeout)
	if err != nil {
		return nil, err
	}
	defer unix.Close(s)
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(contract.MaxListenFDs*4))
	n, oobn, _, _, err := unix.Recvmsg(s, buf, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive listener fds from %s: %w", path, err)
	}
	nums, err := parseRights(oob[:oobn])
	var h header
	if errors.Is(err, contract.ErrNoListeners) && json.Unmarshal(buf[:n], &h) == nil && h.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrRefused, h.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("receive listener fds from %s: %w", path, err)
	}
	if err := json.Unmarshal(buf[:n], &h); err != nil || len(h.Names) != len(nums) {
		closeAll(nums)
		return nil, fmt.Errorf("receive listener fds from %s: malformed message (%d fds, %q)", path, len(nums), buf[:n])
	}
	fds := make([]FD, len(nums))
	for i := range nums {
		fds[i] = FD{Num: nums[i], Name: h.Names[i]}
	}
	return fds, nil
}

func dialUnix(path string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("create socket: %w", err)
		}
		err = unix.Connect(s, &unix.SockaddrUnix{Name: path})
		if err == nil {
			return s, nil
		}
		unix.Close(s)
		retry := errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EAGAIN)
		if !retry || time.Now().After(deadline) {
			return -1, fmt.Errorf("connect to fd broker %s: %w", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var nums []int
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			closeAll(nums)
			return nil, fmt.Errorf("parse SCM_RIGHTS: %w", err)
		}
		nums = append(nums, fds...)
	}
	if len(nums) == 0 {
		return nil, contract.ErrNoListeners
	}
	return nums, nil
}

func closeAll(nums []int) {
	for _, n := range nums {
		_ = unix.Close(n) // discarding descriptors we will not use
	}
}
