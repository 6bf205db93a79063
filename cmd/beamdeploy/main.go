// Go >= 1.25 keeps cgroup CPU files open (at fds 3 and 4) to update
// GOMAXPROCS; `beamdeploy exec` must place listeners there.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command beamdeploy swaps services with zero downtime on one Linux host
// using systemd alone. See the README and `beamdeploy --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	g := &globals{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	app := newApp(g)
	err := app.RunContext(ctx, reorderArgs(app, os.Args))
	stop()
	os.Exit(g.exit(err))
}
