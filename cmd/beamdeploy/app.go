package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/journallog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the options and outputs every command shares.
type globals struct {
	stdout, stderr io.Writer
	json           bool
	logLevel       string
	paths          config.Paths
}

const exitStatusHelp = `EXIT STATUS:
   0    success
   1    failure
   2    usage error
   3    swap failed and was rolled back (the old release keeps serving)
   4    the parent (APP.service) is not running
   5    another swap is in progress
   6    the release is in use (serving, draining or being started): --force cannot replace it
   7    the app is locked (beamdeploy lock): nothing was swapped; beamdeploy unlock APP lifts it
   130  interrupted`

func newApp(g *globals) *cli.App {
	app := &cli.App{
		Name:    "beamdeploy",
		Usage:   "zero-downtime blue-green swaps of a service on one Linux host, with systemd",
		Version: version,
		Description: "beamdeploy runs APP.socket (systemd holds the listening socket), APP.service (the\n" +
			"parent: `beamdeploy parent APP`) and the app as APP@blue.service / APP@green.service.\n" +
			"An upgrade starts the idle colour on the same socket, waits for READY=1, then drains\n" +
			"and stops the old one: no request is refused or lost.\n\n" + exitStatusHelp,
		Writer:    g.stdout,
		ErrWriter: g.stderr,
		// main maps errors to exit codes; urfave's default would os.Exit inside Run.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON on stdout", EnvVars: []string{"BEAMDEPLOY_JSON"}, Destination: &g.json},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "parent log level: debug, info, warn, error", EnvVars: []string{"BEAMDEPLOY_LOG_LEVEL"}, Destination: &g.logLevel},
		},
		Commands: []*cli.Command{
			initCommand(g), upgradeCommand(g), hotUpgradeCommand(g), reloadCommand(g), statusCommand(g), handoffCommand(g),
			stageCommand(g), releasesCommand(g), rollbackCommand(g), waitCommand(g), historyCommand(g), lockCommand(g), unlockCommand(g),
			logsCommand(g), checkCommand(g), listCommand(g), removeCommand(g),
			parentCommand(g), execCommand(g),
		},
	}
	app.Commands = append(app.Commands, versionCommand(g))
	app.Commands = append(app.Commands, docsCommands(g)...)
	// Flag errors (unknown flag, bad value) and unknown commands are usage
	// errors: exit 2, the message on stderr (see exitCode), no help dump.
	app.OnUsageError = usageOnError
	for _, c := range app.Commands {
		c.OnUsageError = usageOnError
	}
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageErrorf("unknown command %q: run beamdeploy --help for the list", c.Args().First())
		}
		return cli.ShowAppHelp(c)
	}
	return app
}

func usageOnError(c *cli.Context, err error, _ bool) error {
	help := "beamdeploy --help"
	if c.Command != nil && c.Command.Name != "" {
		help = "beamdeploy " + c.Command.Name + " --help"
	}
	return &usageError{fmt.Errorf("%w (see %s)", err, help)}
}

func versionCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print beamdeploy's version",
		Description: "With --json: {\"message_type\":\"version\",\"version\":...,\"go_version\":...}.\n\n" +
			"EXAMPLES:\n   beamdeploy version\n   beamdeploy --json version\n\n" + exitStatusHelp,
		Action: func(*cli.Context) error {
			if g.json {
				return json.NewEncoder(g.stdout).Encode(map[string]string{"message_type": "version", "version": version, "go_version": runtime.Version()})
			}
			_, err := fmt.Fprintf(g.stdout, "beamdeploy %s (%s)\n", version, runtime.Version())
			return err
		},
	}
}

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

// logger builds the daemon's logger: text on stderr, without timestamps
// when journald adds its own.
func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageErrorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if ok, _ := journal.StderrIsJournalStream(); ok && journallog.Available() {
		// Under systemd: native journal entries with fields per attribute.
		return slog.New(journallog.New(lvl)), nil
	}
	if ok, _ := journal.StderrIsJournalStream(); ok {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
}

// self returns the absolute path of this binary, for unit files.
func self() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return filepath.EvalSymlinks(exe)
}

// writable reports whether this process may connect to the socket at path.
func writable(path string) bool { return unix.Access(path, unix.W_OK) == nil }
