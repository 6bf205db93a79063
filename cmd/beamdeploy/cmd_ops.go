package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
)

func logsCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "show the journal of APP's parent and both colours, interleaved",
		UsageText: "beamdeploy logs APP [-f] [-n LINES]",
		Description: "Runs journalctl for APP.service, APP@blue.service and APP@green.service.\n" +
			"Every instance line also carries BEAMDEPLOY_APP, BEAMDEPLOY_RELEASE and\n" +
			"BEAMDEPLOY_COLOR fields: journalctl BEAMDEPLOY_APP=APP BEAMDEPLOY_RELEASE=1.2.3\n\n" +
			"EXAMPLES:\n   beamdeploy logs hello -f\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new lines"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 50, Usage: "how many recent lines to show"},
		},
		Action: action(g, parseLogs, runLogs),
	}
}

type logsOptions struct {
	app    string
	follow bool // -f
	lines  int  // -n
}

func parseLogs(c *cli.Context) (logsOptions, error) {
	a, err := parseApp(c, 0)
	return logsOptions{app: a.app, follow: c.Bool("follow"), lines: c.Int("lines")}, err
}

func runLogs(ctx context.Context, g *globals, o logsOptions) error {
	args := []string{"--no-pager", "-o", "short-precise", "-n", strconv.Itoa(o.lines),
		"-u", o.app + ".service", "-u", o.app + "@blue.service", "-u", o.app + "@green.service"}
	if o.follow {
		args = append(args, "-f")
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stdout, cmd.Stderr = g.stdout, g.stderr
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("journalctl: %w", err)
	}
	return nil
}

func checkCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate APP's configuration and units, like nginx -t",
		UsageText: "beamdeploy check APP",
		Description: "Checks /etc/beamdeploy/APP.json (errors name file and line), that APP.socket\n" +
			"and APP.service exist and pass systemd-analyze verify, and that no unit file\n" +
			"APP@.service exists (it would break the transient instances), and that the\n" +
			"user the hooks run as exists. Exits 1 on any problem. Warns, without failing,\n" +
			"when the instances run as root (\"user\": \"root\", or no \"user\" in a\n" +
			"configuration written before dynamic users), when a static user would take the\n" +
			"place of the dynamic one, and when files of staged releases are writable by\n" +
			"group or others.\n\n" +
			"EXAMPLES:\n   beamdeploy check hello && systemctl restart hello\n\n" + exitStatusHelp,
		Action: action(g, parseOneApp, runCheck),
	}
}

func runCheck(ctx context.Context, g *globals, o appOptions) error {
	problems, warnings := check(ctx, g, o.app)
	for _, w := range warnings {
		fmt.Fprintf(g.stderr, "warning: %s\n", w)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(g.stderr, "error: %s\n", p)
		}
		return fmt.Errorf("%s: %d problem(s) found", o.app, len(problems))
	}
	_, err := fmt.Fprintf(g.stdout, "%s: configuration and units are valid\n", o.app)
	return err
}

// check returns the problems that make check fail and the warnings it
// prints besides.
func check(ctx context.Context, g *globals, app string) (problems, warnings []string) {
	if cfg, err := config.Load(g.paths.Config(app)); err != nil {
		problems = append(problems, err.Error())
	} else {
		problems, warnings = checkUser(g.paths, cfg)
		if p := checkHookUser(cfg); p != "" {
			problems = append(problems, p)
		}
	}
	if w := writableReleases(filepath.Join(g.paths.StateDir(app), "releases")); w != "" {
		warnings = append(warnings, w)
	}
	dir := g.paths.UnitDir()
	tmpl := filepath.Join(dir, app+"@.service")
	if _, err := os.Stat(tmpl); err == nil {
		problems = append(problems, tmpl+": must not exist: instances are transient units; move its settings to "+tmpl+".d/*.conf")
	}
	var unitFiles []string
	for _, u := range []string{app + ".socket", app + ".service"} {
		p := filepath.Join(dir, u)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, p+": missing (run: beamdeploy init "+app+" ...)")
			continue
		}
		unitFiles = append(unitFiles, p)
	}
	if len(unitFiles) > 0 {
		if _, err := exec.LookPath("systemd-analyze"); err == nil {
			out, err := exec.CommandContext(ctx, "systemd-analyze", append([]string{"verify", "--man=no"}, unitFiles...)...).CombinedOutput()
			if err != nil {
				problems = append(problems, strings.Split(strings.TrimSpace(string(out)), "\n")...)
			}
		}
	}
	return problems, warnings
}

// writableReleases warns about files and directories in the releases
// directory dir that group or others may write: releases staged before
// beamdeploy masked the archive's modes keep them.
func writableReleases(dir string) string {
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error { // best effort: a warning
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o022 != 0 {
			n++
		}
		return nil
	})
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d files or directories in %s are writable by group or others (staged before beamdeploy masked the modes of releases), "+
		"so whoever may write them chooses what the app runs next: chmod -R go-w %s", n, dir, dir)
}

// checkUser checks who cfg's instances run as.
func checkUser(p config.Paths, cfg config.Config) (problems, warnings []string) {
	path := p.Config(cfg.App)
	switch who := cfg.RunAs(); {
	case who.Root():
		warnings = append(warnings, rootWarning(p, cfg))
	case who.Dynamic:
		if err := staticUserClash(who.User); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: \"user\": \"%s\": %s", path, cfg.User, err))
		}
	default:
		u, err := user.Lookup(who.User)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: \"user\": %s: %s (create it, e.g. useradd --system %s, or use \"%s\")",
				path, who.User, err, who.User, config.DynamicUser))
		} else if u.Uid == "0" {
			warnings = append(warnings, fmt.Sprintf("%s: \"user\": %s has uid 0: instances run as root", path, who.User))
		}
	}
	return problems, warnings
}

// checkHookUser reports a hook user that does not exist, or "".
func checkHookUser(cfg config.Config) string {
	u := cfg.HookUser()
	if len(cfg.Hooks.BeforeCutover)+len(cfg.Hooks.AfterCutover) == 0 || u == "root" || u == config.DynamicUser {
		return ""
	}
	if _, err := user.Lookup(u); err != nil {
		return fmt.Sprintf("hooks run as %s: %v: create the user, or set \"hooks\": {\"user\": ...}", u, err)
	}
	return ""
}
