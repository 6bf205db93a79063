package swap

import (
	"context"
	"errors"
	"fmt"
)

// awaitRestore waits, when Options.AwaitRestore is set, until Restore has
// run: a swap asked for while a restarted parent is still deciding what
// its running instances are would start a colour that Restore may then
// stop as a leftover, or be running when Restore adopts.
func (m *Machine) awaitRestore(ctx context.Context) error {
	select {
	case <-m.restored:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: the parent is still adopting its running instances: %w", ErrSwapInProgress, ctx.Err())
	}
}

// Restore is what a parent does at start: it lists the instances running
// (list), and Converge decides from them and saved, the state the last
// parent saved; the kept instance becomes the active one (Adopt), then
// adopted is called with the plan (the parent can tell its instances who
// they are from then on), the other running instances are stopped
// (Runtime.Stop), and when none runs the last active release is started
// by a swap. Swaps asked for meanwhile wait for Restore to end
// (Options.AwaitRestore); it must be called once.
//
// When list fails nothing is adopted, stopped or started, and the error
// says so; the machine keeps saved's deploy record and last swap (the next
// save would otherwise write the state file without them), and swaps are
// let through anyway. The other errors (saving the
// state, stopping a leftover, starting the last release) are joined; Restore
// goes on after each.
func (m *Machine) Restore(ctx context.Context, saved State, list func(context.Context) ([]Instance, error), adopted func(Plan)) (Plan, error) {
	defer m.restoredOnce.Do(func() { close(m.restored) })
	running, err := list(ctx)
	if err != nil {
		m.mu.Lock()
		m.record, m.last = saved.Record, cloneResult(saved.Last)
		m.mu.Unlock()
		return Plan{}, fmt.Errorf("list the running instances, not adopting any: %w", err)
	}
	plan := Converge(saved, running)
	var errs []error
	if err := m.Adopt(saved, plan); err != nil {
		errs = append(errs, fmt.Errorf("record the adopted instance: %w", err))
	}
	if adopted != nil {
		adopted(plan)
	}
	for _, u := range plan.Stop {
		if _, err := m.rt.Stop(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("stop leftover instance %s: %w", u.Unit, err))
		}
	}
	if plan.Start != "" {
		if _, err := m.run(ctx, KindBlueGreen, Request{Release: plan.Start}, nil); err != nil {
			errs = append(errs, fmt.Errorf("start the last active release %s: %w", plan.Start, err))
		}
	}
	return plan, errors.Join(errs...)
}
