package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func upgradeCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "upgrade",
		Usage:     "stage a release tarball and swap APP to it with zero downtime",
		UsageText: "beamdeploy upgrade APP TARBALL|- [--version V] [--sha256 HEX] [--force] [--timeout D] [-m TEXT] [--detach]",
		Description: "TARBALL is NAME-VERSION.tar.gz (or NAME_VERSION_OS_ARCH.tar.gz). It is unpacked\n" +
			"under /var/lib/beamdeploy/APP/releases/VERSION, the idle colour is started with it,\n" +
			"and once it sent READY=1 the old colour is drained and stopped. Returns when the\n" +
			"old colour is gone. If the new release fails to start, it is stopped and the old\n" +
			"one keeps serving (exit 3).\n" + swapSignalsHelp +
			"The sha256 is checked against --sha256, else TARBALL.sha256 if it exists.\n" +
			"A TARBALL whose name carries no version takes --version; - reads it from stdin.\n\n" +
			auditHelp +
			"EXAMPLES:\n   beamdeploy upgrade hello ./hello-1.2.3.tar.gz\n" +
			"   beamdeploy upgrade hello dist/app.tar.gz --version 1.2.3\n" +
			"   ssh web1 beamdeploy upgrade hello - --version 1.2.3 < hello.tgz\n" +
			"   beamdeploy upgrade hello ./hello-1.2.4.tar.gz -m \"fix login (TICKET-12)\"\n" +
			"   beamdeploy upgrade hello ./hello-1.2.3.tar.gz --detach && beamdeploy wait hello\n\n" + exitStatusHelp,
		Flags:  append(tarballFlags(), messageFlag(), detachFlag()),
		Action: action(g, parseUpload, runUpgrade),
	}
}

func hotUpgradeCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "hot-upgrade",
		Usage:     "stage a release tarball and upgrade APP's running instance to it in place (successor or in-place)",
		UsageText: "beamdeploy hot-upgrade APP TARBALL|- [--version V] [--sha256 HEX] [--force] [--timeout D] [-m TEXT] [--detach]",
		Description: "No second instance: the active instance is upgraded inside its unit (same unit\n" +
			"name, cgroup and resource limits), in the mode the running release declares in\n" +
			"beamdeploy.json (\"hot\"): successor (default): its process starts the new release\n" +
			"with the same listening sockets; once the new process sent MAINPID= and READY=1\n" +
			"it is the unit's main process and the old one drains and exits (Go SDK:\n" +
			"beamdeploy.HotUpgrades). in_place: the process loads the new release's code\n" +
			"itself (RELOADING=1 ... READY=1) and keeps its pid. Needs an app that polls for\n" +
			"hot-upgrade orders (docs/protocol.md) and both releases declaring the same\n" +
			"\"compat\" key and \"hot\" mode; anything else is refused before the running\n" +
			"process is touched (use upgrade instead). If the new process exits or is not\n" +
			"ready within ready_timeout the old process takes the unit back and stops it (the\n" +
			"SDK does; docs/protocol.md) and keeps serving (exit 3); if the new code does not\n" +
			"load in place, the app's message is shown and the old code keeps serving (exit 3).\n" +
			"Returns once the old process is gone (successor) or the code is loaded. A later\n" +
			"restart of the unit runs the hot-upgraded release.\n" + swapSignalsHelp + "\n" +
			auditHelp +
			"EXAMPLES:\n   beamdeploy hot-upgrade hello ./hello-1.2.4.tar.gz\n\n" + exitStatusHelp,
		Flags:  append(tarballFlags(), messageFlag(), detachFlag()),
		Action: action(g, parseUpload, runUpgrade),
	}
}

func reloadCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "reload",
		Usage:     "swap APP to the newest staged release not yet deployed, or restart it with zero downtime",
		UsageText: "beamdeploy reload APP [-m TEXT] [--detach]",
		Description: "This is what `systemctl reload APP` runs. With no new release staged it swaps\n" +
			"into a fresh instance of the active release.\n" + swapSignalsHelp + "\n" +
			auditHelp +
			"EXAMPLES:\n   beamdeploy stage hello ./hello-1.2.3.tar.gz && systemctl reload hello\n   beamdeploy reload hello   # restart without downtime\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			swapTimeoutFlag(), messageFlag(), detachFlag(),
		},
		Action: action(g, parseReload, runReload),
	}
}

func parseReload(c *cli.Context) (swapOptions, error) { return parseSwap(c, 0) }

func runReload(ctx context.Context, g *globals, o swapOptions) error {
	return g.swap(ctx, o, func(ctx context.Context, cl *control.Client) (control.Result, error) {
		return cl.Reload(ctx, control.SwapOptions{Detach: o.detach}, g.progress())
	})
}

// runUpgrade uploads o.tarball and swaps to it: blue-green (upgrade), or
// in its unit (hot-upgrade).
func runUpgrade(ctx context.Context, g *globals, o uploadOptions) error {
	f, opts, err := g.openTarball(o)
	if err != nil {
		return err
	}
	defer f.Close()
	op := (*control.Client).Upgrade
	if o.hot {
		op = (*control.Client).HotUpgrade
	}
	return g.swap(ctx, o.swapOptions, func(ctx context.Context, cl *control.Client) (control.Result, error) {
		return op(cl, ctx, o.name, f, opts, g.progress())
	})
}

// Timeouts come in two kinds with their own environment variables, so that
// making quick calls snappy never makes a swap give up (and roll back).
const (
	envCallTimeout = "BEAMDEPLOY_CALL_TIMEOUT" // status, releases, handoff
	envSwapTimeout = "BEAMDEPLOY_SWAP_TIMEOUT" // upgrade, hot-upgrade, reload, rollback, stage
)

// callTimeoutFlag is --timeout of a quick call (default def).
func callTimeoutFlag(def time.Duration) cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Value: def, Usage: "give up after this long", EnvVars: []string{envCallTimeout}}
}

// swapTimeoutFlag is --timeout of a swap or an upload (default: none).
func swapTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Usage: "give up after this long (a swap not past its cutover is rolled back); 0 means no limit", EnvVars: []string{envSwapTimeout}}
}

// progress prints swap steps: JSON lines on stdout with --json; on a
// terminal, staging progress updates one line in place; otherwise plain
// lines on stderr.
func (g *globals) progress() func(control.Progress) {
	enc := json.NewEncoder(g.stdout)
	tty := isTerminal(g.stderr)
	pending := false
	return func(p control.Progress) {
		if g.json {
			_ = enc.Encode(p) // stdout gone: the result is lost anyway
			return
		}
		line := fmt.Sprintf("[%6.2fs] %s", p.Elapsed.Seconds(), p.Message)
		if tty && strings.HasPrefix(p.Message, "staging: ") {
			fmt.Fprintf(g.stderr, "\r\033[K%s", line)
			pending = true
			return
		}
		if pending {
			fmt.Fprint(g.stderr, "\r\033[K")
			pending = false
		}
		fmt.Fprintln(g.stderr, line)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (g *globals) printResult(app string, res control.Result, err error) error {
	if err != nil {
		return err
	}
	if res.MessageType == control.TypeDetached {
		return g.printDetached(app, res)
	}
	return g.print(res, func(w io.Writer) error { printSwap(w, app, res.Result); return nil })
}

func printSwap(w io.Writer, app string, r swap.Result) {
	to := "-"
	if r.To != nil {
		to = r.To.Unit
	}
	switch {
	case r.Kind == swap.KindHot && r.From != nil && r.To != nil:
		fmt.Fprintf(w, "%s hot-upgraded to %s in %s: pid %d replaced pid %d; handover %s (until the old process exited), total %s\n",
			app, r.Release, to, r.To.PID, r.From.PID, ms(r.Ready), ms(r.Total))
	case r.From == nil:
		fmt.Fprintf(w, "%s %s is serving on %s (ready in %s)\n", app, r.Release, to, ms(r.Ready))
	default:
		killed := ""
		if r.OldKilled {
			killed = ", killed after the drain timeout"
		}
		fmt.Fprintf(w, "%s swapped to %s: %s ready in %s, %s stopped in %s%s; total %s\n",
			app, r.Release, to, ms(r.Ready), r.From.Unit, ms(r.Stop), killed, ms(r.Total))
	}
	if r.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", r.Warning)
	}
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
