package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// swapSignalsHelp is the part of every swap command's help that says what
// ends a swap and what does not.
const swapSignalsHelp = "Ctrl-C (SIGINT), SIGTERM or --timeout before the cutover roll the swap back,\n" +
	"and so does the parent when this command's connection goes away (it was\n" +
	"killed); after the cutover the swap completes. A hangup (SIGHUP: the ssh\n" +
	"session or terminal closed) is ignored and the swap goes on, as do failed\n" +
	"writes to a terminal that is gone. With --detach the command returns once\n" +
	"the swap is under way (the upload read and staged), printing its id, and the\n" +
	"parent runs it to its end on its own; follow it with: beamdeploy wait APP ID.\n"

func detachFlag() cli.Flag {
	return &cli.BoolFlag{Name: "detach", Usage: "return once the swap is under way (the upload read and staged), printing its id; the parent runs it to its end (follow it with: beamdeploy wait APP ID)"}
}

// surviveHangup keeps a swap command running when its terminal goes away:
// the parent rolls back a swap whose client disappears before the
// cutover. Writes to a closed pipe then fail (EPIPE) instead of killing
// the process; a terminal that hung up fails them with EIO.
func surviveHangup() {
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
}

func waitCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "follow a swap of APP (the running one, or SWAP) to its end",
		UsageText: "beamdeploy wait APP [SWAP]",
		Description: "Prints the swap's progress and result as the command that started it does and\n" +
			"exits with the same status (0 done, 3 rolled back, ...). Without SWAP it follows\n" +
			"the running swap, or else reports the last one. A swap that already ended\n" +
			"reports its recorded result at once; an unknown SWAP is an error (exit 1).\n" +
			"Ctrl-C and --timeout stop following; the swap goes on. For a swap that ended\n" +
			"before the parent last restarted only its result is known, and a failed one\n" +
			"exits 3. Deployers and the app's own instances may wait.\n\n" +
			"EXAMPLES:\n   beamdeploy upgrade hello ./hello-1.2.3.tar.gz --detach\n" +
			"   beamdeploy wait hello\n" +
			"   id=$(beamdeploy --json upgrade hello ./hello-1.2.3.tar.gz --detach | jq -r 'select(.message_type==\"detached\").swap')\n" +
			"   beamdeploy wait hello \"$id\"\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Usage: "stop following after this long (the swap goes on); 0 means no limit", EnvVars: []string{envSwapTimeout}},
		},
		Action: action(g, parseWait, runWait),
	}
}

type waitOptions struct {
	appOptions
	swap string // SWAP; "": the running swap, else the last
}

func parseWait(c *cli.Context) (waitOptions, error) {
	a, err := parseApp(c, 1)
	return waitOptions{appOptions: a, swap: c.Args().Get(1)}, err
}

func runWait(ctx context.Context, g *globals, o waitOptions) error {
	return g.call(ctx, o.appOptions, func(ctx context.Context, cl *control.Client) error {
		res, err := cl.Wait(ctx, o.swap, g.progress())
		return g.printResult(o.app, res, err)
	})
}

// printDetached tells how to follow a swap that runs on its own.
func (g *globals) printDetached(app string, res control.Result) error {
	v := control.Detached{MessageType: control.TypeDetached, App: app, Swap: res.ID, Release: res.Release}
	return g.print(v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s: swap %s to release %s goes on without this command; follow it with: beamdeploy wait %s %s\n", app, res.ID, res.Release, app, res.ID)
		return err
	})
}
