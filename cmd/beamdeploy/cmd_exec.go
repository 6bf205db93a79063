package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/sockact"
)

// brokerWait is how long an instance waits for the parent's fd broker.
const brokerWait = 30 * time.Second

func execCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Hidden:    true,
		Usage:     "take APP's listening sockets from systemd (>= 257) or its parent and exec COMMAND with them (instance units run this)",
		UsageText: "beamdeploy exec APP -- COMMAND [ARG]...",
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
			fds, err := listeners(g.paths.BrokerSocket(app))
			if err != nil {
				return fmt.Errorf("get listening sockets of %s (is %s.service running?): %w", app, app, err)
			}
			return sockact.Exec(fds, argv, os.Environ())
		},
	}
}

// listeners returns the listening sockets systemd passed to this process
// (ExtraFileDescriptors, systemd >= 257: also after a restart while the
// parent is down), else those the parent's fd broker at broker hands out.
func listeners(broker string) ([]sockact.FD, error) {
	fds, err := sockact.Inherited()
	if !errors.Is(err, sockact.ErrNoListeners) {
		return fds, err
	}
	return sockact.Fetch(broker, brokerWait)
}
