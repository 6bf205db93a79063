package parent

import (
	"context"
	"slices"

	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// reconcile adopts the instance that is serving after a parent restart,
// or starts the last active release when none is (e.g. after a reboot).
//
// Of several running instances (the parent died mid-swap) it keeps the one
// its state file names as active, else the newest, and stops the others
// only after deciding which one serves.
func (d *daemon) reconcile(ctx context.Context) {
	app := d.opts.App
	st := d.state.get()
	running, err := d.units.List(ctx, app+"@*.service")
	if err != nil {
		d.log.Error("could not list instance units; not adopting any", "err", err)
		return
	}
	running = slices.DeleteFunc(running, func(u units.Unit) bool { return !u.Running() })
	keep := pickServing(running, st.Active)
	if keep == nil {
		d.machine.Adopt(nil, st.LastSwap)
		if st.Active != nil {
			d.log.Info("no instance running; starting the last active release", "release", st.Active.Release)
			_, err := d.machine.Swap(ctx, swap.Request{Release: st.Active.Release}, nil)
			d.srv.swapEnded.notify()
			if err != nil {
				d.log.Error("could not start the last active release", "release", st.Active.Release, "err", err)
			}
		}
		return
	}
	inst := d.adopted(*keep, st.Active)
	d.machine.Adopt(&inst, st.LastSwap)
	d.log.Info("adopted running instance", "unit", inst.Unit, "release", inst.Release, "pid", inst.PID)
	if err := d.state.save(swap.State{Active: &inst, Last: st.LastSwap}); err != nil {
		d.log.Warn("could not record the adopted instance", "err", err)
	}
	for _, u := range running {
		if u.Name == keep.Name {
			continue
		}
		d.log.Info("stopping leftover instance from an interrupted swap", "unit", u.Name)
		if _, err := d.units.Stop(ctx, u.Name); err != nil {
			d.log.Error("could not stop leftover instance", "unit", u.Name, "err", err)
		}
	}
}

// pickServing chooses which running unit serves: the recorded active one
// (same unit and invocation), else the most recently started.
func pickServing(running []units.Unit, active *swap.Instance) *units.Unit {
	var newest *units.Unit
	for i := range running {
		u := &running[i]
		if active != nil && u.Name == active.Unit && (active.InvocationID == "" || u.InvocationID == active.InvocationID) {
			return u
		}
		if newest == nil || u.Since.After(newest.Since) {
			newest = u
		}
	}
	return newest
}

func (d *daemon) adopted(u units.Unit, recorded *swap.Instance) swap.Instance {
	c, _ := colorOf(d.opts.App, u.Name) // List matched APP@*.service; a foreign colour adopts as ""
	inst := swap.Instance{Unit: u.Name, Color: c, Release: releaseOf(u), PID: u.MainPID, InvocationID: u.InvocationID, Since: u.Since}
	if inst.Release == "" && recorded != nil {
		inst.Release = recorded.Release
	}
	return inst
}
