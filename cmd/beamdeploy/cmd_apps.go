package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

func listCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list every app set up on this host: release, state, last swap",
		UsageText: "beamdeploy list [--json]",
		Description: "Apps are the configs in /etc/beamdeploy; each parent is asked for its status\n" +
			"(all at once, each bounded by --timeout). `beamdeploy status` without an APP\n" +
			"does the same. With --json: {\"message_type\":\"apps\",\"apps\":[{\"app\",\"state\",\n" +
			"\"release\",\"unit\",\"pid\",\"upgrading\",\"last_swap\",\"lock\",\"error\"}]}.\n\n" +
			"EXAMPLES:\n   beamdeploy list\n   beamdeploy --json list | jq -r '.apps[] | select(.state != \"serving\") | .app'\n\n" + exitStatusHelp,
		Flags:  []cli.Flag{callTimeoutFlag(5 * time.Second)},
		Action: action(g, parseList, runList),
	}
}

type listOptions struct {
	timeout time.Duration // bounds each parent's answer
}

func parseList(c *cli.Context) (listOptions, error) {
	return listOptions{timeout: c.Duration("timeout")}, maxArgs(c, 0)
}

// appSummary is one line of `beamdeploy list`.
type appSummary struct {
	App       string        `json:"app"`
	State     string        `json:"state"` // serving, swapping, idle, parent-down, unreadable
	Release   string        `json:"release,omitempty"`
	Unit      string        `json:"unit,omitempty"`
	PID       int           `json:"pid,omitempty"`
	Upgrading bool          `json:"upgrading"`
	LastSwap  *swapSummary  `json:"last_swap,omitempty"`
	Lock      *control.Lock `json:"lock,omitempty"` // the deploy lock (beamdeploy lock)
	Error     string        `json:"error,omitempty"`
}

type swapSummary struct {
	ID      string    `json:"id"`
	Release string    `json:"release"`
	Started time.Time `json:"started"`
	OK      bool      `json:"ok"`
}

// apps returns the names of the apps set up on this host, sorted.
func (g *globals) apps() ([]string, error) {
	dir := filepath.Dir(g.paths.Config("x"))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	var out []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && !e.IsDir() && config.ValidateApp(name) == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

func runList(ctx context.Context, g *globals, o listOptions) error {
	names, err := g.apps()
	if err != nil {
		return err
	}
	sums := make([]appSummary, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { sums[i] = g.summarise(ctx, appOptions{app: name, timeout: o.timeout}) })
	}
	wg.Wait()
	return g.print(map[string]any{"message_type": "apps", "apps": sums}, func(w io.Writer) error {
		if len(sums) == 0 {
			_, err := fmt.Fprintf(w, "no apps on this host; set one up with: beamdeploy init APP --listen ADDR --exec CMD\n")
			return err
		}
		return printApps(w, sums)
	})
}

// summarise asks o.app's parent for its status, within o.timeout.
func (g *globals) summarise(ctx context.Context, o appOptions) appSummary {
	s := appSummary{App: o.app}
	var st control.Status
	err := g.call(ctx, o, func(ctx context.Context, cl *control.Client) (err error) {
		st, err = cl.Status(ctx)
		return err
	})
	switch {
	case errors.Is(err, control.ErrNotRunning):
		s.State, s.Error = "parent-down", err.Error()
		return s
	case err != nil:
		s.State, s.Error = "unreadable", err.Error()
		return s
	}
	s.Upgrading = st.Upgrading
	s.State = "idle"
	if a := st.Active; a != nil {
		s.State, s.Release, s.Unit, s.PID = "serving", a.Release, a.Unit, a.PID
	}
	if st.Upgrading {
		s.State = "swapping"
	}
	s.Lock = st.Lock
	if l := st.LastSwap; l != nil {
		s.LastSwap = &swapSummary{ID: l.ID, Release: l.Release, Started: l.Started, OK: l.OK}
	}
	return s
}

func printApps(w io.Writer, sums []appSummary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tSTATE\tRELEASE\tUNIT\tLAST SWAP")
	for _, s := range sums {
		last := "-"
		if l := s.LastSwap; l != nil {
			outcome := "ok"
			if !l.OK {
				outcome = "failed"
			}
			last = fmt.Sprintf("%s to %s, %s", l.Started.Local().Format(time.DateTime), orDash(l.Release), outcome)
		}
		state := s.State
		if s.State == "parent-down" {
			state += " (systemctl start " + s.App + ".service)"
		}
		if s.Lock != nil {
			state += ", locked by " + s.Lock.Who()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.App, state, orDash(s.Release), orDash(s.Unit), last)
	}
	return tw.Flush()
}

func removeCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "stop APP and remove its units and config (--purge: also its releases and state)",
		UsageText: "beamdeploy remove APP [--purge]",
		Description: "Stops APP.service (the parent drains and stops the instances, as systemctl stop\n" +
			"does) and APP.socket: the app stops serving. Then disables them and removes\n" +
			"APP.socket, APP.service and /etc/beamdeploy/APP.json. Your instance drop-ins in\n" +
			"/etc/systemd/system/APP@.service.d/ are kept (and named). --purge also removes\n" +
			"/var/lib/beamdeploy/APP (releases, handoff store, history) and /run/beamdeploy/APP.\n" +
			"Without --purge a later `beamdeploy init APP` finds the releases again.\n\n" +
			"EXAMPLES:\n   beamdeploy remove hello\n   beamdeploy remove hello --purge\n\n" + exitStatusHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "purge", Usage: "also remove the app's releases and state"},
		},
		Action: action(g, parseRemove, runRemove),
	}
}

type removeOptions struct {
	app   string
	purge bool // --purge: also the releases and state
}

func parseRemove(c *cli.Context) (removeOptions, error) {
	a, err := parseApp(c, 0)
	return removeOptions{app: a.app, purge: c.Bool("purge")}, err
}

// removed is what `beamdeploy --json remove` prints.
type removed struct {
	MessageType string   `json:"message_type"` // "removed"
	App         string   `json:"app"`
	Purged      bool     `json:"purged"`
	Removed     []string `json:"removed"`
	Kept        []string `json:"kept,omitempty"`
}

func runRemove(ctx context.Context, g *globals, o removeOptions) error {
	app, purge := o.app, o.purge
	unitDir := g.paths.UnitDir()
	unitFiles := []string{filepath.Join(unitDir, app+".socket"), filepath.Join(unitDir, app+".service")}
	cfgPath := g.paths.Config(app)
	if !slices.ContainsFunc(append(slices.Clone(unitFiles), cfgPath), exists) {
		return fmt.Errorf("%w %s on this host (no %s and no units)", errNoSuchApp, app, cfgPath)
	}
	out := removed{MessageType: "removed", App: app, Purged: purge, Removed: []string{}}
	say := func(format string, args ...any) {
		if !g.json {
			fmt.Fprintf(g.stderr, format+"\n", args...)
		}
	}
	if err := stopApp(ctx, app, say); err != nil {
		return err
	}
	paths := append(unitFiles, cfgPath)
	if purge {
		// A dynamic user's StateDirectory= lives under /var/lib/private;
		// the app's state directory only holds a symlink to it.
		paths = append(paths, g.paths.StateDir(app), g.paths.RunDir(app), filepath.Join(privateStateDir, filepath.Dir(config.DataDir(app))))
	}
	for _, p := range paths {
		if !exists(p) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		out.Removed = append(out.Removed, p)
		say("removed %s", p)
	}
	if err := reloadUnits(ctx); err != nil {
		return err
	}
	if d := filepath.Join(unitDir, app+"@.service.d"); exists(d) {
		out.Kept = append(out.Kept, d)
		say("kept %s (your instance drop-ins; remove it yourself if you no longer need it)", d)
	}
	if !purge && exists(g.paths.StateDir(app)) {
		out.Kept = append(out.Kept, g.paths.StateDir(app))
		say("kept %s (releases and state; beamdeploy remove %s --purge removes them)", g.paths.StateDir(app), app)
	}
	return g.print(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "removed %s\n", app)
		return err
	})
}

// privateStateDir is where systemd keeps the StateDirectory= of units
// with DynamicUser=yes.
const privateStateDir = "/var/lib/private"

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// stopApp stops the parent (which stops its instances), the socket and
// any instance left behind, and disables the app's units.
func stopApp(ctx context.Context, app string, say func(string, ...any)) error {
	um, err := units.Dial(ctx)
	if err != nil {
		return fmt.Errorf("%w (removing an app needs a running systemd)", err)
	}
	defer um.Close()
	for _, u := range []string{app + ".service", app + ".socket", app + "@blue.service", app + "@green.service"} {
		if _, err := um.Stop(ctx, u); err != nil {
			return fmt.Errorf("stop %s: %w", u, err)
		}
		_ = um.ResetFailed(ctx, u) // a unit that never failed or is gone has nothing to reset
		say("stopped %s", u)
	}
	if err := um.Disable(ctx, app+".socket", app+".service"); err != nil {
		return fmt.Errorf("disable %s: %w", app, err)
	}
	return nil
}

// reloadUnits makes systemd forget the removed unit files.
func reloadUnits(ctx context.Context) error {
	um, err := units.Dial(ctx)
	if err != nil {
		return err
	}
	defer um.Close()
	return um.Reload(ctx)
}
