package parent

import (
	"context"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// reconcile converges after a parent (re)start: it matches the instance
// units systemd reports running against the saved state and intent record
// (swap.Converge), adopts the one that serves, then stops the others, or
// starts the last active release when none runs (e.g. after a reboot).
func (d *daemon) reconcile(ctx context.Context) {
	app := d.opts.App
	st := d.state.get()
	// From Adopt on, the machine's instances are the ones the parent
	// tracks; until then instances asking who they are wait.
	defer d.auth.adopted()
	list, err := d.units.List(ctx, app+"@*.service")
	if err != nil {
		d.log.Error("could not list instance units; not adopting any", "err", err)
		return
	}
	var running []swap.Instance
	for _, u := range list {
		if u.Running() {
			running = append(running, d.instanceOf(u))
		}
	}
	plan := swap.Converge(st.State, running)
	if in := plan.Interrupted; in != nil {
		d.log.Warn("found a swap interrupted by a parent restart", "swap", in.ID, "phase", st.Swap.Phase.String(),
			"release", in.Release, "finished", in.OK, "outcome", in.Error+in.Warning)
	}
	err = d.machine.Adopt(st.State, plan)
	d.auth.adopted()
	if plan.Keep != nil {
		d.log.Info("adopted running instance", "unit", plan.Keep.Unit, "release", plan.Keep.Release,
			"pid", plan.Keep.PID, "invocation", plan.Keep.InvocationID)
	}
	if err != nil {
		d.log.Warn("could not record the adopted instance", "err", err)
	}
	for _, u := range plan.Stop {
		d.log.Info("stopping leftover instance from an interrupted swap", "unit", u.Unit, "release", u.Release)
		if _, err := d.units.Stop(ctx, u.Unit); err != nil {
			d.log.Error("could not stop leftover instance", "unit", u.Unit, "err", err)
		}
	}
	if plan.Start != "" {
		d.log.Info("no instance running; starting the last active release", "release", plan.Start)
		if _, err := d.machine.Swap(ctx, swap.Request{Release: plan.Start}, nil); err != nil {
			d.log.Error("could not start the last active release", "release", plan.Start, "err", err)
		}
	}
}

// instanceOf describes a running instance unit as the swap machine does.
func (d *daemon) instanceOf(u units.Unit) swap.Instance {
	c, _ := colorOf(d.opts.App, u.Name) // List matched APP@*.service; a foreign colour adopts as ""
	rel := releaseOf(u)
	if h, ok, err := ReadHotRecord(d.opts.Paths, d.opts.App, u.Name); err != nil {
		d.log.Warn("could not read the hot upgrade record", "unit", u.Name, "err", err)
	} else if ok {
		rel = h.Release // hot-upgraded since systemd started it
	}
	return swap.Instance{Unit: u.Name, Color: c, Release: rel, PID: u.MainPID, InvocationID: u.InvocationID, Restarts: u.Restarts, Since: u.Since}
}
