package parent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/contract"
	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/safefile"
	"github.com/beamdeploy/beamdeploy/internal/sockact"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
)

// shutdownGrace is added to the drain timeout to bound the parent's stop.
const shutdownGrace = 15 * time.Second

// Options configure Run.
type Options struct {
	App   string
	Paths config.Paths
	Self  string // absolute path of the beamdeploy binary, for instance units
	Log   *slog.Logger
}

// Run is the parent daemon. It returns when ctx ends (SIGTERM), after
// stopping its instances.
func Run(ctx context.Context, opts Options) error {
	app := opts.App
	cfg, err := config.Load(opts.Paths.Config(app))
	if err != nil {
		return err
	}
	fds, err := sockact.Inherited()
	if errors.Is(err, contract.ErrNoListeners) {
		return fmt.Errorf("%w: the parent must be started by systemd through %s.socket: systemctl start %s.socket %s.service", err, app, app, app)
	}
	if err != nil {
		return err
	}
	um, err := units.Dial(ctx)
	if err != nil {
		return err
	}
	defer um.Close()
	d, err := newDaemon(ctx, opts, cfg, fds, um)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

type daemon struct {
	opts    Options
	cfg     config.Config
	fds     []sockact.FD
	units   *units.Manager
	rt      *instances
	state   *stateFile
	machine *swap.Machine
	auth    *authority
	srv     *server
	log     *slog.Logger
}

func newDaemon(ctx context.Context, opts Options, cfg config.Config, fds []sockact.FD, um *units.Manager) (*daemon, error) {
	app := opts.App
	stateDir := opts.Paths.StateDir(app)
	// 0755: instances, as the app's user, reach their release and hot
	// upgrade record in it (see README, "Files and their modes").
	if err := safefile.Dir(stateDir, 0o755); err != nil {
		return nil, err
	}
	store := &release.Store{Dir: stateDir}
	if err := store.CleanStaging(); err != nil {
		opts.Log.Warn("could not remove stale staging directories", "err", err)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	ho, err := handoff.Open(filepath.Join(stateDir, "handoff.json"), handoff.Limits{})
	if err != nil {
		return nil, err
	}
	hot := &hotBoard{}
	rt := &instances{app: app, cfg: cfg, paths: opts.Paths, self: opts.Self, units: um, releases: store, hot: hot, log: opts.Log}
	m := swap.New(rt, swap.Options{Save: st.save, Hooks: (&hookRunner{app: app, cfg: cfg, releases: store, units: um}).hooks(), Settle: cfg.SettleTime(),
		Releases: storeReleases{store}, Keep: cfg.Keep(), AwaitRestore: true}) // until reconcile

	sdv, err := um.Version(ctx)
	if err != nil {
		opts.Log.Warn("could not read the systemd version", "err", err)
	}
	if sdv >= units.ExtraFDsVersion {
		for _, fd := range fds {
			rt.fds = append(rt.fds, units.FD{Num: fd.Num, Name: fd.Name})
		}
	}
	d := &daemon{opts: opts, cfg: cfg, fds: fds, units: um, rt: rt, state: st, machine: m, log: opts.Log,
		auth: newAuthority(app, cfg.RunAs(), um, m)}
	d.srv = &server{app: app, machine: m, releases: store, state: st, listeners: cfg.Listen,
		systemd: sdv, log: opts.Log, handoff: ho, hot: hot, units: um, live: newLiveActive(um), fdPath: rt.fdPath(), exec: cfg.Exec, onSwap: d.swapped}
	return d, nil
}

// swapped runs after every swap: it updates systemctl status and hands
// the memory the swap used (D-Bus replies, JSON, the upload's buffers)
// back to the system at once, so that an idle parent stays small; the
// runtime would otherwise keep it for minutes. It costs a GC (~1 ms).
func (d *daemon) swapped(swap.Result) {
	d.notifyStatus()
	debug.FreeOSMemory()
}

func (d *daemon) run(ctx context.Context) error {
	app := d.opts.App
	runDir := d.opts.Paths.RunDir(app)
	if err := safefile.Dir(runDir, 0o755); err != nil {
		return err
	}
	// The broker and the control socket are open to all local users; a
	// gate admits each connection (see gate.go). The admin socket serves
	// the control API to root and the deploy group only.
	broker, ctl, err := d.listen()
	if err != nil {
		return err
	}
	admin, err := d.listenAdmin()
	if err != nil {
		broker.Close()
		ctl.Close()
		return err
	}
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	brokerDone := make(chan error, 1)
	go func() { brokerDone <- sockact.Serve(brokerCtx, broker, d.fds) }()
	httpSrv := controlServer(d.srv.handler())
	go func() { _ = httpSrv.Serve(ctl) }()   // returns when Shutdown closes the gate
	go func() { _ = httpSrv.Serve(admin) }() // likewise

	d.reconcile(ctx)
	d.notify("READY=1")
	d.notifyStatus()
	d.log.Info("parent ready", "app", app, "listeners", len(d.fds), "fd_path", d.rt.fdPath(), "control", d.opts.Paths.ControlSocket(app))

	<-ctx.Done()
	d.notify("STOPPING=1")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Drain()+shutdownGrace)
	defer cancel()
	if d.restarting(sctx) {
		// systemctl restart APP (a config change, a package upgrade): the
		// instances keep serving and the next parent adopts them.
		d.log.Info("restarting: leaving the instances running for the next parent", "app", app)
		err = d.machine.Detach(sctx)
	} else {
		d.log.Info("stopping: stopping instances", "app", app)
		err = d.machine.Shutdown(sctx)
	}
	_ = httpSrv.Shutdown(sctx) // streams end with their swaps, which Shutdown ended
	stopBroker()
	<-brokerDone
	if err != nil {
		return fmt.Errorf("stop instances: %w", err)
	}
	return nil
}

// restarting reports whether the parent is being restarted (systemd's job
// for APP.service is a restart) rather than stopped. When that cannot be
// told, it is a stop, as before.
func (d *daemon) restarting(ctx context.Context) bool {
	job, err := d.units.JobType(ctx, d.opts.App+".service")
	if err != nil {
		d.log.Warn("could not tell a restart from a stop: stopping the instances", "err", err)
		return false
	}
	return strings.Contains(job, "restart")
}

// listen opens the fd broker's and the control socket, each behind its
// gate.
func (d *daemon) listen() (broker, ctl *gate.Listener[verdict], err error) {
	app := d.opts.App
	bl, err := listenUnix(d.opts.Paths.BrokerSocket(app), 0o666)
	if err != nil {
		return nil, nil, err
	}
	if broker, err = d.brokerGate(bl); err != nil {
		bl.Close()
		return nil, nil, err
	}
	cl, err := listenUnix(d.opts.Paths.ControlSocket(app), 0o666)
	if err == nil {
		if ctl, err = d.controlGate(cl); err != nil {
			cl.Close()
		}
	}
	if err != nil {
		broker.Close()
		return nil, nil, err
	}
	return broker, ctl, nil
}

// listenAdmin opens the admin socket: mode 0660, group config.DeployGroup (0600
// when there is no such group), behind the control socket's gate, which
// admits deployers only there since nobody else can connect.
func (d *daemon) listenAdmin() (*gate.Listener[verdict], error) {
	path := d.opts.Paths.AdminSocket(d.opts.App)
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		return nil, err
	}
	if gid, ok := deployGID(); ok {
		if err := os.Chown(path, 0, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("give %s to group %s: %w", path, config.DeployGroup, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			ln.Close()
			return nil, fmt.Errorf("set mode of %s: %w", path, err)
		}
	}
	g, err := d.controlGate(ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return g, nil
}

// listenUnix listens on a fresh unix socket at path, replacing a stale one.
func listenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set mode of %s: %w", path, err)
	}
	return ln, nil
}

func (d *daemon) notify(state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		d.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// notifyStatus sets the line `systemctl status APP` shows.
func (d *daemon) notifyStatus() {
	d.notify("STATUS=" + statusLine(d.opts.App, d.machine.Status()))
}

func statusLine(app string, st swap.Status) string {
	var s string
	if a := st.Active; a != nil {
		s = fmt.Sprintf("serving %s %s on %s (pid %d)", app, a.Release, a.Unit, a.PID)
	} else {
		s = fmt.Sprintf("no instance of %s running; deploy with: beamdeploy upgrade %s TARBALL", app, app)
	}
	if l := st.Last; l != nil {
		outcome := "ok"
		if !l.OK {
			outcome = "failed, rolled back"
		}
		s += fmt.Sprintf("; last swap %.2f s %s", l.Total.Seconds(), outcome)
	}
	return s
}
