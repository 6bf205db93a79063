package units

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// StartTransient creates and starts a transient service and waits until its
// start job finished: for a Type=notify service, until READY=1 arrived.
//
// A leftover of the same name is cleared first (see clearName): one still
// stopping is waited for, a failed one is reset, and a stopped one that
// systemd has not unloaded yet is waited for (at most UnloadTimeout), so
// that starting a name right after it was stopped never fails with
// "already loaded". A running one is an error wrapping ErrUnitActive; one
// that stays loaded is an error wrapping ErrUnitLoaded. When the job fails
// the error is a *JobError and the returned Unit still carries the
// InvocationID (for Journal); the failed unit is left loaded so the caller
// can read it, and must be passed to ResetFailed or Stop. When ctx ends
// first the unit may still be starting: the caller must Stop it.
//
// With spec.RestartDelay set, systemd restarts a unit whose first attempt
// failed (the process exited, or missed TimeoutStart, before READY=1):
// systemd 252 and 257 fail the start job and go on restarting the unit
// (up to the start limit). So the wait also watches the unit in case the
// job signal is late or lost, and once the first attempt has ended before
// READY=1 it stops the unit and returns a *JobError with that attempt's
// exit, service result and InvocationID; the unit is then stopped, not
// failed. An attempt that sent READY=1 and ended right after did start:
// the unit is returned without error, possibly waiting to restart (no
// main process); what it did after READY=1 is the caller's to judge.
func (m *Manager) StartTransient(ctx context.Context, name string, spec Spec) (Unit, error) {
	props, err := spec.properties()
	if err != nil {
		return Unit{}, fmt.Errorf("start %s: %w", name, err)
	}
	ch := make(chan string, 1)
	t := StartTimes{Began: Monotonic()}
	for attempt := 1; ; attempt++ {
		if u, err := m.clearName(ctx, name); err != nil {
			return u, err
		}
		t.Requested = Monotonic()
		err = m.do(ctx, func(c *sd.Conn) error {
			_, err := c.StartTransientUnitContext(ctx, name, "fail", props, ch)
			return err
		})
		// "already loaded": loaded again since clearName looked (by a
		// client reading its state); clear it again.
		if !isDBusError(err, "org.freedesktop.systemd1.UnitExists") || attempt == 3 {
			break
		}
	}
	if err != nil {
		return Unit{}, fmt.Errorf("start transient unit %s: %w", name, err)
	}
	t.Queued = Monotonic()
	var u Unit
	if spec.RestartDelay > 0 {
		u, err = m.waitFirstStart(ctx, name, ch)
	} else {
		u, err = m.wait(ctx, name, "start", ch)
	}
	t.Done = Monotonic()
	if err == nil {
		t.Forked, t.Ready = u.Forked, u.Activated
		u.Start = &t
	}
	return u, err
}

// Monotonic reads CLOCK_MONOTONIC, the clock of systemd's
// *TimestampMonotonic properties (see StartTimes).
func Monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for this clock
	return time.Duration(ts.Nano())
}

// UnloadTimeout bounds how long StartTransient waits for systemd to unload
// a stopped unit of the same name. Unloading normally follows the stop
// within milliseconds; a unit stays loaded while another unit refers to
// it (Wants=, Requires=, ...).
const UnloadTimeout = 30 * time.Second

// unloadPoll is how often clearName re-queries a unit it waits for.
const unloadPoll = 10 * time.Millisecond

// clearName makes sure that no unit called name is loaded, so that a
// transient unit of that name can be created: it waits for a unit that
// is stopping, resets a failed one and waits (at most UnloadTimeout) for
// systemd to unload a stopped one. It refuses a running unit
// (ErrUnitActive) and one defined by a unit file.
func (m *Manager) clearName(ctx context.Context, name string) (Unit, error) {
	if loaded, err := m.loaded(ctx, name); err == nil && !loaded {
		return Unit{}, nil // the usual case, in one short call that loads nothing
	}
	u, err := m.Unit(ctx, name)
	switch {
	case errors.Is(err, ErrNoSuchUnit):
		return Unit{}, nil
	case err != nil:
		return u, fmt.Errorf("start %s: %w", name, err)
	case u.Running():
		return u, fmt.Errorf("start %s: %w (state %s)", name, ErrUnitActive, u.ActiveState)
	case u.FragmentPath != "" && !u.Transient:
		return u, fmt.Errorf("start %s: the unit file %s defines that name; transient units cannot use it: remove the file and run `systemctl daemon-reload`", name, u.FragmentPath)
	}
	if u.ActiveState == "deactivating" {
		if u, err := m.Stop(ctx, name); err != nil {
			return u, fmt.Errorf("start %s: wait for the previous unit of that name to stop: %w", name, err)
		}
	}
	if err := m.ResetFailed(ctx, name); err != nil {
		return u, err
	}
	return m.waitUnloaded(ctx, name)
}

// loaded reports whether systemd has a unit called name loaded, without
// making it load one (as reading its properties would).
func (m *Manager) loaded(ctx context.Context, name string) (bool, error) {
	if strings.ContainsAny(name, "*?[]\\") {
		return true, nil // not a literal pattern: let the caller look closer
	}
	var st []sd.UnitStatus
	err := m.do(ctx, func(c *sd.Conn) (err error) {
		st, err = c.ListUnitsByPatternsContext(ctx, nil, []string{name})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("list unit %s: %w", name, err)
	}
	return len(st) > 0, nil
}

// waitUnloaded re-queries a stopped unit until systemd has unloaded it,
// at most UnloadTimeout.
func (m *Manager) waitUnloaded(ctx context.Context, name string) (Unit, error) {
	begin := time.Now()
	wctx, cancel := context.WithTimeout(ctx, UnloadTimeout)
	defer cancel()
	tick := time.NewTicker(unloadPoll)
	defer tick.Stop()
	for {
		u, err := m.Unit(wctx, name)
		if errors.Is(err, ErrNoSuchUnit) {
			return Unit{}, nil
		}
		select {
		case <-wctx.Done():
			return u, fmt.Errorf("start %s: %w after %s (state %s/%s): systemd unloads a stopped unit once no other unit refers to it; "+
				"see `systemctl list-dependencies --reverse %s`, stop what refers to it, then retry (%w)",
				name, ErrUnitLoaded, time.Since(begin).Round(time.Millisecond), u.ActiveState, u.SubState, name, wctx.Err())
		case <-tick.C: // err: transient D-Bus trouble, or the unit is still there; ask again
		}
	}
}

// restartPoll is how often a start wait looks for a failed first attempt
// of a unit that restarts on failure. It must be well below the units'
// RestartDelay: the failed attempt's exit status is only readable while the
// unit waits to restart.
const restartPoll = 20 * time.Millisecond

// waitFirstStart is wait for the start job of a unit that restarts on
// failure: it also ends, with a *JobError, when the first attempt failed.
func (m *Manager) waitFirstStart(ctx context.Context, name string, ch <-chan string) (Unit, error) {
	first, _ := m.Unit(ctx, name) // its InvocationID names the first attempt; an error leaves it empty
	if first.Restarts > 0 || first.autoRestarting() {
		return m.firstAttemptEnded(ctx, name, ch, first, Unit{})
	}
	tick := time.NewTicker(restartPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			u, _ := m.Unit(context.WithoutCancel(ctx), name) // best effort, for the caller's report
			return u, fmt.Errorf("wait for start job of %s: %w", name, ctx.Err())
		case result := <-ch:
			// "done": the first attempt sent READY=1 (what it did after
			// is the caller's to judge). Otherwise systemd failed the job
			// and goes on restarting the unit.
			if result == "done" {
				return m.started(ctx, name, first)
			}
			u, err := m.finish(ctx, name, "start", result)
			if u.Restarts > 0 || u.autoRestarting() || (err != nil && u.Running()) {
				return m.abortStart(ctx, name, u, first)
			}
			return u, err
		case <-tick.C:
			u, err := m.poll(ctx, name)
			if err != nil && !errors.Is(err, ErrNoSuchUnit) {
				continue // transient D-Bus trouble: keep waiting for the signal
			}
			if first.InvocationID == "" {
				first.InvocationID = u.InvocationID
			}
			if u.Restarts > 0 || u.autoRestarting() || (u.InvocationID != "" && u.InvocationID != first.InvocationID) {
				return m.firstAttemptEnded(ctx, name, ch, u, first)
			}
			if result := settled(u, "start"); result != "" {
				return m.finish(ctx, name, "start", result)
			}
		}
	}
}

// jobResultWait bounds how long firstAttemptEnded waits for the result of
// the start job, which systemd finished once the first attempt ended: the
// signal is on its way, but a process kept off the CPU can take a while
// to read it.
const jobResultWait = 5 * time.Second

// firstAttemptEnded decides a start whose first attempt is seen to have
// ended (u, as last seen). The start job's result decides, not when this
// process looked: an attempt that sent READY=1 and died a moment later
// finished the job "done", while a process kept off the CPU meanwhile sees
// only the death, and after RestartDelay a restart job and NRestarts too.
// systemd finishes the start job when the first attempt ends (READY=1:
// "done"; an end before it: "failed"; the default RestartMode=normal,
// which beamdeploy does not change), so its result is waited for. "done"
// is a start that succeeded, reported with the first attempt's
// invocation (its journal tells what followed); otherwise, or when the
// signal was lost, the unit is stopped and the first attempt reported
// (abortStart).
func (m *Manager) firstAttemptEnded(ctx context.Context, name string, ch <-chan string, u, first Unit) (Unit, error) {
	t := time.NewTimer(jobResultWait)
	defer t.Stop()
	select {
	case result := <-ch:
		if result == "done" {
			return m.started(ctx, name, first)
		}
	case <-t.C:
	case <-ctx.Done():
		return u, fmt.Errorf("wait for start job of %s: %w", name, ctx.Err())
	}
	return m.abortStart(ctx, name, u, first)
}

// started is finish for a start job that finished "done": the unit as it
// is now, under the first attempt's invocation when it is known (a later
// attempt may run already).
func (m *Manager) started(ctx context.Context, name string, first Unit) (Unit, error) {
	u, err := m.finish(ctx, name, "start", "done")
	if first.InvocationID != "" {
		u.InvocationID = first.InvocationID
	}
	return u, err
}

// abortStart stops a unit whose first start attempt failed and reports
// that attempt. u is the unit as last seen; first, when it has an
// InvocationID, is the first attempt.
func (m *Manager) abortStart(ctx context.Context, name string, u, first Unit) (Unit, error) {
	je := &JobError{Unit: name, Job: "start", Result: "failed"}
	if u.autoRestarting() { // the failed attempt's exit is still there
		je.Exit, je.ServiceResult = u.Exit(), u.Result
	} else {
		je.Exit = fmt.Sprintf("failed before READY=1 and was restarted (%d restarts)", u.Restarts)
	}
	if first.InvocationID != "" {
		u.InvocationID = first.InvocationID
	}
	if _, err := m.Stop(ctx, name); err != nil {
		return u, errors.Join(je, err)
	}
	return u, je
}

// Start starts an existing unit and waits for its start job.
func (m *Manager) Start(ctx context.Context, name string) (Unit, error) {
	ch := make(chan string, 1)
	err := m.do(ctx, func(c *sd.Conn) error {
		_, err := c.StartUnitContext(ctx, name, "replace", ch)
		return err
	})
	if err != nil {
		return Unit{}, fmt.Errorf("start %s: %w", name, err)
	}
	return m.wait(ctx, name, "start", ch)
}

// Stop stops a unit and waits until its stop job ended: SIGTERM, then
// SIGKILL after its TimeoutStop. A unit that is not loaded is already
// stopped. The returned Unit tells how it ended (Result "timeout" means it
// was killed). A unit left failed by the stop is reset so its name can be
// reused; systemd unloads the stopped unit a moment later, when its garbage
// collection gets to it (StartTransient of the same name waits for that).
func (m *Manager) Stop(ctx context.Context, name string) (Unit, error) {
	ch := make(chan string, 1)
	err := m.do(ctx, func(c *sd.Conn) error {
		_, err := c.StopUnitContext(ctx, name, "replace", ch)
		return err
	})
	if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return Unit{Name: name, ActiveState: "inactive"}, nil
	}
	if err != nil {
		return Unit{}, fmt.Errorf("stop %s: %w", name, err)
	}
	u, err := m.wait(ctx, name, "stop", ch)
	if u.ActiveState == "failed" {
		if rerr := m.ResetFailed(ctx, name); rerr != nil && err == nil {
			err = rerr
		}
	}
	return u, err
}

// wait blocks until the job for unit name finishes, trusting either the
// JobRemoved signal or a re-query of the unit, whichever comes first.
func (m *Manager) wait(ctx context.Context, name, job string, ch <-chan string) (Unit, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			u, _ := m.Unit(context.WithoutCancel(ctx), name) // best effort, for the caller's report
			return u, fmt.Errorf("wait for %s job of %s: %w", job, name, ctx.Err())
		case result := <-ch:
			return m.finish(ctx, name, job, result)
		case <-tick.C:
			u, err := m.poll(ctx, name)
			if err != nil && !errors.Is(err, ErrNoSuchUnit) {
				continue // transient D-Bus trouble: keep waiting for the signal
			}
			if result := settled(u, job); result != "" {
				return m.finish(ctx, name, job, result)
			}
		}
	}
}

// settled infers a job's result from the unit state when its job is gone.
func settled(u Unit, job string) string {
	if u.Job != 0 {
		return ""
	}
	switch {
	case job == "start" && u.ActiveState == "active":
		return "done"
	case job == "start" && (u.ActiveState == "failed" || u.ActiveState == "inactive"):
		return "failed"
	case job == "stop" && (u.ActiveState == "inactive" || u.ActiveState == "failed"):
		return "done"
	}
	return ""
}

func (m *Manager) finish(ctx context.Context, name, job, result string) (Unit, error) {
	u, err := m.Unit(ctx, name)
	if err != nil && !errors.Is(err, ErrNoSuchUnit) {
		return u, err
	}
	if result == "done" && !(job == "start" && u.ActiveState == "failed") {
		return u, nil
	}
	return u, &JobError{Unit: name, Job: job, Result: result, Exit: u.Exit(), ServiceResult: u.Result}
}

// unitFromProps builds a Unit from properties by name. Unit asks systemd
// for unitProps only: a property read here must be listed there too.
func unitFromProps(name string, p map[string]any) Unit {
	u := Unit{Name: name}
	u.LoadState, _ = p["LoadState"].(string)
	u.ActiveState, _ = p["ActiveState"].(string)
	u.SubState, _ = p["SubState"].(string)
	u.Result, _ = p["Result"].(string)
	if id, ok := p["InvocationID"].([]byte); ok && len(id) > 0 {
		u.InvocationID = hex.EncodeToString(id)
	}
	if pid, ok := p["MainPID"].(uint32); ok {
		u.MainPID = int(pid)
	}
	if ts, ok := p["ActiveEnterTimestamp"].(uint64); ok && ts > 0 {
		u.Since = time.UnixMicro(int64(ts))
	}
	if j, ok := p["Job"].([]any); ok && len(j) == 2 {
		u.Job, _ = j[0].(uint32)
	}
	u.ExecMainCode, _ = p["ExecMainCode"].(int32)
	u.ExecMainStat, _ = p["ExecMainStatus"].(int32)
	u.Environment, _ = p["Environment"].([]string)
	if n, ok := p["NRestarts"].(uint32); ok {
		u.Restarts = int(n)
	}
	if ts, ok := p["ExecMainStartTimestampMonotonic"].(uint64); ok {
		u.Forked = time.Duration(ts) * time.Microsecond
	}
	if ts, ok := p["ActiveEnterTimestampMonotonic"].(uint64); ok {
		u.Activated = time.Duration(ts) * time.Microsecond
	}
	u.FragmentPath, _ = p["FragmentPath"].(string)
	u.Transient, _ = p["Transient"].(bool)
	return u
}

func (s Spec) properties() ([]sd.Property, error) {
	if len(s.ExecStart) == 0 {
		return nil, errors.New("no command to run")
	}
	props := []sd.Property{
		sd.PropDescription(s.Description),
		sd.PropType("notify"),
		// go-systemd calls the flag UncleanIsFailure, but systemd reads it
		// as ExecStart's "-" prefix (ignore failure): false keeps a
		// non-zero exit or a kill a failure, which Restart=on-failure needs.
		sd.PropExecStart(s.ExecStart, false),
		prop("KillMode", "mixed"),
		// all: a process the main one started may become the main process
		// (MAINPID=, hot upgrades) and send READY=1.
		prop("NotifyAccess", "all"),
		prop("Environment", s.Environment),
	}
	if s.WorkingDirectory != "" {
		props = append(props, prop("WorkingDirectory", s.WorkingDirectory))
	}
	if s.User != "" {
		props = append(props, prop("User", s.User))
	}
	if s.DynamicUser {
		props = append(props, prop("DynamicUser", true))
	}
	if s.StateDirectory != "" {
		props = append(props, prop("StateDirectory", []string{s.StateDirectory}))
	}
	if s.TimeoutStart > 0 {
		props = append(props, prop("TimeoutStartUSec", uint64(s.TimeoutStart.Microseconds())))
	}
	if s.TimeoutStop > 0 {
		props = append(props, prop("TimeoutStopUSec", uint64(s.TimeoutStop.Microseconds())))
	}
	if s.Hardened {
		for _, h := range Hardening {
			if s.SharedTmp && h.Name == "PrivateTmp" {
				continue
			}
			props = append(props, prop(h.Name, h.Value))
		}
	}
	if s.RestartDelay > 0 {
		props = append(props, prop("Restart", "on-failure"),
			prop("RestartUSec", uint64(s.RestartDelay.Microseconds())),
			prop("StartLimitBurst", uint32(StartLimitBurst)),
			prop("StartLimitIntervalUSec", uint64(StartLimitInterval.Microseconds())))
	}
	if len(s.FDs) > 0 {
		fds := make([]extraFD, len(s.FDs))
		for i, fd := range s.FDs {
			fds[i] = extraFD{FD: dbus.UnixFD(fd.Num), Name: fd.Name}
		}
		props = append(props, prop("ExtraFileDescriptors", fds))
	}
	if len(s.LogExtraFields) > 0 {
		fields := make([][]byte, len(s.LogExtraFields))
		for i, f := range s.LogExtraFields {
			fields[i] = []byte(f)
		}
		props = append(props, prop("LogExtraFields", fields))
	}
	return props, nil
}

// extraFD is one entry of ExtraFileDescriptors (D-Bus signature a(hs)).
type extraFD struct {
	FD   dbus.UnixFD
	Name string
}

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// Enable enables unit files (the [Install] symlinks), like systemctl enable.
func (m *Manager) Enable(ctx context.Context, names ...string) error {
	err := m.do(ctx, func(c *sd.Conn) error {
		_, _, err := c.EnableUnitFilesContext(ctx, names, false, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("enable %v: %w", names, err)
	}
	return nil
}

// Disable disables the unit files names (removes their [Install] links).
func (m *Manager) Disable(ctx context.Context, names ...string) error {
	err := m.do(ctx, func(c *sd.Conn) error {
		_, err := c.DisableUnitFilesContext(ctx, names, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("disable %v: %w", names, err)
	}
	return nil
}

// JobType returns the type of the job queued for unit name ("stop",
// "restart", "try-restart", ...), or "" when none is.
func (m *Manager) JobType(ctx context.Context, name string) (string, error) {
	var jobs []sd.JobStatus
	err := m.do(ctx, func(c *sd.Conn) error {
		var err error
		jobs, err = c.ListJobsContext(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs {
		if j.Unit == name {
			return j.JobType, nil
		}
	}
	return "", nil
}
