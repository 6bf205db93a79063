package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/journallog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the options and outputs every command shares.
type globals struct {
	stdin          io.Reader // TARBALL and VALUE "-"
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
	if c.Command != nil && c.Command.Name != c.App.Name {
		help = "beamdeploy " + c.Command.Name + " --help"
	}
	return &usageError{fmt.Errorf("%w (see %s)", err, help)}
}

func versionCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print beamdeploy's version",
		UsageText: "beamdeploy version",
		Description: "With --json: {\"message_type\":\"version\",\"version\":...,\"go_version\":...}.\n\n" +
			"EXAMPLES:\n   beamdeploy version\n   beamdeploy --json version\n\n" + exitStatusHelp,
		Action: action(g, parseNoArgs, runVersion),
	}
}

// noOptions are the options of a command that takes none.
type noOptions struct{}

func parseNoArgs(c *cli.Context) (noOptions, error) { return noOptions{}, maxArgs(c, 0) }

func runVersion(_ context.Context, g *globals, _ noOptions) error {
	v := map[string]string{"message_type": "version", "version": version, "go_version": runtime.Version()}
	return g.print(v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "beamdeploy %s (%s)\n", version, runtime.Version())
		return err
	})
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
