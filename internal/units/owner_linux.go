package units

import (
	"context"
	"encoding/hex"
	"fmt"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ProcessOwner asks the service manager which unit the process pid
// belongs to, and that unit's current invocation. With pidfd >= 0 (a
// pidfd of that process) it asks by pidfd (GetUnitByPIDFD, systemd >=
// 253), and systemd itself checks that the process did not change during
// the lookup. Otherwise, and on older systemd, it asks by pid
// (GetUnitByPID): the caller must then check that pid still names the
// process it meant once ProcessOwner returned (for example that its pidfd
// is still alive). It never reads a cgroup path: a user's own service
// manager can name its units like any system unit.
func (m *Manager) ProcessOwner(ctx context.Context, pid, pidfd int) (Owner, error) {
	if pidfd >= 0 && !m.noPIDFD.Load() {
		var path dbus.ObjectPath
		var o Owner
		var id []byte
		err := m.call(ctx, func(sys dbus.BusObject) error {
			return sys.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.GetUnitByPIDFD", 0, dbus.UnixFD(pidfd)).Store(&path, &o.Unit, &id)
		})
		if err == nil {
			o.InvocationID = hex.EncodeToString(id)
			return o, nil
		}
		if !isDBusError(err, "org.freedesktop.DBus.Error.UnknownMethod") {
			return Owner{}, fmt.Errorf("ask systemd for the unit of pid %d: %w", pid, err)
		}
		m.noPIDFD.Store(true)
	}
	var path dbus.ObjectPath
	err := m.call(ctx, func(sys dbus.BusObject) error {
		return sys.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.GetUnitByPID", 0, uint32(pid)).Store(&path)
	})
	if err != nil {
		return Owner{}, fmt.Errorf("ask systemd for the unit of pid %d: %w", pid, err)
	}
	var o Owner
	var id []byte
	err = m.doLink(ctx, func(l link) error {
		u := l.bus.Object(systemdBusName, path)
		if err := get(ctx, u, "org.freedesktop.systemd1.Unit", "Id", &o.Unit); err != nil {
			return err
		}
		return get(ctx, u, "org.freedesktop.systemd1.Unit", "InvocationID", &id)
	})
	if err != nil {
		return Owner{}, fmt.Errorf("read the unit of pid %d: %w", pid, err)
	}
	o.InvocationID = hex.EncodeToString(id)
	return o, nil
}

// Restarts returns how often systemd restarted the service unit name by
// itself (NRestarts: Restart= since the unit was loaded; a start or
// restart someone asked for resets it to 0).
func (m *Manager) Restarts(ctx context.Context, name string) (int, error) {
	var n uint32
	err := m.do(ctx, func(c *sd.Conn) error {
		p, err := c.GetServicePropertyContext(ctx, name, "NRestarts")
		if err != nil {
			return err
		}
		return p.Value.Store(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("read NRestarts of %s: %w", name, err)
	}
	return int(n), nil
}

// get reads one property into v.
func get(ctx context.Context, obj dbus.BusObject, iface, name string, v any) error {
	var variant dbus.Variant
	if err := obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, iface, name).Store(&variant); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return variant.Store(v)
}
