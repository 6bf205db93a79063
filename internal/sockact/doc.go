// Package sockact passes listening sockets around the way systemd socket
// activation does: it takes LISTEN_FDS in the parent (by the rules of
// internal/contract, which the SDK follows too), serves the listener
// fds to instances over a unix socket with SCM_RIGHTS (the fd broker), and
// in an instance receives them, places them at fd 3 onwards and execs the
// application with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES set.
//
// Listener fds are kept as raw descriptors and never wrapped in *os.File:
// os.File.Fd would switch the shared file description to blocking mode for
// every process holding it. The package never logs; it returns errors.
//
// See sd_listen_fds(3).
package sockact

import "errors"

// FD is a listening socket descriptor and its name (LISTEN_FDNAMES).
type FD struct {
	Num  int
	Name string
}

// ErrRefused is returned by Fetch when the fd broker refused to hand out
// the listeners; the error says why.
var ErrRefused = errors.New("sockact: the fd broker refused")
