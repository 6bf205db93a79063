package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
)

func stageCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "stage",
		Usage:     "unpack and verify a release tarball without swapping to it",
		UsageText: "beamdeploy stage APP TARBALL|- [--version V] [--sha256 HEX] [--force]",
		Description: "A following `systemctl reload APP` (or `beamdeploy reload APP`) swaps to it.\n" +
			"The tarball's sha256 is checked against --sha256, else against TARBALL.sha256\n" +
			"(sha256sum format) when that file exists. The app's command must be an ELF\n" +
			"binary for this host's architecture or a #! script.\n\n" +
			"EXAMPLES:\n   beamdeploy stage hello ./hello-1.2.3.tar.gz && systemctl reload hello\n\n" + exitStatusHelp,
		Flags: tarballFlags(),
		Action: func(c *cli.Context) error {
			return g.withTarball(c, func(ctx context.Context, cl *control.Client, name string, f io.Reader, opts control.UpgradeOptions) error {
				st, err := cl.Stage(ctx, name, f, opts, g.progress())
				if err != nil {
					return err
				}
				if g.json {
					return json.NewEncoder(g.stdout).Encode(st)
				}
				fmt.Fprintf(g.stdout, "staged %s %s (%d files, %.1f MB); swap to it with: systemctl reload %s\n", cl.App, st.Version, st.Files, float64(st.Size)/1e6, cl.App)
				return nil
			})
		},
	}
}

func tarballFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sha256", Usage: "refuse the tarball unless its sha256 is HEX (default: TARBALL.sha256 if present)", EnvVars: []string{"BEAMDEPLOY_SHA256"}},
		&cli.BoolFlag{Name: "force", Usage: "replace an already staged release of the same version with different content (not one in use: exit 6)"},
		&cli.StringFlag{Name: "version", Usage: "the release's version, for a tarball whose name carries none (app.tar.gz) or read from stdin (-)"},
		swapTimeoutFlag(),
	}
}

// openTarball opens APP TARBALL's file ("-": stdin) and works out the
// file name to upload (it carries the version: NAME-VERSION.tar.gz, or
// APP-V.tar.gz with --version V) and the expected sha256. Callers close
// the reader.
func openTarball(c *cli.Context) (app, name string, f io.ReadCloser, opts control.UpgradeOptions, err error) {
	if app, err = appArg(c); err != nil {
		return "", "", nil, opts, err
	}
	path := c.Args().Get(1)
	if path == "" {
		return "", "", nil, opts, usageErrorf("missing TARBALL argument (usage: %s)", c.Command.UsageText)
	}
	opts = control.UpgradeOptions{SHA256: c.String("sha256"), Force: c.Bool("force"), Version: c.String("version"),
		SwapOptions: control.SwapOptions{Detach: c.Bool("detach")}} // stage has no --detach: false
	if name, err = uploadName(app, path, c.String("version")); err != nil {
		return "", "", nil, opts, err
	}
	if path == "-" {
		return app, name, io.NopCloser(os.Stdin), opts, nil
	}
	if opts.SHA256 == "" {
		if opts.SHA256, err = sha256File(path); err != nil {
			return "", "", nil, opts, err
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return "", "", nil, opts, fmt.Errorf("open release: %w", err)
	}
	return app, name, file, opts, nil
}

// uploadName is the file name a tarball is uploaded under, and checks
// that the parent will learn its version: from --version, or from the file
// name (NAME-VERSION.tar.gz). A tarball read from stdin ("-") goes up as
// APP.tar.gz and needs --version.
func uploadName(app, path, version string) (string, error) {
	name := filepath.Base(path)
	if path == "-" {
		if version == "" {
			return "", usageErrorf("reading the tarball from stdin needs --version VERSION: nothing else names the release")
		}
		name = app + ".tar.gz"
	}
	if _, _, err := release.ParseUpload(name, version); err != nil {
		if version == "" {
			return "", usageErrorf("%s: the file name carries no version (NAME-VERSION.tar.gz); pass --version VERSION", name)
		}
		return "", &usageError{fmt.Errorf("--version %s: %w", version, err)}
	}
	return name, nil
}

// sha256File reads the checksum for tarball from TARBALL.sha256
// (sha256sum format), or returns "" when there is no such file.
func sha256File(tarball string) (string, error) {
	f, err := os.Open(tarball + ".sha256")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read checksum file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && filepath.Base(strings.TrimPrefix(fields[1], "*")) == filepath.Base(tarball) {
			return fields[0], nil
		}
		if len(fields) == 1 {
			return fields[0], nil
		}
	}
	return "", fmt.Errorf("%s.sha256 has no line for %s (expected sha256sum format: HEX  %s)", tarball, filepath.Base(tarball), filepath.Base(tarball))
}

func releasesCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "releases",
		Usage:     "list APP's staged releases: version, state, size, staged and deployed times",
		UsageText: "beamdeploy releases APP [--json]",
		Description: "State is active, draining, previous (the rollback target) or available.\n" +
			"HOT is the compat key and hot upgrade mode (successor or in_place) the release\n" +
			"declares in beamdeploy.json, or - when it cannot be hot-upgraded.\n\n" +
			"EXAMPLES:\n   beamdeploy releases hello\n   beamdeploy --json releases hello | jq -r '.releases[].version'\n\n" + exitStatusHelp,
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			cl, err := g.client(app)
			if err != nil {
				return err
			}
			defer cl.Close()
			rs, err := cl.Releases(c.Context)
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(g.stdout).Encode(rs)
			}
			fmt.Fprintf(g.stdout, "%-16s %-10s %9s  %-19s  %-19s  %s\n", "VERSION", "STATE", "SIZE", "STAGED", "DEPLOYED", "HOT")
			for _, r := range rs.Releases {
				deployed, hot := "-", "-"
				if !r.DeployedAt.IsZero() {
					deployed = r.DeployedAt.Local().Format(time.DateTime)
				}
				if r.Compat != "" {
					hot = r.Compat + " " + r.Hot
				}
				fmt.Fprintf(g.stdout, "%-16s %-10s %8.1fM  %-19s  %-19s  %s\n", r.Version, r.State, float64(r.Size)/1e6, r.StagedAt.Local().Format(time.DateTime), deployed, hot)
			}
			return nil
		},
	}
}

func rollbackCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "swap APP back to the previous release (or --to VERSION) with zero downtime",
		UsageText: "beamdeploy rollback APP [--to VERSION] [-m TEXT] [--detach]",
		Description: "A normal blue-green swap to a staged release: the one deployed before the\n" +
			"active one, unless --to names another (see `beamdeploy releases APP`).\n" + swapSignalsHelp + "\n" +
			auditHelp +
			"EXAMPLES:\n   beamdeploy rollback hello\n   beamdeploy rollback hello --to 1.2.3 -m \"1.2.4 leaks memory\"\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "roll back to this staged VERSION"},
			swapTimeoutFlag(), messageFlag(), detachFlag(),
		},
		Action: func(c *cli.Context) error {
			app, err := appArg(c)
			if err != nil {
				return err
			}
			surviveHangup()
			ctx, cancel := contextWithTimeout(c, c.Duration("timeout"))
			defer cancel()
			cl, err := g.swapClient(c, app)
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := cl.Rollback(ctx, c.String("to"), control.SwapOptions{Detach: c.Bool("detach")}, g.progress())
			return g.printResult(app, res, err)
		},
	}
}
