package beamdeploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

// EnvSuccessor ("BEAMDEPLOY_SUCCESSOR") is set (to "1") in a process
// started by a hot upgrade until it is ready: [Ready] then makes it the
// unit's main process (MAINPID=) and unsets it. See docs/protocol.md.
const EnvSuccessor = contract.EnvSuccessor

// HotUpgrades registers the process for hot upgrades (beamdeploy
// hot-upgrade APP TARBALL) in the successor mode of docs/protocol.md and
// returns a context derived from ctx that is also done once a new process
// has taken over the unit. Pass that context to [Serve]: the old process
// then drains and exits, like on SIGTERM.
//
// On an order from the parent, the process starts the new release's
// command in the same unit with the same listening sockets (LISTEN_FDS)
// and reports its pid; the new process's [Ready] makes it the unit's main
// process (MAINPID= and READY=1), and the parent tells this process to go
// once systemd shows it. A new process that exits or is not ready in time
// is stopped, and this process takes the unit back and goes on serving.
// Orders for the in-place mode (a release declaring "hot": "in_place") are
// refused: a Go binary cannot load new code. Outside beamdeploy,
// HotUpgrades returns ctx and does nothing else.
func HotUpgrades(ctx context.Context) context.Context {
	c, err := parent()
	if err != nil {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer c.Close()
		unit := os.Getenv(EnvUnit)
		for ctx.Err() == nil {
			order, err := c.HotWait(ctx, unit)
			if err != nil {
				sleep(ctx, time.Second) // the parent restarts; wait for it
				continue
			}
			if handOver(ctx, c, order) {
				handedOver.Store(true)
				cancel()
				return
			}
		}
	}()
	return ctx
}

// handOver carries out order and reports; true once the successor has
// taken over the unit.
func handOver(ctx context.Context, c *control.Client, order control.HotOrder) bool {
	if order.Mode != "" && order.Mode != control.HotSuccessor {
		_, _ = c.HotReport(ctx, control.HotReport{ID: order.ID, Error: fmt.Sprintf( // nothing else to do: the parent gives up
			"%v: the Go SDK does %q hot upgrades only, not %q; declare \"hot\": %q (or nothing) in beamdeploy.json",
			errSuccessor, control.HotSuccessor, order.Mode, control.HotSuccessor)})
		return false
	}
	s, err := startSuccessor(order)
	if err != nil {
		_, _ = c.HotReport(ctx, control.HotReport{ID: order.ID, Error: err.Error()}) // the parent gives up either way
		return false
	}
	v, err := c.HotReport(ctx, control.HotReport{ID: order.ID, OK: true, PID: s.pid})
	if err == nil && v.Proceed {
		return true
	}
	// Refused, or no verdict (the parent went away): the successor may
	// have told systemd it is the main process already. Take the unit
	// back before it goes, or the unit goes with it.
	s.stop(reclaimMain, order.Drain)
	return false
}

// reclaimMain makes this process the unit's main process again (MAINPID=),
// undoing a successor's claim.
func reclaimMain() {
	_ = notify("main", "MAINPID="+strconv.Itoa(os.Getpid())) // best effort: without NOTIFY_SOCKET there is no unit
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errSuccessor wraps why a successor did not take over.
var errSuccessor = errors.New("new process did not take over")
