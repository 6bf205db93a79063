package main

import (
	"bufio"
	"context"
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
		UsageText: "beamdeploy stage APP TARBALL|- [--version V] [--sha256 HEX] [--force] [--timeout D]",
		Description: "A following `systemctl reload APP` (or `beamdeploy reload APP`) swaps to it.\n" +
			"The tarball's sha256 is checked against --sha256, else against TARBALL.sha256\n" +
			"(sha256sum format) when that file exists. The app's command must be an ELF\n" +
			"binary for this host's architecture or a #! script.\n\n" +
			"EXAMPLES:\n   beamdeploy stage hello ./hello-1.2.3.tar.gz && systemctl reload hello\n\n" + exitStatusHelp,
		Flags:  tarballFlags(),
		Action: action(g, parseUpload, runStage),
	}
}

func runStage(ctx context.Context, g *globals, o uploadOptions) error {
	f, opts, err := g.openTarball(o)
	if err != nil {
		return err
	}
	defer f.Close()
	return g.call(ctx, o.appOptions, func(ctx context.Context, cl *control.Client) error {
		st, err := cl.Stage(ctx, o.name, f, opts, g.progress())
		if err != nil {
			return err
		}
		return g.print(st, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "staged %s %s (%d files, %.1f MB); swap to it with: systemctl reload %s\n", o.app, st.Version, st.Files, float64(st.Size)/1e6, o.app)
			return err
		})
	})
}

func tarballFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sha256", Usage: "refuse the tarball unless its sha256 is HEX (default: TARBALL.sha256 if present)", EnvVars: []string{"BEAMDEPLOY_SHA256"}},
		&cli.BoolFlag{Name: "force", Usage: "replace an already staged release of the same version with different content (not one in use: exit 6)"},
		&cli.StringFlag{Name: "version", Usage: "the release's version, for a tarball whose name carries none (app.tar.gz) or read from stdin (-)"},
		swapTimeoutFlag(),
	}
}

// uploadOptions are the options of stage, upgrade and hot-upgrade
// (stage has no --message and no --detach).
type uploadOptions struct {
	swapOptions
	tarball string // TARBALL: a file, or "-" for stdin
	name    string // the file name it is uploaded under: it carries the version
	sha256  string // --sha256
	version string // --version
	force   bool   // --force
	hot     bool   // hot-upgrade
}

// parseUpload reads APP TARBALL and works out the file name to upload
// (NAME-VERSION.tar.gz, or APP.tar.gz with --version V for stdin).
func parseUpload(c *cli.Context) (uploadOptions, error) {
	s, err := parseSwap(c, 1)
	if err != nil {
		return uploadOptions{}, err
	}
	o := uploadOptions{swapOptions: s, tarball: c.Args().Get(1), sha256: c.String("sha256"), version: c.String("version"),
		force: c.Bool("force"), hot: c.Command.Name == "hot-upgrade"}
	if o.tarball == "" {
		return uploadOptions{}, usageErrorf("missing TARBALL argument (usage: %s)", c.Command.UsageText)
	}
	if o.name, err = uploadName(o.app, o.tarball, o.version); err != nil {
		return uploadOptions{}, err
	}
	return o, nil
}

// openTarball opens o.tarball ("-": stdin) and returns it with the upload
// options; the expected sha256 is --sha256, else TARBALL.sha256 if that
// file exists. Callers close the reader.
func (g *globals) openTarball(o uploadOptions) (io.ReadCloser, control.UpgradeOptions, error) {
	opts := control.UpgradeOptions{SHA256: o.sha256, Force: o.force, Version: o.version, SwapOptions: control.SwapOptions{Detach: o.detach}}
	if o.tarball == "-" {
		return io.NopCloser(g.stdin), opts, nil
	}
	if opts.SHA256 == "" {
		var err error
		if opts.SHA256, err = sha256File(o.tarball); err != nil {
			return nil, opts, err
		}
	}
	f, err := os.Open(o.tarball)
	if err != nil {
		return nil, opts, fmt.Errorf("open release: %w", err)
	}
	return f, opts, nil
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
		Flags:  []cli.Flag{callTimeoutFlag(5 * time.Second)},
		Action: action(g, parseOneApp, runReleases),
	}
}

func runReleases(ctx context.Context, g *globals, o appOptions) error {
	return g.call(ctx, o, func(ctx context.Context, cl *control.Client) error {
		rs, err := cl.Releases(ctx)
		if err != nil {
			return err
		}
		return g.print(rs, func(w io.Writer) error { printReleases(w, rs); return nil })
	})
}

func printReleases(w io.Writer, rs control.Releases) {
	fmt.Fprintf(w, "%-16s %-10s %9s  %-19s  %-19s  %s\n", "VERSION", "STATE", "SIZE", "STAGED", "DEPLOYED", "HOT")
	for _, r := range rs.Releases {
		deployed, hot := "-", "-"
		if !r.DeployedAt.IsZero() {
			deployed = r.DeployedAt.Local().Format(time.DateTime)
		}
		if r.Compat != "" {
			hot = r.Compat + " " + r.Hot
		}
		fmt.Fprintf(w, "%-16s %-10s %8.1fM  %-19s  %-19s  %s\n", r.Version, r.State, float64(r.Size)/1e6, r.StagedAt.Local().Format(time.DateTime), deployed, hot)
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
		Action: action(g, parseRollback, runRollback),
	}
}

type rollbackOptions struct {
	swapOptions
	to string // --to VERSION; "": the previous release
}

func parseRollback(c *cli.Context) (rollbackOptions, error) {
	s, err := parseSwap(c, 0)
	return rollbackOptions{swapOptions: s, to: c.String("to")}, err
}

func runRollback(ctx context.Context, g *globals, o rollbackOptions) error {
	return g.swap(ctx, o.swapOptions, func(ctx context.Context, cl *control.Client) (control.Result, error) {
		return cl.Rollback(ctx, o.to, control.SwapOptions{Detach: o.detach}, g.progress())
	})
}
