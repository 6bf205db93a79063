package parent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// journalLines is how many log lines of a failed instance are reported,
// each cut at journalLineMax bytes (the report is one stream message).
const (
	journalLines   = 20
	journalLineMax = 2048
)

// restartDelay is how long systemd waits before it restarts an instance
// whose process failed. New connections wait in the socket's backlog
// meanwhile.
const restartDelay = 100 * time.Millisecond

// StartError reports an instance that did not become ready, with what it
// logged.
type StartError struct {
	Unit    string
	Journal []string
	Err     error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// instances implements swap.Runtime with transient systemd units.
type instances struct {
	app      string
	cfg      config.Config
	paths    config.Paths
	self     string // absolute path of the beamdeploy binary
	units    *units.Manager
	releases *release.Store
	hot      *hotBoard
	log      *slog.Logger
	// fds, when set (systemd >= 257), are passed to instances by systemd
	// itself (ExtraFileDescriptors), so that a restarted instance gets
	// them without the parent; otherwise instances fetch them from the
	// parent's fd broker.
	fds []units.FD
}

// fdPath names how instances get their listeners: "systemd" or "broker".
func (r *instances) fdPath() string {
	if len(r.fds) > 0 {
		return "systemd"
	}
	return "broker"
}

func (r *instances) unitName(c swap.Color) string { return instanceUnit(r.app, c) }

// instanceUnit names app's instance unit of colour c.
func instanceUnit(app string, c swap.Color) string {
	return fmt.Sprintf("%s@%s.service", app, c)
}

// Start implements swap.Runtime.
func (r *instances) Start(ctx context.Context, color swap.Color, version string) (swap.Instance, error) {
	inst := swap.Instance{Unit: r.unitName(color), Color: color, Release: version}
	if err := contract.RemoveHotRecord(r.paths, r.app, inst.Unit); err != nil {
		return swap.Instance{Color: color, Release: version}, fmt.Errorf("forget the hot upgrade of %s: %w", inst.Unit, err)
	}
	rel, err := r.releases.Get(version)
	if err != nil {
		return swap.Instance{Color: color, Release: version}, fmt.Errorf("release %s: %w", version, err)
	}
	spec := r.spec(inst, rel)
	if id := swap.IDFromContext(ctx); id != "" {
		spec.LogExtraFields = append(spec.LogExtraFields, "BEAMDEPLOY_SWAP="+id)
	}
	began := time.Now()
	u, err := r.units.StartTransient(ctx, inst.Unit, spec)
	inst.InvocationID = u.InvocationID
	if errors.Is(err, units.ErrUnitActive) {
		// Not started by this swap, so not the machine's to stop: a parent
		// that could not list its instances at start runs swaps without
		// knowing them, and stopping this one could take the app down.
		return swap.Instance{Color: color, Release: version}, fmt.Errorf("%w; the parent does not track it (see its log from its start): restart the parent to adopt it: systemctl restart %s", err, r.app)
	}
	if err != nil {
		// By unit and time, not invocation: a crash at start can be
		// followed by systemd's restart (a new invocation) before the start
		// is aborted, and the report wants the first attempt's last words.
		return inst, &StartError{Unit: inst.Unit, Journal: r.journal(ctx, swap.Instance{Unit: inst.Unit}, began), Err: err}
	}
	inst.PID, inst.Since, inst.Restarts = u.MainPID, u.Since, u.Restarts
	if t := u.Start; t != nil {
		// Where the start's time went; `make bench` reads these fields.
		r.log.Info("instance started", "unit", inst.Unit, "swap", swap.IDFromContext(ctx), "invocation", u.InvocationID,
			"clear", t.Requested-t.Began, "to_fork", t.Forked-t.Requested, "to_ready", t.Ready-t.Forked, "notice", t.Done-t.Ready)
	}
	return inst, nil
}

// journalWait bounds how long a failure report waits for journald to
// store systemd's "Failed with result" line (it ends the invocation's log);
// on a busy machine that can take a while, and the report is worth more
// with it.
const journalWait = 3 * time.Second

// journalSettle is how long the report keeps reading after systemd's
// "Failed with result" line, until nothing more arrives: journald stores
// systemd's own lines and the process's output (a stream) separately, and
// on systemd 252 journalctl --sync does not wait for streams, so the
// process's last words can come after systemd's.
const journalSettle = 300 * time.Millisecond

// journal returns the last lines of inst's failed invocation (with its
// main process's), giving journald a moment to store what the process
// wrote just before it died. Without an invocation, the unit's lines since
// since are used.
func (r *instances) journal(ctx context.Context, inst swap.Instance, since time.Time) []string {
	var lines []string
	var ended time.Time // when systemd's "Failed with result" line was first seen
	for deadline := time.Now().Add(journalWait); time.Now().Before(deadline); {
		var got []string
		if inst.InvocationID != "" {
			got, _ = units.Journal(ctx, inst.Unit, inst.InvocationID, inst.PID, journalLines) // best effort: the error report goes on without
		} else {
			got, _ = units.JournalSince(ctx, inst.Unit, since, journalLines) // likewise
		}
		for i, l := range got {
			if len(l) > journalLineMax {
				got[i] = l[:journalLineMax] + "…"
			}
		}
		switch {
		case !strings.Contains(strings.Join(got, "\n"), "Failed with result"):
		case ended.IsZero():
			ended = time.Now()
		case slices.Equal(got, lines) && time.Since(ended) >= journalSettle:
			return got
		}
		lines = got
		time.Sleep(50 * time.Millisecond)
	}
	return lines
}

// Check implements swap.Runtime: inst must still run as the invocation
// that became ready.
func (r *instances) Check(ctx context.Context, inst swap.Instance) error {
	u, err := r.units.Unit(ctx, inst.Unit)
	if errors.Is(err, units.ErrNoSuchUnit) { // exited and garbage-collected
		u, err = units.Unit{Name: inst.Unit, ActiveState: "inactive", SubState: "dead"}, nil
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", inst.Unit, err)
	}
	// Running() would count a unit waiting to restart (activating,
	// auto-restart) under the same invocation: require the process itself.
	if u.InvocationID != inst.InvocationID || u.ActiveState != "active" || u.SubState != "running" || u.Restarts > 0 {
		how := u.Exit()
		if how == "" {
			how = "state " + u.ActiveState + "/" + u.SubState
		}
		return &StartError{Unit: inst.Unit, Journal: r.journal(ctx, inst, inst.Since),
			Err: fmt.Errorf("%s stopped after READY=1 (%s)", inst.Unit, how)}
	}
	return nil
}

// Stop implements swap.Runtime.
func (r *instances) Stop(ctx context.Context, inst swap.Instance) (bool, error) {
	if inst.Unit == "" {
		return false, nil
	}
	u, err := r.units.Stop(ctx, inst.Unit)
	return u.Result == "timeout", err
}

// command returns the command line of release rel, program path absolute.
func (r *instances) command(rel release.Release) []string {
	argv := append([]string(nil), r.cfg.Exec...)
	if len(rel.Command) > 0 {
		argv = append([]string(nil), rel.Command...) // the release's manifest decides
	}
	if !filepath.IsAbs(argv[0]) {
		argv[0] = filepath.Join(rel.Dir, argv[0])
	}
	return argv
}

func (r *instances) spec(inst swap.Instance, rel release.Release) units.Spec {
	argv := r.command(rel)
	who := r.cfg.RunAs()
	return units.Spec{
		Description: fmt.Sprintf("%s %s (%s instance, beamdeploy)", r.app, inst.Release, inst.Color),
		ExecStart:   contract.ExecArgv(r.self, r.app, argv),
		// "-": a missing directory is not fatal. After a hot upgrade the
		// unit's own release may be pruned; a restart then runs the
		// hot-upgraded release, from its directory (see contract.HotRecord).
		WorkingDirectory: "-" + rel.Dir,
		User:             who.User,
		DynamicUser:      who.Dynamic,
		StateDirectory:   who.StateDirectory,
		TimeoutStart:     r.cfg.Ready(),
		TimeoutStop:      r.cfg.Drain(),
		Hardened:         true,
		SharedTmp:        units.HiddenByPrivateTmp(r.self) || units.HiddenByPrivateTmp(argv[0]),
		RestartDelay:     restartDelay,
		FDs:              r.fds,
		Environment: []string{
			contract.EnvEnabled + "=1",
			contract.EnvApp + "=" + r.app,
			contract.EnvUnit + "=" + inst.Unit,
			contract.EnvColor + "=" + string(inst.Color),
			contract.EnvRelease + "=" + inst.Release,
			contract.EnvSocket + "=" + r.paths.ControlSocket(r.app),
			contract.EnvDrainTimeout + "=" + r.cfg.Drain().String(), // TimeoutStop: the SDK's Serve ends its drain before it
		},
		LogExtraFields: []string{
			"BEAMDEPLOY_APP=" + r.app,
			"BEAMDEPLOY_RELEASE=" + inst.Release,
			"BEAMDEPLOY_COLOR=" + string(inst.Color),
		},
	}
}

// releaseOf reads the release an instance unit runs from its environment.
func releaseOf(u units.Unit) string {
	for _, kv := range u.Environment {
		if v, ok := strings.CutPrefix(kv, contract.EnvRelease+"="); ok {
			return v
		}
	}
	return ""
}

// colorOf parses the colour from app's instance unit name: the unit must
// be APP@blue.service or APP@green.service.
func colorOf(app, unit string) (swap.Color, error) {
	for _, c := range []swap.Color{swap.Blue, swap.Green} {
		if unit == instanceUnit(app, c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%q is not an instance unit of %s", unit, app)
}
