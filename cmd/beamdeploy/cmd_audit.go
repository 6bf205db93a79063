package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// messageFlag is --message of the swap commands. It has no environment
// variable on purpose: an exported message would label every later swap.
func messageFlag() cli.Flag {
	return &cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "a note recorded with the swap (beamdeploy history): one line, at most 1024 bytes"}
}

// auditHelp is the paragraph of a swap command's help about audit and
// locks (before its EXAMPLES).
const auditHelp = "The swap is recorded with who asked (user and uid), --message and the release's\n" +
	"sha256: beamdeploy history APP. A locked app (beamdeploy lock) refuses it before\n" +
	"anything is staged or started (exit 7).\n\n"

func historyCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "list APP's swaps, newest first: who asked, why, what ran and how it went",
		UsageText: "beamdeploy history APP [--json] [-n N]",
		Description: "Each swap (upgrade, hot-upgrade, reload, rollback; also one the parent finished or\n" +
			"aborted after a restart) with its time, command, kind (blue-green or hot),\n" +
			"release, outcome, the user and uid who asked (from the kernel's credentials of\n" +
			"the connection), the release's sha256 (as `beamdeploy releases` shows it; the\n" +
			"tarball's) and the --message given. The parent keeps the last 50. With --json:\n" +
			"{\"message_type\":\"history\",\"app\":APP,\"swaps\":[...]}, each swap as in\n" +
			"`status --json` (user, uid, message, sha256, command among its fields).\n\n" +
			"EXAMPLES:\n   beamdeploy history hello\n   beamdeploy --json history hello -n 1 | jq -r '.swaps[0].user'\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 20, Usage: "show the N newest swaps (0: all)"},
			callTimeoutFlag(5 * time.Second),
		},
		Action: action(g, parseHistory, runHistory),
	}
}

type historyOptions struct {
	appOptions
	lines int // -n: the newest N swaps; 0: all
}

func parseHistory(c *cli.Context) (historyOptions, error) {
	a, err := parseApp(c, 0)
	if err != nil {
		return historyOptions{}, err
	}
	if n := c.Int("lines"); n < 0 {
		return historyOptions{}, usageErrorf("-n %d: give a number of swaps, or 0 for all", n)
	}
	return historyOptions{appOptions: a, lines: c.Int("lines")}, nil
}

func runHistory(ctx context.Context, g *globals, o historyOptions) error {
	return g.call(ctx, o.appOptions, func(ctx context.Context, cl *control.Client) error {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		swaps := newestFirst(st.History, o.lines)
		v := map[string]any{"message_type": control.TypeHistory, "app": o.app, "swaps": swaps}
		return g.print(v, func(w io.Writer) error { return printHistory(w, swaps) })
	})
}

// newestFirst returns the n newest of h (recorded oldest first); all for
// n == 0.
func newestFirst(h []swap.Result, n int) []swap.Result {
	out := slices.Clone(h)
	slices.Reverse(out)
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	if out == nil {
		out = []swap.Result{}
	}
	return out
}

func printHistory(w io.Writer, swaps []swap.Result) error {
	if len(swaps) == 0 {
		_, err := fmt.Fprintln(w, "no swaps yet")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMAND\tKIND\tRELEASE\tOUTCOME\tUSER\tSHA256\tMESSAGE")
	for _, r := range swaps {
		outcome := "ok"
		if !r.OK {
			outcome = "failed"
		}
		user := "-"
		if r.UID != nil {
			user = control.Who(r.User, *r.UID)
		}
		sum := r.SHA256
		if len(sum) > 12 {
			sum = sum[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Started.Local().Format(time.DateTime), orDash(r.Command), kindOf(r),
			orDash(r.Release), outcome, user, orDash(sum), orDash(r.Message))
	}
	return tw.Flush()
}

func lockCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "lock",
		Usage:     "refuse every swap of APP until `beamdeploy unlock APP`, saying why",
		UsageText: "beamdeploy lock APP -m TEXT",
		Description: "While APP is locked, upgrade, hot-upgrade, reload (also `systemctl reload APP`),\n" +
			"rollback and swaps are refused before anything is staged or started, with the\n" +
			"lock's message, who locked it and since when (exit 7). stage still works. The\n" +
			"lock is kept in the parent's state: it survives `systemctl restart APP`. A swap\n" +
			"already running when the lock is taken is not stopped (the answer names it).\n" +
			"Locking again replaces the message. Root and members of group beamdeploy only.\n" +
			"With --json: {\"message_type\":\"lock\",\"app\",\"lock\":{\"message\",\"user\",\"uid\",\"since\"},\"swap\"}.\n\n" +
			"EXAMPLES:\n   beamdeploy lock hello -m \"database migration until 14:00 (alice)\"\n   beamdeploy unlock hello\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "why the app is locked (required): one line, at most 1024 bytes"},
			callTimeoutFlag(10 * time.Second),
		},
		Action: action(g, parseLock, runLock),
	}
}

type lockOptions struct {
	appOptions
	message string // -m: why (required)
}

func parseLock(c *cli.Context) (lockOptions, error) {
	a, err := parseApp(c, 0)
	if err != nil {
		return lockOptions{}, err
	}
	o := lockOptions{appOptions: a, message: c.String("message")}
	if o.message == "" {
		return lockOptions{}, usageErrorf("a lock needs a message saying why: beamdeploy lock %s -m TEXT", o.app)
	}
	if err := control.CheckMessage(o.message); err != nil {
		return lockOptions{}, usageErrorf("-m: %w", err)
	}
	return o, nil
}

func runLock(ctx context.Context, g *globals, o lockOptions) error {
	return g.lockCall(ctx, o.appOptions, func(cl *control.Client, ctx context.Context) (control.LockState, error) {
		return cl.Lock(ctx, o.message)
	})
}

func unlockCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "lift APP's deploy lock (beamdeploy lock); an unlocked app stays unlocked",
		UsageText: "beamdeploy unlock APP",
		Description: "Swaps are allowed again. Unlocking an app that is not locked is not an error.\n" +
			"Root and members of group beamdeploy only.\n\n" +
			"EXAMPLES:\n   beamdeploy unlock hello && beamdeploy upgrade hello ./hello-1.2.3.tar.gz\n\n" + exitStatusHelp,
		Flags:  []cli.Flag{callTimeoutFlag(10 * time.Second)},
		Action: action(g, parseOneApp, runUnlock),
	}
}

func runUnlock(ctx context.Context, g *globals, o appOptions) error {
	return g.lockCall(ctx, o, (*control.Client).Unlock)
}

// lockCall runs op (lock or unlock) against o.app's parent and prints the
// lock as it is afterwards.
func (g *globals) lockCall(ctx context.Context, o appOptions, op func(*control.Client, context.Context) (control.LockState, error)) error {
	return g.call(ctx, o, func(ctx context.Context, cl *control.Client) error {
		ls, err := op(cl, ctx)
		if err != nil {
			return err
		}
		return g.print(ls, func(w io.Writer) error { printLock(w, o.app, ls); return nil })
	})
}

func printLock(w io.Writer, app string, ls control.LockState) {
	if ls.Lock == nil {
		fmt.Fprintf(w, "%s is unlocked\n", app)
		return
	}
	fmt.Fprintf(w, "%s is locked by %s: %s; swaps are refused until: beamdeploy unlock %s\n", app, ls.Lock.Who(), ls.Lock.Message, app)
	if ls.Swap != "" {
		fmt.Fprintf(w, "swap %s was already running; the lock does not stop it (follow it with: beamdeploy status %s)\n", ls.Swap, app)
	}
}

// lockLine describes a lock for status.
func lockLine(app string, l *control.Lock) string {
	return fmt.Sprintf("yes, by %s since %s: %s (beamdeploy unlock %s)", l.Who(), l.Since.Local().Format(time.DateTime), l.Message, app)
}
