package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
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
		UsageText: "beamdeploy init APP --listen ADDR [--listen ADDR]... --exec 'CMD ARGS' [--user dynamic|root|USER]",
		Description: "ADDR is anything ListenStream= takes: 8080, 127.0.0.1:8080, [::1]:8080,\n" +
			"/run/APP.sock. CMD is relative to the release root (bin/APP). Refuses to\n" +
			"overwrite existing files without --force. Customise instances with drop-ins in\n" +
			"/etc/systemd/system/APP@.service.d/*.conf (MemoryMax=, Environment=, ...).\n\n" +
			"Instances run as a dynamic user (--user dynamic, the default): systemd allocates\n" +
			"bd-APP while they run, both colours share it, and the app writes only into\n" +
			"$STATE_DIRECTORY (/var/lib/beamdeploy/APP/data); its release is read-only.\n" +
			"--user NAME runs them as an existing user; --user root as root, so that whoever\n" +
			"may deploy (group beamdeploy) runs code as root.\n\n" +
			"EXAMPLES:\n   beamdeploy init hello --listen 127.0.0.1:8080 --exec 'bin/hello'\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Usage: "address to listen on (repeatable; required)"},
			&cli.StringFlag{Name: "exec", Usage: "command line of the app, relative to the release root (required)"},
			&cli.StringFlag{Name: "user", Value: config.DynamicUser, Usage: "run instances as this existing user, or as root; \"dynamic\": a user systemd allocates for the app (DynamicUser=yes)"},
			&cli.DurationFlag{Name: "ready-timeout", Value: config.DefaultReadyTimeout, Usage: "how long a new instance may take to send READY=1"},
			&cli.DurationFlag{Name: "drain-timeout", Value: config.DefaultDrainTimeout, Usage: "how long an old instance may drain before it is killed (it is told in BEAMDEPLOY_DRAIN_TIMEOUT)"},
			&cli.DurationFlag{Name: "settle", Value: config.DefaultSettle, Usage: "how long a new instance must keep running after READY=1 before the old one is stopped (0 turns it off)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files"},
			&cli.BoolFlag{Name: "no-start", Usage: "write the files only; do not reload systemd or start anything"},
		},
		Action: action(g, parseInit, runInit),
	}
}

func parseInit(c *cli.Context) (initOptions, error) {
	a, err := parseApp(c, 0)
	if err != nil {
		return initOptions{}, err
	}
	for _, f := range []string{"listen", "exec"} {
		if !c.IsSet(f) {
			return initOptions{}, usageErrorf("missing --%s (usage: %s)", f, c.Command.UsageText)
		}
	}
	return initOptions{
		app: a.app, listen: c.StringSlice("listen"), exec: c.String("exec"), user: c.String("user"),
		readyTimeout: c.Duration("ready-timeout"), drainTimeout: c.Duration("drain-timeout"), settle: c.Duration("settle"),
		force: c.Bool("force"), noStart: c.Bool("no-start"),
	}, nil
}

type plannedFile struct {
	path string
	data []byte
	mode os.FileMode
}

func runInit(ctx context.Context, g *globals, o initOptions) error {
	cfg, files, err := planInit(g.paths, o)
	if err != nil {
		return err
	}
	if err := checkInit(g.paths, o, files); err != nil {
		return err
	}
	if !o.noStart {
		if err := systemdRunning(ctx); err != nil {
			return err // before anything is written: a retry needs no --force
		}
	}
	if err := safefile.Dir(filepath.Dir(g.paths.Config(o.app)), 0o755); err != nil {
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
	if who := cfg.RunAs(); who.Dynamic {
		fmt.Fprintf(g.stdout, "instances run as %s, a user systemd allocates while they run; the app may write only into $STATE_DIRECTORY (%s)\n",
			who.User, filepath.Join("/var/lib", who.StateDirectory))
	}
	if exe, err := self(); err == nil && units.HiddenByPrivateTmp(exe) {
		fmt.Fprintf(g.stderr, "warning: %s is under a temporary directory: instances will run without PrivateTmp= so that they can exec it; install beamdeploy in /usr/local/bin\n", exe)
	}
	if w := rootWarning(g.paths, cfg); w != "" {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	if err := safefile.Dir(g.paths.StateDir(o.app), 0o755); err != nil {
		return err
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

func planInit(p config.Paths, o initOptions) (config.Config, []plannedFile, error) {
	cfg, err := initConfig(o)
	if err != nil {
		return cfg, nil, err
	}
	switch who := cfg.RunAs(); {
	case who.Dynamic:
		if err := staticUserClash(who.User); err != nil {
			return cfg, nil, &usageError{fmt.Errorf("--user %s: %w", config.DynamicUser, err)}
		}
	case !who.Root():
		if _, err := user.Lookup(cfg.User); err != nil {
			return cfg, nil, usageErrorf("--user %s: %w (create it first, e.g. useradd --system %s)", cfg.User, err, cfg.User)
		}
	}
	exe, err := self()
	if err != nil {
		return cfg, nil, err
	}
	if cfg.RunAs().Dynamic && units.HiddenByPrivateTmp(exe) {
		return cfg, nil, fmt.Errorf("%s is under a temporary directory: instances of a dynamic user always get a private /tmp and could not run it; install beamdeploy in /usr/local/bin", exe)
	}
	cfgData, err := cfg.Marshal()
	if err != nil {
		return cfg, nil, err
	}
	return cfg, []plannedFile{
		{p.Config(o.app), cfgData, 0o644},
		{filepath.Join(p.UnitDir(), o.app+".socket"), []byte(socketUnit(cfg)), 0o644},
		{filepath.Join(p.UnitDir(), o.app+".service"), []byte(serviceUnit(cfg, exe)), 0o644},
	}, nil
}

// initConfig is the configuration init writes for o.
func initConfig(o initOptions) (config.Config, error) {
	argv, err := config.SplitCommand(o.exec)
	if err != nil {
		return config.Config{}, &usageError{fmt.Errorf("--exec: %w", err)}
	}
	if o.user == "" {
		o.user = config.DynamicUser
	}
	for flag, d := range map[string]time.Duration{"--ready-timeout": o.readyTimeout, "--drain-timeout": o.drainTimeout} {
		if d <= 0 {
			return config.Config{}, usageErrorf("%s %s: must be more than 0 (leave it out for the default)", flag, d)
		}
	}
	if o.settle < 0 {
		return config.Config{}, usageErrorf("--settle %s: must not be negative (0 turns the settle window off)", o.settle)
	}
	cfg := config.Config{App: o.app, Listen: o.listen, Exec: argv, User: o.user,
		ReadyTimeout: config.Duration(o.readyTimeout), DrainTimeout: config.Duration(o.drainTimeout)}
	if o.settle != config.DefaultSettle {
		s := config.Duration(o.settle)
		cfg.Settle = &s
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, &usageError{err}
	}
	for _, l := range o.listen {
		if strings.ContainsAny(l, "\n\r") || strings.TrimSpace(l) == "" {
			return config.Config{}, usageErrorf("--listen %q: not an address", l)
		}
	}
	return cfg, nil
}

// staticUserClash reports a static user named like the dynamic user name:
// systemd would run the instances as that user instead of allocating one.
func staticUserClash(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return nil // no such user: systemd allocates it
	}
	if uid, err := strconv.Atoi(u.Uid); err == nil && uid >= config.DynamicUIDMin && uid <= config.DynamicUIDMax {
		return nil // the dynamic user itself, allocated while an instance runs
	}
	return fmt.Errorf("a static user %s (uid %s) exists, and systemd would run the instances as it instead of a dynamic user: "+
		"remove it (userdel %s), or run them as it on purpose with --user %s", name, u.Uid, name, name)
}

// rootWarning says what it means that cfg runs its instances as root, and
// how to change it; "" when they do not run as root.
func rootWarning(p config.Paths, cfg config.Config) string {
	app, path := cfg.App, p.Config(cfg.App)
	change := fmt.Sprintf("set \"user\": \"%s\" in %s, run systemctl restart %s (the parent reloads its config; the app keeps running) and beamdeploy reload %s (a zero-downtime swap into an instance that runs as the new user; it may then write only into $STATE_DIRECTORY, %s)",
		config.DynamicUser, path, app, app, filepath.Join("/var/lib", config.DataDir(app)))
	switch cfg.User {
	case "root":
		return fmt.Sprintf("instances of %s run as root (\"user\": \"root\"), so whoever may deploy (root and group %s) runs code as root; unless the app needs root, %s",
			app, config.DeployGroup, change)
	case "":
		return fmt.Sprintf("%s has no \"user\": instances of %s run as root, as they did before beamdeploy ran apps as dynamic users, so whoever may deploy (root and group %s) runs code as root; to run them as a user systemd allocates, %s",
			path, app, config.DeployGroup, change)
	}
	return ""
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

// systemdRunning checks that systemd runs as the init system and answers
// on D-Bus, which init needs to start the app.
func systemdRunning(ctx context.Context) error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return errors.New("systemd is not running on this host (no /run/systemd/system): init needs it to start the app; write the files only with --no-start")
	}
	um, err := units.Dial(ctx)
	if err != nil {
		return fmt.Errorf("systemd does not answer on D-Bus (%w): init needs it to start the app; write the files only with --no-start", err)
	}
	return um.Close()
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
