package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
)

// Every command is an options struct, a parse function that fills it from
// the command line (its mistakes are usage errors: exit 2, before
// anything is dialled or written) and a run function that tests call
// directly. This file is the preamble they share: the APP argument, the
// context bounded by --timeout, the client of the parent and the --json
// output.

// action is a command's Action: run with what parse made of the command
// line. c.Context is main's: cancelled by SIGINT and SIGTERM.
func action[O any](g *globals, parse func(*cli.Context) (O, error), run func(context.Context, *globals, O) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		o, err := parse(c)
		if err != nil {
			return err
		}
		return run(c.Context, g, o)
	}
}

// appOptions are what every command about one app takes.
type appOptions struct {
	app     string
	timeout time.Duration // --timeout; 0: no limit (also for commands without it)
}

// parseApp reads APP and --timeout, refusing more than extra further
// arguments.
func parseApp(c *cli.Context, extra int) (appOptions, error) {
	app, err := appArg(c)
	if err != nil {
		return appOptions{}, err
	}
	if err := maxArgs(c, 1+extra); err != nil {
		return appOptions{}, err
	}
	return appOptions{app: app, timeout: c.Duration("timeout")}, nil
}

// parseOneApp reads APP, the only argument, and --timeout.
func parseOneApp(c *cli.Context) (appOptions, error) { return parseApp(c, 0) }

// appArg returns the APP argument, validated.
func appArg(c *cli.Context) (string, error) {
	app := c.Args().First()
	if app == "" {
		return "", usageErrorf("missing APP argument (usage: %s)", c.Command.UsageText)
	}
	if err := config.ValidateApp(app); err != nil {
		return "", &usageError{err}
	}
	return app, nil
}

// maxArgs refuses more than n arguments.
func maxArgs(c *cli.Context, n int) error {
	if c.NArg() > n {
		return usageErrorf("too many arguments: %q (usage: %s)", c.Args().Slice()[n:], c.Command.UsageText)
	}
	return nil
}

// call runs do with a client of o.app's parent and ctx bounded by
// o.timeout.
func (g *globals) call(ctx context.Context, o appOptions, do func(context.Context, *control.Client) error) error {
	cl, err := g.client(o.app)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := withTimeout(ctx, o.timeout)
	defer cancel()
	return do(ctx, cl)
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// errNoSuchApp is returned for an app that was never set up on this host.
var errNoSuchApp = errors.New("no app named")

// client returns a client of app's parent; an app without a config file
// was never set up here, which is said before anything is dialled.
func (g *globals) client(app string) (*control.Client, error) {
	if _, err := os.Stat(g.paths.Config(app)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s on this host (no %s); set it up with: beamdeploy init %s --listen ADDR --exec CMD",
			errNoSuchApp, app, g.paths.Config(app), app)
	}
	return control.NewClient(app, g.socket(app)), nil
}

// socket is the control socket to use: the admin socket when this user
// may connect to it (root, the deploy group), which no flood of other
// users' connections can delay; else the one open to everyone.
func (g *globals) socket(app string) string {
	if admin := g.paths.AdminSocket(app); writable(admin) {
		return admin
	}
	return g.paths.ControlSocket(app)
}

// print writes a command's result: v as one JSON object with --json, else
// what text writes.
func (g *globals) print(v any, text func(io.Writer) error) error {
	if g.json {
		return json.NewEncoder(g.stdout).Encode(v)
	}
	return text(g.stdout)
}

// swapOptions are what every swap command (upgrade, hot-upgrade, reload,
// rollback) takes.
type swapOptions struct {
	appOptions
	message string // --message, recorded with the swap
	detach  bool   // --detach
}

// parseSwap reads APP, --timeout, --message and --detach, refusing more
// than extra further arguments.
func parseSwap(c *cli.Context, extra int) (swapOptions, error) {
	a, err := parseApp(c, extra)
	if err != nil {
		return swapOptions{}, err
	}
	o := swapOptions{appOptions: a, message: c.String("message"), detach: c.Bool("detach")}
	if err := control.CheckMessage(o.message); err != nil {
		return swapOptions{}, usageErrorf("--message: %w", err)
	}
	return o, nil
}

// swap runs a swap command's request do, which the parent records with
// o.message, and prints its progress and result. The command survives a
// hangup of its terminal (see surviveHangup).
func (g *globals) swap(ctx context.Context, o swapOptions, do func(context.Context, *control.Client) (control.Result, error)) error {
	surviveHangup()
	return g.call(ctx, o.appOptions, func(ctx context.Context, cl *control.Client) error {
		cl.Message = o.message
		res, err := do(ctx, cl)
		return g.printResult(o.app, res, err)
	})
}
