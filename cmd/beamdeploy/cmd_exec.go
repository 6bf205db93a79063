package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// brokerWait is how long an instance waits for the parent's fd broker.
const brokerWait = 30 * time.Second

// mainStarted is when this process's main package was initialised (after
// the Go runtime and every package it imports).
var mainStarted = units.Monotonic()

// traceExec writes the shim's trace line (see sockact.TraceEnv) when the
// instance's environment asks for it.
func traceExec(fetched time.Duration) {
	if os.Getenv(sockact.TraceEnv) == "" {
		return
	}
	_ = os.Unsetenv(sockact.TraceEnv) // the app need not see it; cannot fail for a valid key
	fmt.Fprintln(os.Stderr, sockact.Trace{Main: mainStarted, Listeners: fetched, Exec: units.Monotonic()})
}

func execCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:   contract.ExecCommand,
		Hidden: true,
		Usage:  "take APP's listening sockets from systemd (>= 257) or its parent and exec COMMAND with them (instance units run this)",
		UsageText: "beamdeploy exec APP [--handover] -- COMMAND [ARG]...\n\n" +
			"Restarted after a hot upgrade, it runs the hot-upgraded release instead of COMMAND.\n" +
			"--handover: started by a hot upgrade (successor mode) with the listeners at fd 3 on (LISTEN_FDS);\n" +
			"sets LISTEN_PID to its own pid and BEAMDEPLOY_SUCCESSOR=1 (see docs/protocol.md).",
		Flags: []cli.Flag{&cli.BoolFlag{Name: contract.HandoverFlag, Usage: "take the listeners from the old process of a hot upgrade"}},
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			argv := c.Args().Tail()
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usageErrorf("no COMMAND given (usage: %s)", c.Command.UsageText)
			}
			if c.Bool(contract.HandoverFlag) {
				// The old process passed the listeners at 3, 4, ... and could
				// not know this pid. The app must make itself the main process
				// when it is ready (MAINPID=).
				_ = os.Setenv(contract.EnvListenPID, strconv.Itoa(os.Getpid())) // cannot fail for a valid key
				_ = os.Setenv(contract.EnvSuccessor, "1")                       // likewise
				fds, err := sockact.Inherited()
				if err != nil {
					return fmt.Errorf("take over the listening sockets of %s: %w", app, err)
				}
				return sockact.Exec(fds, argv, os.Environ())
			}
			fds, err := listeners(g.paths.BrokerSocket(app))
			fetched := units.Monotonic()
			if errors.Is(err, sockact.ErrRefused) {
				return fmt.Errorf("get listening sockets of %s: %w", app, err)
			}
			if err != nil {
				return fmt.Errorf("get listening sockets of %s (is %s.service running?): %w", app, app, err)
			}
			if unit := os.Getenv(contract.EnvUnit); unit != "" {
				h, ok, err := contract.ReadHotRecord(g.paths, app, unit)
				if err != nil {
					return err
				}
				if ok { // restarted after a hot upgrade: run what it was upgraded to
					if err := os.Chdir(h.Dir); err != nil {
						return fmt.Errorf("run hot-upgraded release %s: %w", h.Release, err)
					}
					argv = h.Argv
					_ = os.Setenv(contract.EnvRelease, h.Release) // cannot fail for a valid key
				}
			}
			traceExec(fetched)
			return sockact.Exec(fds, argv, os.Environ())
		},
	}
}

// listeners returns the listening sockets systemd passed to this process
// (ExtraFileDescriptors, systemd >= 257: also after a restart while the
// parent is down), else those the parent's fd broker at broker hands out.
func listeners(broker string) ([]sockact.FD, error) {
	fds, err := sockact.Inherited()
	if !errors.Is(err, contract.ErrNoListeners) {
		return fds, err
	}
	return sockact.Fetch(broker, brokerWait)
}
