package beamdeploy

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/contract"
)

// fdListeners turns the inherited fds starting at 3, named names, into
// listeners. Every inherited fd is closed (net.FileListener works on a dup);
// on error so are the listeners made so far.
func fdListeners(names []string) ([]NamedListener, error) {
	ls := make([]NamedListener, 0, len(names))
	var errs []error
	for i := range names {
		fd := contract.ListenFDsStart + i
		l, err := fdListener(fd, names[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("inherited fd %d (%s): %w", fd, names[i], err))
			continue
		}
		ls = append(ls, NamedListener{Name: names[i], Listener: l})
	}
	if err := errors.Join(errs...); err != nil {
		for _, l := range ls {
			_ = l.Close() // the error below is what matters
		}
		return nil, err
	}
	return ls, nil
}

// fdListener wraps fd, a listening stream socket, and closes fd. It never
// changes the blocking mode of fd's file description, which other processes
// share.
func fdListener(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), name)
	defer func() { _ = f.Close() }() // FileListener dups; only the dup is kept
	accepting, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("check socket: %w", err)
	}
	if accepting == 0 {
		return nil, errors.New("not a listening socket")
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("wrap listener: %w", err)
	}
	return l, nil
}
