package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
)

func statusCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show APP's active instance, release and last swap",
		UsageText: "beamdeploy status [APP] [--json]",
		Description: "Answers within a second, also during a swap (upgrading: yes). Without APP:\n" +
			"every app, as `beamdeploy list`.\n\n" +
			"EXAMPLES:\n   beamdeploy status hello\n   beamdeploy --json status hello | jq .active.release\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			callTimeoutFlag(5 * time.Second),
		},
		Action: action(g, parseStatus, runStatus),
	}
}

// parseStatus reads [APP]: without it, status is list.
func parseStatus(c *cli.Context) (appOptions, error) {
	if !c.Args().Present() {
		return appOptions{timeout: c.Duration("timeout")}, nil
	}
	return parseApp(c, 0)
}

func runStatus(ctx context.Context, g *globals, o appOptions) error {
	if o.app == "" {
		return runList(ctx, g, listOptions{timeout: o.timeout}) // every app
	}
	return g.call(ctx, o, func(ctx context.Context, cl *control.Client) error {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		return g.print(st, func(w io.Writer) error { printStatus(w, st); return nil })
	})
}

func printStatus(w io.Writer, st control.Status) {
	fmt.Fprintf(w, "app:        %s (parent pid %d, systemd %d, listeners from %s)\n", st.App, st.ParentPID, st.Systemd, orDash(st.FDPath))
	if a := st.Active; a != nil {
		fmt.Fprintf(w, "active:     %s  release %s  pid %d  since %s (%s ago)\n", a.Unit, a.Release, a.PID,
			a.Since.Local().Format(time.DateTime), st.Now.Sub(a.Since).Round(time.Second))
	} else if st.Adopting {
		fmt.Fprintln(w, "active:     not known yet (the parent just started and is adopting the running instances; ask again)")
	} else {
		fmt.Fprintf(w, "active:     none (deploy with: beamdeploy upgrade %s TARBALL)\n", st.App)
	}
	if st.Upgrading {
		fmt.Fprintf(w, "upgrading:  yes, to %s (%s, swap %s)\n", orDash(st.Target), st.Phase, st.Swap)
	} else {
		fmt.Fprintln(w, "upgrading:  no")
	}
	if st.Lock != nil {
		fmt.Fprintf(w, "locked:     %s\n", lockLine(st.App, st.Lock))
	}
	if d := st.Draining; d != nil {
		fmt.Fprintf(w, "draining:   %s  release %s\n", d.Unit, d.Release)
	}
	if l := st.LastSwap; l != nil {
		outcome := "ok"
		if !l.OK {
			outcome = "failed: " + l.Error
		}
		fmt.Fprintf(w, "last swap:  %s %s to %s at %s, %.2f s, %s\n", l.ID, kindOf(*l), orDash(l.Release), l.Started.Local().Format(time.DateTime), l.Total.Seconds(), outcome)
		if l.Warning != "" {
			fmt.Fprintf(w, "warning:    %s\n", l.Warning)
		}
	}
	if h := st.History; len(h) > 1 {
		fmt.Fprintln(w, "history:")
		for _, r := range h[max(0, len(h)-historyShown):] {
			outcome := "ok"
			if !r.OK {
				outcome = "failed"
			}
			fmt.Fprintf(w, "  %s  %-10s  %-8s  %-6s  %s\n", r.Started.Local().Format(time.DateTime), kindOf(r), orDash(r.Release), outcome, unitOf(r.To))
		}
	}
}

// historyShown is how many past swaps status prints (--json has them all).
const historyShown = 5

// kindOf names a swap's kind; records from before hot upgrades are
// blue-green.
func kindOf(r swap.Result) string {
	if r.Kind == "" {
		return swap.KindBlueGreen
	}
	return r.Kind
}

func unitOf(i *swap.Instance) string {
	if i == nil {
		return "-"
	}
	return fmt.Sprintf("%s (pid %d)", i.Unit, i.PID)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
