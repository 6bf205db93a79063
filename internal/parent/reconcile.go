package parent

import (
	"context"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// reconcile converges after a parent (re)start (swap.Machine.Restore):
// it matches the instance units systemd reports running against the saved
// state and intent record, adopts the one that serves, then stops the
// others, or starts the last active release when none runs (e.g. after a
// reboot). Swaps asked for meanwhile wait for it.
func (d *daemon) reconcile(ctx context.Context) {
	// From the adoption on, the machine's instances are the ones the parent
	// tracks; until then instances asking who they are wait.
	defer d.auth.adopted()
	st := d.state.get()
	_, err := d.machine.Restore(ctx, st.State, d.runningRetried, func(plan swap.Plan) {
		d.auth.adopted()
		if in := plan.Interrupted; in != nil {
			d.log.Warn("found a swap interrupted by a parent restart", "swap", in.ID, "phase", st.Swap.Phase.String(),
				"release", in.Release, "finished", in.OK, "outcome", in.Error+in.Warning)
		}
		if k := plan.Keep; k != nil {
			d.log.Info("adopted running instance", "unit", k.Unit, "release", k.Release, "pid", k.PID, "invocation", k.InvocationID)
		}
		for _, u := range plan.Stop {
			d.log.Info("stopping leftover instance from an interrupted swap", "unit", u.Unit, "release", u.Release)
		}
		if plan.Start != "" {
			d.log.Info("no instance running; starting the last active release", "release", plan.Start)
		}
	})
	if err != nil {
		d.log.Error("could not converge the running instances", "err", err)
	}
}

// runningRetried lists the running instances (running), trying again
// until it can or ctx ends: without the list nothing can be adopted, and a
// swap that went ahead might start the colour that runs already. Swaps
// wait meanwhile (swap.Machine.Restore); each failure is logged.
func (d *daemon) runningRetried(ctx context.Context) ([]swap.Instance, error) {
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		list, err := d.running(ctx)
		if err == nil || ctx.Err() != nil {
			return list, err
		}
		d.log.Error("could not list the running instances; trying again (swaps wait)", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// running lists the app's instance units that systemd reports running.
func (d *daemon) running(ctx context.Context) ([]swap.Instance, error) {
	list, err := d.units.List(ctx, d.opts.App+"@*.service")
	if err != nil {
		return nil, err
	}
	var out []swap.Instance
	for _, u := range list {
		if u.Running() {
			out = append(out, d.instanceOf(u))
		}
	}
	return out, nil
}

// instanceOf describes a running instance unit as the swap machine does.
func (d *daemon) instanceOf(u units.Unit) swap.Instance {
	c, _ := colorOf(d.opts.App, u.Name) // List matched APP@*.service; a foreign colour adopts as ""
	rel := releaseOf(u)
	if h, ok, err := contract.ReadHotRecord(d.opts.Paths, d.opts.App, u.Name); err != nil {
		d.log.Warn("could not read the hot upgrade record", "unit", u.Name, "err", err)
	} else if ok {
		rel = h.Release // hot-upgraded since systemd started it
	}
	return swap.Instance{Unit: u.Name, Color: c, Release: rel, PID: u.MainPID, InvocationID: u.InvocationID, Restarts: u.Restarts, Since: u.Since}
}
