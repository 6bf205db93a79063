package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/safefile"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

type initOptions struct {
	app          string
	listen       []string
	exec         string
	user         string
	readyTimeout time.Duration
	drainTimeout time.Duration
	settle       time.Duration
	force        bool
	noStart      bool
}

func initCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "set APP up: write APP.socket, APP.service and /etc/beamdeploy/APP.json, then start them",
		UsageText: "beamdeploy init APP --listen ADDR [--listen ADDR]... --exec 'CMD ARGS' [--user USER]",
		Description: "ADDR is anything ListenStream= takes: 8080, 127.0.0.1:8080, [::1]:8080,\n" +
			"/run/APP.sock. CMD is relative to the release root (bin/APP). Refuses to\n" +
			"overwrite existing files without --force. Customise instances with drop-ins in\n" +
			"/etc/systemd/system/APP@.service.d/*.conf (MemoryMax=, Environment=, ...).\n\n" +
			"EXAMPLES:\n   beamdeploy init hello --listen 127.0.0.1:8080 --exec 'bin/hello'\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Usage: "address to listen on (repeatable)", Required: true},
			&cli.StringFlag{Name: "exec", Usage: "command line of the app, relative to the release root", Required: true},
			&cli.StringFlag{Name: "user", Usage: "run instances as this user (default root)"},
			&cli.DurationFlag{Name: "ready-timeout", Value: config.DefaultReadyTimeout, Usage: "how long a new instance may take to send READY=1"},
			&cli.DurationFlag{Name: "drain-timeout", Value: config.DefaultDrainTimeout, Usage: "how long an old instance may drain before it is killed (it is told in BEAMDEPLOY_DRAIN_TIMEOUT)"},
			&cli.DurationFlag{Name: "settle", Value: config.DefaultSettle, Usage: "how long a new instance must keep running after READY=1 before the old one is stopped (0 turns it off)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files"},
			&cli.BoolFlag{Name: "no-start", Usage: "write the files only; do not reload systemd or start anything"},
		},
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			return runInit(c.Context, g, initOptions{
				app: app, listen: c.StringSlice("listen"), exec: c.String("exec"), user: c.String("user"),
				readyTimeout: c.Duration("ready-timeout"), drainTimeout: c.Duration("drain-timeout"), settle: c.Duration("settle"),
				force: c.Bool("force"), noStart: c.Bool("no-start"),
			})
		},
	}
}

type plannedFile struct {
	path string
	data []byte
	mode os.FileMode
}

func runInit(ctx context.Context, g *globals, o initOptions) error {
	files, err := planInit(g.paths, o)
	if err != nil {
		return err
	}
	if err := checkInit(g.paths, o, files); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(f.path), err)
		}
		if err := safefile.Write(f.path, f.data, f.mode); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "wrote %s\n", f.path)
	}
	if exe, err := self(); err == nil && (strings.HasPrefix(exe, "/tmp/") || strings.HasPrefix(exe, "/var/tmp/")) {
		fmt.Fprintf(g.stderr, "warning: %s is under a temporary directory: instances will run without PrivateTmp= so that they can exec it; install beamdeploy in /usr/local/bin\n", exe)
	}
	if err := os.MkdirAll(g.paths.StateDir(o.app), 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if o.noStart {
		fmt.Fprintf(g.stdout, "next: systemctl daemon-reload && systemctl enable --now %s.socket %s.service\n", o.app, o.app)
		return nil
	}
	if err := startApp(ctx, o.app); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "started %s.socket and %s.service\nnext: beamdeploy upgrade %s %s-VERSION.tar.gz\n", o.app, o.app, o.app, o.app)
	return nil
}

func planInit(p config.Paths, o initOptions) ([]plannedFile, error) {
	argv, err := config.SplitCommand(o.exec)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--exec: %w", err)}
	}
	cfg := config.Config{App: o.app, Listen: o.listen, Exec: argv, User: o.user,
		ReadyTimeout: config.Duration(o.readyTimeout), DrainTimeout: config.Duration(o.drainTimeout)}
	if o.settle != config.DefaultSettle {
		s := config.Duration(o.settle)
		cfg.Settle = &s
	}
	if err := cfg.Validate(); err != nil {
		return nil, &usageError{err}
	}
	for _, l := range o.listen {
		if strings.ContainsAny(l, "\n\r") || strings.TrimSpace(l) == "" {
			return nil, usageErrorf("--listen %q: not an address", l)
		}
	}
	if o.user != "" {
		if _, err := user.Lookup(o.user); err != nil {
			return nil, usageErrorf("--user %s: %w (create it first, e.g. useradd --system %s)", o.user, err, o.user)
		}
	}
	exe, err := self()
	if err != nil {
		return nil, err
	}
	cfgData, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	return []plannedFile{
		{p.Config(o.app), cfgData, 0o644},
		{filepath.Join(p.UnitDir(), o.app+".socket"), []byte(socketUnit(cfg)), 0o644},
		{filepath.Join(p.UnitDir(), o.app+".service"), []byte(serviceUnit(cfg, exe)), 0o644},
	}, nil
}

func checkInit(p config.Paths, o initOptions, files []plannedFile) error {
	tmpl := filepath.Join(p.UnitDir(), o.app+"@.service")
	if _, err := os.Stat(tmpl); err == nil {
		return fmt.Errorf("%s exists: instances are transient units and a unit file of that name makes them fail to start; "+
			"move its settings to drop-ins in %s.d/ and remove it", tmpl, tmpl)
	}
	if o.force {
		return nil
	}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f.path); err == nil {
			existing = append(existing, f.path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", f.path, err)
		}
	}
	if len(existing) > 0 {
		return fmt.Errorf("refusing to overwrite %s (use --force to replace)", strings.Join(existing, ", "))
	}
	return nil
}

func startApp(ctx context.Context, app string) error {
	um, err := units.Dial(ctx)
	if err != nil {
		return err
	}
	defer um.Close()
	if err := um.Reload(ctx); err != nil {
		return err
	}
	if err := um.Enable(ctx, app+".socket", app+".service"); err != nil {
		return err
	}
	for _, u := range []string{app + ".socket", app + ".service"} {
		if _, err := um.Start(ctx, u); err != nil {
			return fmt.Errorf("%w (see: journalctl -u %s)", err, u)
		}
	}
	return nil
}

func socketUnit(cfg config.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by beamdeploy init. systemd holds these sockets across swaps.\n")
	fmt.Fprintf(&b, "[Unit]\nDescription=%s listening sockets (beamdeploy)\n\n[Socket]\n", cfg.App)
	for _, l := range cfg.Listen {
		fmt.Fprintf(&b, "ListenStream=%s\n", l)
	}
	fmt.Fprintf(&b, "FileDescriptorName=%s\n\n[Install]\nWantedBy=sockets.target\n", cfg.App)
	return b.String()
}

func serviceUnit(cfg config.Config, exe string) string {
	start := cfg.Ready() + cfg.Drain() + time.Minute // also bounds ExecReload (a whole swap)
	stop := cfg.Drain() + time.Minute
	return fmt.Sprintf(`# Written by beamdeploy init. The parent: holds the sockets and runs swaps.
# Instances run as %[1]s@blue.service / %[1]s@green.service; customise them
# with drop-ins in /etc/systemd/system/%[1]s@.service.d/.
[Unit]
Description=%[1]s (beamdeploy parent)
Requires=%[1]s.socket
After=%[1]s.socket network.target

[Service]
Type=notify
LogExtraFields=BEAMDEPLOY_APP=%[1]s
ExecStart=%[2]s parent %[1]s
ExecReload=%[2]s reload %[1]s
Restart=always
RestartSec=1
TimeoutStartSec=%[3]d
TimeoutStopSec=%[4]d

[Install]
WantedBy=multi-user.target
`, cfg.App, exe, int(start.Seconds()), int(stop.Seconds()))
}
