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
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			args := []string{"--no-pager", "-o", "short-precise", "-n", strconv.Itoa(c.Int("lines")),
				"-u", app + ".service", "-u", app + "@blue.service", "-u", app + "@green.service"}
			if c.Bool("follow") {
				args = append(args, "-f")
			}
			cmd := exec.CommandContext(c.Context, "journalctl", args...)
			cmd.Stdout, cmd.Stderr = g.stdout, g.stderr
			if err := cmd.Run(); err != nil && c.Context.Err() == nil {
				return fmt.Errorf("journalctl: %w", err)
			}
			return nil
		},
	}
}

func checkCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate APP's configuration and units, like nginx -t",
		UsageText: "beamdeploy check APP",
		Description: "Checks /etc/beamdeploy/APP.json (errors name file and line), that APP.socket\n" +
			"and APP.service exist and pass systemd-analyze verify, and that no unit file\n" +
			"APP@.service exists (it would break the transient instances), and that the\n" +
			"user the hooks run as exists. Exits 1 on any problem.\n\n" +
			"EXAMPLES:\n   beamdeploy check hello && systemctl restart hello\n\n" + exitStatusHelp,
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			problems := runCheck(c.Context, g, app)
			if len(problems) > 0 {
				for _, p := range problems {
					fmt.Fprintf(g.stderr, "error: %s\n", p)
				}
				return fmt.Errorf("%s: %d problem(s) found", app, len(problems))
			}
			fmt.Fprintf(g.stdout, "%s: configuration and units are valid\n", app)
			return nil
		},
	}
}

func runCheck(ctx context.Context, g *globals, app string) []string {
	var problems []string
	if cfg, err := config.Load(g.paths.Config(app)); err != nil {
		problems = append(problems, err.Error())
	} else if p := checkHookUser(cfg); p != "" {
		problems = append(problems, p)
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
	return problems
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
