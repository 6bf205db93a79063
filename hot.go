package beamdeploy

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// EnvReadyFD names the pipe a process started by a hot upgrade writes to
// once it is ready; [Ready] does it.
const EnvReadyFD = "BEAMDEPLOY_READY_FD"

// HotUpgrades registers the process for in-place hot upgrades
// (beamdeploy hot-upgrade APP TARBALL) and returns a context derived from
// ctx that is also done once a new process has taken over the unit. Pass
// that context to [Serve]: the old process then drains and exits, like on
// SIGTERM.
//
// On an order from the parent, the process starts the new release's
// binary in the same unit with the same listening sockets (LISTEN_FDS)
// and a readiness pipe; the new process's [Ready] makes it the unit's main
// process (MAINPID=) and signals the pipe. A new process that exits or is
// not ready in time is killed and this process goes on serving. Outside
// beamdeploy, HotUpgrades returns ctx and does nothing else.
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
			pid, err := startSuccessor(ctx, order)
			rep := control.HotReport{ID: order.ID, OK: err == nil, PID: pid}
			if err != nil {
				rep.Error = err.Error()
			}
			v, rerr := c.HotReport(ctx, rep)
			switch {
			case err != nil:
				continue // the successor is gone; go on serving
			case rerr != nil || v.Proceed:
				// The successor is ready and told systemd it is the main
				// process; without a verdict, trust that.
				handedOver.Store(true)
				cancel()
				return
			default:
				// The successor already told systemd it is the main process:
				// take that back before it goes, or the unit goes with it.
				reclaimMain()
				killSuccessor(pid)
			}
		}
	}()
	return ctx
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

// readyFD returns the readiness pipe of a process started by a hot
// upgrade, and forgets it, or -1.
func readyFD() int {
	v, ok := os.LookupEnv(EnvReadyFD)
	if !ok {
		return -1
	}
	_ = os.Unsetenv(EnvReadyFD) // children must not write to it
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return -1
	}
	return fd
}

// errSuccessor wraps why a successor did not take over.
var errSuccessor = errors.New("new process did not take over")
