package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// pollInterval is how often waits re-query unit state in case the
// job-completion signal was lost.
const pollInterval = 250 * time.Millisecond

// Manager talks to the system's service manager. It is safe for concurrent
// use. Callers must Close it.
type Manager struct {
	mu   sync.Mutex // guards conn
	conn link
	// noPIDFD records that the service manager has no GetUnitByPIDFD
	// (systemd < 253).
	noPIDFD atomic.Bool
}

// link is one connection to systemd: go-systemd's, and the godbus
// connection under it that carries its method calls, for the calls
// go-systemd does not wrap (such as GetUnitByPIDFD).
type link struct {
	sd  *sd.Conn
	bus *dbus.Conn
}

// Dial connects to systemd: the system bus, or systemd's private socket
// when the bus is unavailable and the caller is root. ctx bounds the
// dial only: the connection lives until Close.
func Dial(ctx context.Context) (*Manager, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	return &Manager{conn: conn}, nil
}

func dial(ctx context.Context) (link, error) {
	// godbus closes a connection when the context it was dialled with
	// ends: a connection re-dialled inside a short call must outlive it.
	ctx = context.WithoutCancel(ctx)
	var l link
	keep := func(connect func(context.Context) (*dbus.Conn, error)) func() (*dbus.Conn, error) {
		return func() (*dbus.Conn, error) {
			c, err := connect(ctx)
			if err == nil && l.bus == nil {
				l.bus = c // both of go-systemd's connections can carry calls
			}
			return c, err
		}
	}
	// As root, systemd's private socket first, as systemctl does: no
	// dbus-daemon between, which halves the messages of every call.
	dialers := []func(context.Context) (*dbus.Conn, error){systemBus}
	if os.Geteuid() == 0 {
		dialers = []func(context.Context) (*dbus.Conn, error){systemdPrivate, systemBus}
	}
	var conn *sd.Conn
	var err error
	for _, d := range dialers {
		l.bus = nil
		if conn, err = sd.NewConnection(keep(d)); err == nil {
			break
		}
	}
	if err != nil {
		return link{}, fmt.Errorf("connect to systemd over D-Bus: %w", err)
	}
	l.sd = conn
	// Without Subscribe systemd may not emit JobRemoved to this client.
	if err := conn.Subscribe(); err != nil {
		conn.Close()
		return link{}, fmt.Errorf("subscribe to systemd signals: %w", err)
	}
	return l, nil
}

// systemBus connects to the system bus, as go-systemd's NewWithContext
// does first.
func systemBus(ctx context.Context) (*dbus.Conn, error) {
	c, err := dbus.SystemBusPrivate(dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := authenticate(c); err != nil {
		return nil, err
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// systemdPrivate connects to systemd's private socket (root only; no bus,
// so no Hello), go-systemd's fallback.
func systemdPrivate(ctx context.Context) (*dbus.Conn, error) {
	c, err := dbus.Dial("unix:path=/run/systemd/private", dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return c, authenticate(c)
}

// authenticate uses EXTERNAL with the numeric uid (no user database
// lookup), as go-systemd does; it closes c on failure.
func authenticate(c *dbus.Conn) error {
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return err
	}
	return nil
}

// Close closes the D-Bus connection.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conn.sd.Close()
	return nil
}

// do runs f on the connection, re-dialling once if the connection was
// closed under it (systemd re-executed, dbus-daemon restarted).
func (m *Manager) do(ctx context.Context, f func(*sd.Conn) error) error {
	return m.doLink(ctx, func(l link) error { return f(l.sd) })
}

// call runs f on systemd's manager object, re-dialling like do.
func (m *Manager) call(ctx context.Context, f func(manager dbus.BusObject) error) error {
	return m.doLink(ctx, func(l link) error { return f(l.bus.Object(systemdBusName, systemdPath)) })
}

// The manager's bus name and object path.
const (
	systemdBusName = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
)

func (m *Manager) doLink(ctx context.Context, f func(link) error) error {
	m.mu.Lock()
	conn := m.conn
	m.mu.Unlock()
	err := f(conn)
	if !errors.Is(err, dbus.ErrClosed) && conn.sd.Connected() {
		return err
	}
	m.mu.Lock()
	if m.conn == conn {
		fresh, derr := dial(ctx)
		if derr != nil {
			m.mu.Unlock()
			return fmt.Errorf("%w (re-dial: %w)", err, derr)
		}
		conn.sd.Close()
		m.conn = fresh
	}
	conn = m.conn
	m.mu.Unlock()
	return f(conn)
}

// isDBusError reports whether err is a D-Bus error with the given name.
func isDBusError(err error, name string) bool {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name == name
	}
	var dep *dbus.Error
	return errors.As(err, &dep) && dep.Name == name
}

// Version returns systemd's major version, e.g. 252.
func (m *Manager) Version(ctx context.Context) (int, error) {
	var v string
	err := m.do(ctx, func(c *sd.Conn) (err error) {
		v, err = c.GetManagerProperty("Version")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read systemd version: %w", err)
	}
	digits := regexp.MustCompile(`\d+`).FindString(v)
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0, fmt.Errorf("parse systemd version %q: %w", v, err)
	}
	return n, nil
}

// Reload runs daemon-reload.
func (m *Manager) Reload(ctx context.Context) error {
	if err := m.do(ctx, func(c *sd.Conn) error { return c.ReloadContext(ctx) }); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// ResetFailed clears the failed state of a unit so that its name can be
// reused. A unit that is not loaded or not failed is not an error.
func (m *Manager) ResetFailed(ctx context.Context, name string) error {
	err := m.do(ctx, func(c *sd.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	if err == nil || isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return nil
	}
	return fmt.Errorf("reset-failed %s: %w", name, err)
}

// Unit returns the current state of a unit, or an error wrapping
// ErrNoSuchUnit when it is not loaded.
func (m *Manager) Unit(ctx context.Context, name string) (Unit, error) {
	return m.read(ctx, name, unitProps)
}

// pollProps are what waits poll: enough for settled and to report a
// failed first attempt (waitFirstStart, abortStart); half of unitProps.
var pollProps = []property{
	{unitIface, "LoadState"}, {unitIface, "ActiveState"}, {unitIface, "SubState"}, {unitIface, "InvocationID"},
	{unitIface, "Job"}, {serviceIface, "Result"}, {serviceIface, "ExecMainCode"}, {serviceIface, "ExecMainStatus"},
	{serviceIface, "NRestarts"},
}

// poll is Unit with only pollProps filled in.
func (m *Manager) poll(ctx context.Context, name string) (Unit, error) {
	return m.read(ctx, name, pollProps)
}

func (m *Manager) read(ctx context.Context, name string, want []property) (Unit, error) {
	var props map[string]any
	err := m.doLink(ctx, func(l link) (err error) {
		if !strings.HasSuffix(name, ".service") {
			want = slices.DeleteFunc(slices.Clone(want), func(p property) bool { return p.iface == serviceIface })
		}
		props, err = getProps(ctx, l.bus.Object(systemdBusName, unitPath(name)), want)
		return err
	})
	if err != nil {
		return Unit{}, fmt.Errorf("read state of %s: %w", name, err)
	}
	u := unitFromProps(name, props)
	if u.LoadState == "not-found" || (u.LoadState == "" && u.ActiveState == "") {
		return u, fmt.Errorf("%s: %w", name, ErrNoSuchUnit)
	}
	return u, nil
}

// unitProps are the properties Unit reads (see unitFromProps); those of
// serviceIface for service units only. They are
// asked for one by one, all at once (getProps), rather than with GetAll:
// a service has some 300 properties, and GetAll cost ~5 ms of systemd's
// and this process's time and ~280 KB of garbage here per call, while a
// start polls the unit every 20 ms.
var unitProps = []property{
	{unitIface, "LoadState"}, {unitIface, "ActiveState"}, {unitIface, "SubState"}, {unitIface, "InvocationID"},
	{unitIface, "ActiveEnterTimestamp"}, {unitIface, "ActiveEnterTimestampMonotonic"}, {unitIface, "Job"},
	{unitIface, "FragmentPath"}, {unitIface, "Transient"},
	{serviceIface, "Result"}, {serviceIface, "MainPID"}, {serviceIface, "ExecMainCode"}, {serviceIface, "ExecMainStatus"},
	{serviceIface, "ExecMainStartTimestampMonotonic"}, {serviceIface, "Environment"}, {serviceIface, "NRestarts"},
}

// The D-Bus interfaces of systemd's unit objects.
const (
	unitIface    = "org.freedesktop.systemd1.Unit"
	serviceIface = "org.freedesktop.systemd1.Service"
)

// property names a property of an interface.
type property struct{ iface, name string }

// unitPath is the object path of the unit name (it need not be loaded:
// systemd loads it when asked).
func unitPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sd.PathBusEscape(name))
}

// getProps reads properties of obj, sending every request before it
// waits for the first answer: one round trip, not len(props).
func getProps(ctx context.Context, obj dbus.BusObject, props []property) (map[string]any, error) {
	calls := make([]*dbus.Call, len(props))
	for i, p := range props {
		calls[i] = obj.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, nil, p.iface, p.name)
	}
	out := make(map[string]any, len(props))
	var first error
	for i, c := range calls {
		<-c.Done
		var v dbus.Variant
		if err := c.Store(&v); err != nil {
			if first == nil {
				first = fmt.Errorf("read %s: %w", props[i].name, err)
			}
			continue
		}
		out[props[i].name] = v.Value()
	}
	return out, first
}

// List returns the loaded units whose names match the glob pattern.
func (m *Manager) List(ctx context.Context, pattern string) ([]Unit, error) {
	var st []sd.UnitStatus
	err := m.do(ctx, func(c *sd.Conn) (err error) {
		st, err = c.ListUnitsByPatternsContext(ctx, nil, []string{pattern})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list units %s: %w", pattern, err)
	}
	out := make([]Unit, 0, len(st))
	for _, s := range st {
		u, err := m.Unit(ctx, s.Name)
		if errors.Is(err, ErrNoSuchUnit) {
			continue // gone since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// Journal returns up to n of the last journal lines of one invocation of
// unit (its own output and what systemd logged about it), oldest first.
// pid, the invocation's main process, also matches its lines by unit and
// pid: journald reads a process's output when it gets to it, and what it
// reads after the process is gone carries the unit and pid but no
// invocation id (a crash's last words, on a busy machine).
func Journal(ctx context.Context, unit, invocationID string, pid, n int) ([]string, error) {
	if invocationID == "" {
		return nil, nil
	}
	match := []string{"_SYSTEMD_INVOCATION_ID=" + invocationID, "+", "INVOCATION_ID=" + invocationID}
	if pid > 0 {
		match = append(match, "+", "_SYSTEMD_UNIT="+unit, "_PID="+strconv.Itoa(pid))
	}
	return journal(ctx, n, match...)
}

// JournalSince returns up to n of the last journal lines of unit since
// since, oldest first: for a unit whose invocation is not known.
func JournalSince(ctx context.Context, unit string, since time.Time, n int) ([]string, error) {
	return journal(ctx, n, "-u", unit, "--since", fmt.Sprintf("@%d.%06d", since.Unix(), since.Nanosecond()/1000))
}

// syncWait bounds the wait for journald to store what it has received.
const syncWait = time.Second

func journal(ctx context.Context, n int, match ...string) ([]string, error) {
	// Ask journald to store what it has received first: without it a line
	// the process wrote just before it died may not be readable yet. A
	// stuck journald would hold --sync forever; reading the files does not
	// need journald.
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	_ = exec.CommandContext(sctx, "journalctl", "--sync").Run() // best effort: reading goes on without
	cancel()
	args := append([]string{"--no-pager", "--quiet", "-o", "short-precise", "-n", strconv.Itoa(n)}, match...)
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("read journal (%s): %w", strings.Join(match, " "), err)
	}
	text := strings.TrimRight(string(out), "\n")
	if text == "" {
		return nil, nil
	}
	return strings.Split(text, "\n"), nil
}
