package beamdeploy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/beamdeploy/beamdeploy/internal/contract"
)

// ErrNoListeners means no inherited listener is available: LISTEN_FDS or
// LISTEN_PID is unset, LISTEN_PID names another process, or (from [Listen])
// none of the inherited listeners has the requested address. Malformed
// LISTEN_* values (LISTEN_PID not a pid, LISTEN_FDS not a count from 1 to
// 65536) are other errors, as in sd_listen_fds(3). Its text is
// "beamdeploy: no inherited listener"; the exec shim shares the value.
var ErrNoListeners = contract.ErrNoListeners

// NamedListener is an inherited listener with the name systemd gave its fd
// (FileDescriptorName= in the socket unit). Name is "unknown" when
// LISTEN_FDNAMES was not set, as in sd_listen_fds_with_names(3).
type NamedListener struct {
	Name string
	net.Listener
}

// inherited caches the listeners taken from the environment: they can be
// taken only once per process.
var inherited struct {
	once sync.Once
	ls   []NamedListener
	err  error
}

func loadInherited() ([]NamedListener, error) {
	inherited.once.Do(func() {
		inherited.ls, inherited.err = listenersFromEnv()
	})
	return inherited.ls, inherited.err
}

// NamedListeners returns the listeners handed to the process through
// LISTEN_FDS, in fd order, with their names. The first call takes them from
// the environment and unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES so that
// child processes do not inherit them; every call returns the same listeners
// (closing one closes it for every caller). It returns an error wrapping
// [ErrNoListeners] when none were passed, and one wrapping
// [errors.ErrUnsupported] on systems other than Linux.
func NamedListeners() ([]NamedListener, error) {
	ls, err := loadInherited()
	if err != nil {
		return nil, err
	}
	return slices.Clone(ls), nil
}

// Listeners is like [NamedListeners] without the names.
func Listeners() ([]net.Listener, error) {
	named, err := NamedListeners()
	if err != nil {
		return nil, err
	}
	ls := make([]net.Listener, len(named))
	for i, l := range named {
		ls[i] = l.Listener
	}
	return ls, nil
}

// Listen returns a listener for addr on network. When [Enabled] is false it
// is [net.Listen], so the same binary runs standalone. When Enabled is true it
// returns the inherited listener (see [Listeners]) whose local address is addr
// (an unspecified host such as ":8080" matches a wildcard listener on that
// port); if exactly one listener was inherited it is returned whatever addr
// is. Listen may be called several times, for different addresses; asking
// twice for one address returns the same listener. It never falls back to
// net.Listen when Enabled is true: the error wraps [ErrNoListeners] when
// nothing matches.
func Listen(network, addr string) (net.Listener, error) {
	if !Enabled() {
		return net.Listen(network, addr) // its *net.OpError already says "listen network addr"
	}
	ls, err := loadInherited()
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", network, addr, err)
	}
	if len(ls) == 1 {
		return ls[0].Listener, nil
	}
	for _, l := range ls {
		if addrMatches(network, addr, l.Addr()) {
			return l.Listener, nil
		}
	}
	return nil, fmt.Errorf("listen %s %s (inherited %s): %w", network, addr, describe(ls), ErrNoListeners)
}

// addrMatches reports whether a listener bound to got serves addr on network.
func addrMatches(network, addr string, got net.Addr) bool {
	switch network {
	case "tcp", "tcp4", "tcp6":
		want, err := net.ResolveTCPAddr(network, addr)
		g, ok := got.(*net.TCPAddr)
		if err != nil || !ok || want.Port != g.Port {
			return false
		}
		if len(want.IP) == 0 || want.IP.IsUnspecified() {
			return len(g.IP) == 0 || g.IP.IsUnspecified()
		}
		return want.IP.Equal(g.IP)
	default:
		return got.Network() == network && got.String() == addr
	}
}

func describe(ls []NamedListener) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.Name + "=" + l.Addr().Network() + ":" + l.Addr().String()
	}
	return strings.Join(parts, ", ")
}

// listenersFromEnv takes the LISTEN_* variables out of the environment and
// turns the fds they describe into listeners.
func listenersFromEnv() ([]NamedListener, error) {
	names, err := contract.TakeListenFDs()
	if err != nil {
		return nil, err
	}
	return fdListeners(names)
}
