// Package sockact passes listening sockets around the way systemd socket
// activation does: it reads LISTEN_FDS in the parent, serves the listener
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

// ListenFDsStart is the first descriptor passed by socket activation.
const ListenFDsStart = 3

// ErrNoListeners is returned when no listening sockets were passed.
var ErrNoListeners = errors.New("sockact: no listening sockets passed (LISTEN_FDS unset)")

// ErrRefused is returned by Fetch when the fd broker refused to hand out
// the listeners; the error says why.
var ErrRefused = errors.New("sockact: the fd broker refused")

// MaxFDs is the most descriptors one message carries (the kernel's
// SCM_MAX_FD).
const MaxFDs = 253
