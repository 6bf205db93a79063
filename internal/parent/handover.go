package parent

import (
	"context"
	"fmt"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// reportGrace is how long after an order's timeout_ns the parent still
// takes the instance's report.
const reportGrace = 2 * time.Second

// stateWait is the least time the parent gives systemd, after a report,
// to show what the app sent on NOTIFY_SOCKET before it reported.
const stateWait = 5 * time.Second

// hotCompatible applies the hot upgrade rule: both releases declare the
// same compat key and the same hot upgrade mode in their manifests.
// (Staging already refused a binary for another architecture than this
// host's, which the running one is for.)
func hotCompatible(app string, cur, next release.Release) error {
	hint := fmt.Sprintf("; swap to it with: beamdeploy upgrade %s (a new instance beside the old one)", app)
	switch {
	case next.Compat == "":
		return fmt.Errorf("%w: release %s declares no \"compat\" key in %s%s", errHotUnsupported, next.Version, release.ManifestFile, hint)
	case cur.Compat == "":
		return fmt.Errorf("%w: the running release %s declares no \"compat\" key in %s%s", errHotUnsupported, cur.Version, release.ManifestFile, hint)
	case cur.Compat != next.Compat:
		return fmt.Errorf("%w: release %s has compat key %q, the running release %s has %q%s", errHotUnsupported,
			next.Version, next.Compat, cur.Version, cur.Compat, hint)
	case cur.HotMode() != next.HotMode():
		return fmt.Errorf("%w: release %s declares \"hot\": %q, the running release %s %q (the running one decides how it is upgraded)%s",
			errHotUnsupported, next.Version, next.HotMode(), cur.Version, cur.HotMode(), hint)
	}
	return nil
}

// Handover implements swap.Runtime: it orders the process serving inst to
// take release version, in the mode both releases declare, and waits until
// systemd shows the outcome: the new process as the unit's main process
// (control.HotSuccessor), or the same main process back to active
// (control.HotInPlace).
func (r *instances) Handover(ctx context.Context, inst swap.Instance, version string) (swap.Instance, error) {
	rel, err := r.releases.Get(version)
	if err != nil {
		return inst, fmt.Errorf("release %s: %w", version, err)
	}
	argv := r.command(rel)
	job := &hotJob{
		unit: inst.Unit,
		order: control.HotOrder{MessageType: control.TypeHotOrder, ID: swap.IDFromContext(ctx), Release: version, Mode: rel.HotMode(),
			Argv: contract.HandoverArgv(r.self, r.app, argv), Dir: rel.Dir,
			Env: []string{contract.EnvRelease + "=" + version}, Timeout: r.cfg.Ready(), Drain: r.cfg.Drain()},
		report:  make(chan control.HotReport, 1),
		verdict: make(chan control.HotVerdict, 1),
	}
	// systemd may have restarted the unit since the parent recorded it
	// (Restart=on-failure): the process to order, and the one an in-place
	// upgrade keeps, is its main process now.
	if u, err := r.units.Unit(ctx, inst.Unit); err == nil && u.ActiveState == "active" && u.MainPID > 0 {
		inst.PID, inst.InvocationID = u.MainPID, u.InvocationID
	}
	began := time.Now()
	deadline := began.Add(job.order.Timeout)
	if !r.hot.dispatch(ctx, inst.Unit, job) {
		if ctx.Err() != nil {
			return inst, fmt.Errorf("hot upgrade of %s cancelled while waiting for its poll: %w", inst.Unit, ctx.Err())
		}
		return inst, fmt.Errorf("%w: %s (pid %d) does not accept hot upgrades: its app does not poll %s (Go SDK: beamdeploy.HotUpgrades; see docs/protocol.md); use: beamdeploy upgrade %s TARBALL",
			errHotUnsupported, inst.Unit, inst.PID, control.PathHotWait, r.app)
	}
	defer r.hot.done(job.order.ID)
	// Every path answers the instance (verdict is buffered): it waits for
	// the answer before it takes the next order.
	rep, err := awaitReport(ctx, inst, job, deadline.Add(reportGrace))
	if err == nil {
		if job.order.Mode == control.HotInPlace {
			err = r.loadedInPlace(ctx, inst, rep, deadline)
		} else {
			err = r.tookOver(ctx, inst, rep, deadline, began)
		}
	}
	if err != nil {
		job.verdict <- control.HotVerdict{Error: err.Error()}
		return inst, err
	}
	next := inst
	next.PID, next.Release, next.Since = rep.PID, version, time.Now().UTC()
	if err := contract.WriteHotRecord(r.paths, r.app, contract.HotRecord{Unit: inst.Unit, Release: version, Argv: argv, Dir: rel.Dir, InvocationID: inst.InvocationID}); err != nil {
		// The new code runs already (new main process, or loaded in place):
		// there is no going back.
		r.log.Error("could not record the hot-upgraded release; a restart of the unit would run the old one", "unit", inst.Unit, "old_release", inst.Release, "err", err)
	}
	job.verdict <- control.HotVerdict{Proceed: true}
	if job.order.Mode == control.HotSuccessor {
		// Like a blue-green swap, return once the old process is gone: what
		// the caller does next meets the new release only.
		if err := waitExit(ctx, inst.PID, r.cfg.Drain()+5*time.Second); err != nil {
			r.log.Warn("the old process of a hot upgrade is still there", "unit", inst.Unit, "pid", inst.PID, "err", err)
		}
		// A verdict that did not reach the old process (its report's
		// connection dropped) leaves it to take the unit back: then the
		// old release serves, and nothing may say otherwise.
		if u, err := r.units.Unit(ctx, inst.Unit); err == nil && u.MainPID == inst.PID {
			if err := contract.RemoveHotRecord(r.paths, r.app, inst.Unit); err != nil {
				r.log.Error("could not remove the hot upgrade record", "unit", inst.Unit, "err", err)
			}
			return inst, fmt.Errorf("the old process (pid %d) took %s back after the new one was ready (it did not get the verdict); the old release %s keeps serving", inst.PID, inst.Unit, inst.Release)
		}
	}
	return next, nil
}

// awaitReport waits for the instance's report on job until deadline. A
// failure report is an error carrying the app's message.
func awaitReport(ctx context.Context, inst swap.Instance, job *hotJob, deadline time.Time) (control.HotReport, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var rep control.HotReport
	select {
	case rep = <-job.report:
	case <-t.C:
		return rep, fmt.Errorf("%s (pid %d) did not report on the hot upgrade to %s within %s; see: journalctl -u %s",
			inst.Unit, inst.PID, job.order.Release, job.order.Timeout+reportGrace, inst.Unit)
	case <-ctx.Done():
		return rep, fmt.Errorf("hot upgrade of %s: %w", inst.Unit, ctx.Err())
	}
	switch {
	case rep.OK:
		return rep, nil
	case job.order.Mode == control.HotInPlace:
		return rep, fmt.Errorf("%s (pid %d) could not load release %s in place (the old code keeps serving): %s; see: journalctl -u %s",
			inst.Unit, inst.PID, job.order.Release, rep.Error, inst.Unit)
	default:
		return rep, fmt.Errorf("the new process did not take over %s (the old one keeps serving): %s; see: journalctl -u %s", inst.Unit, rep.Error, inst.Unit)
	}
}

// tookOver waits until systemd has made the successor rep.PID the main
// process of inst's unit (its MAINPID= and READY=1), at most until
// deadline, and fails at once when the successor exits.
func (r *instances) tookOver(ctx context.Context, inst swap.Instance, rep control.HotReport, deadline, began time.Time) error {
	if rep.PID <= 0 || rep.PID == inst.PID {
		return fmt.Errorf("%s reported pid %d as its successor: report the pid of the process it started (docs/protocol.md)", inst.Unit, rep.PID)
	}
	proc := watchProcess(rep.PID) // nil: gone already
	defer proc.close()
	exited := false
	err := pollUntil(ctx, max(time.Until(deadline), time.Second), func(ctx context.Context) bool {
		if u, err := r.units.Unit(ctx, inst.Unit); err == nil && u.MainPID == rep.PID {
			return true
		}
		exited = proc.exited()
		return exited
	})
	switch {
	case exited:
		return &StartError{Unit: inst.Unit, Journal: r.journal(ctx, swap.Instance{Unit: inst.Unit}, began),
			Err: fmt.Errorf("the new process (pid %d) exited before it was ready; the old one keeps serving", rep.PID)}
	case ctx.Err() != nil:
		return fmt.Errorf("hot upgrade of %s cancelled while the new process (pid %d) got ready: %w", inst.Unit, rep.PID, ctx.Err())
	case err != nil:
		return fmt.Errorf("the new process (pid %d) was not ready within %s (it must send MAINPID=%d and READY=1 on NOTIFY_SOCKET); the old one keeps serving",
			rep.PID, deadline.Sub(began).Round(time.Millisecond), rep.PID)
	}
	return nil
}

// loadedInPlace checks an in-place hot upgrade reported done: the reporter
// is the unit's main process, which did not change, and the unit is back
// from reloading to active/running, at most until deadline (and at least
// stateWait after the report).
func (r *instances) loadedInPlace(ctx context.Context, inst swap.Instance, rep control.HotReport, deadline time.Time) error {
	if rep.PID != inst.PID {
		return fmt.Errorf("%s reported pid %d, but its main process is pid %d: an in-place hot upgrade keeps the process (report your own pid)", inst.Unit, rep.PID, inst.PID)
	}
	var u units.Unit
	var err error
	perr := pollUntil(ctx, max(time.Until(deadline), stateWait), func(ctx context.Context) bool {
		u, err = r.units.Unit(ctx, inst.Unit)
		return err != nil || u.MainPID != inst.PID || u.InvocationID != inst.InvocationID || (u.ActiveState == "active" && u.SubState == "running")
	})
	switch {
	case err != nil:
		return fmt.Errorf("check %s after its in-place hot upgrade: %w", inst.Unit, err)
	case u.InvocationID != inst.InvocationID:
		return fmt.Errorf("%s was restarted during its in-place hot upgrade (state %s/%s); see: journalctl -u %s", inst.Unit, u.ActiveState, u.SubState, inst.Unit)
	case u.MainPID != inst.PID:
		return fmt.Errorf("the main process of %s changed from pid %d to %d during its in-place hot upgrade; see: journalctl -u %s", inst.Unit, inst.PID, u.MainPID, inst.Unit)
	case perr != nil:
		return fmt.Errorf("%s is still %s/%s after its in-place hot upgrade: send READY=1 on NOTIFY_SOCKET after RELOADING=1, also when the new code failed to load",
			inst.Unit, u.ActiveState, u.SubState)
	}
	return nil
}

// waitExit waits until process pid is gone, at most within.
func waitExit(ctx context.Context, pid int, within time.Duration) error {
	proc := watchProcess(pid) // nil: gone already
	defer proc.close()
	if err := pollUntil(ctx, within, func(context.Context) bool { return proc.exited() }); err != nil {
		return fmt.Errorf("pid %d did not exit: %w", pid, err)
	}
	return nil
}
