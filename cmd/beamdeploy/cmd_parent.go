package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/parent"
)

// parentGCPercent is the parent's GOGC: its live heap is small (under
// 1 MB when idle), so collecting at half of it rather than at all of it
// again costs little and keeps the resident set ~1 MB smaller (see the
// README, "Performance").
const parentGCPercent = 50

func parentCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "parent",
		Usage:     "run the parent daemon of APP (what APP.service runs; not for interactive use)",
		UsageText: "beamdeploy parent APP",
		Description: "Takes the listening sockets from APP.socket, serves the control socket\n" +
			"/run/beamdeploy/APP/control.sock, hands the sockets to APP@blue/green.service\n" +
			"and runs swaps. On SIGTERM it stops its instances; if it crashes they keep\n" +
			"serving and the restarted parent adopts them. Both of its sockets are open\n" +
			"to local users and bounded (connections per user, deadlines, uploads): see\n" +
			"the README, \"Who may do what\".\n\n" +
			"EXAMPLES:\n   ExecStart=/usr/bin/beamdeploy parent hello   (in hello.service, written by init)\n\n" + exitStatusHelp,
		Action: action(g, parseOneApp, runParent),
	}
}

func runParent(ctx context.Context, g *globals, o appOptions) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	exe, err := self()
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" { // a drop-in's Environment=GOGC=... wins
		debug.SetGCPercent(parentGCPercent)
	}
	return parent.Run(ctx, parent.Options{App: o.app, Paths: g.paths, Self: exe, Log: log})
}
