package parent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/config"
	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/beamdeploy/beamdeploy/internal/units"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedRuntime is a swap.Runtime whose Start reports the release it was
// asked for on started, then waits for proceed: a new instance that is
// slow to get ready.
type gatedRuntime struct {
	started  chan string
	proceed  chan struct{}
	startErr error // what Start returns once it may proceed
}

func newGatedRuntime() *gatedRuntime {
	return &gatedRuntime{started: make(chan string, 1), proceed: make(chan struct{})}
}

func (g *gatedRuntime) Start(ctx context.Context, c swap.Color, rel string) (swap.Instance, error) {
	inst := swap.Instance{Unit: "hello@" + string(c) + ".service", Color: c, Release: rel, PID: 1}
	g.started <- rel
	select {
	case <-g.proceed:
		return inst, g.startErr
	case <-ctx.Done():
		return inst, ctx.Err()
	}
}

func (g *gatedRuntime) Stop(context.Context, swap.Instance) (bool, error) { return false, nil }
func (g *gatedRuntime) Check(context.Context, swap.Instance) error        { return nil }
func (g *gatedRuntime) Handover(_ context.Context, i swap.Instance, _ string) (swap.Instance, error) {
	return i, errors.New("no hot upgrades here")
}

// tarball returns a release tarball holding one file, v, with body.
func tarball(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "v", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}))
	_, err := tw.Write([]byte(body))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pinServer is a parent's server with a real release store and swap
// machine, and a runtime that waits before its instances are ready.
type pinServer struct {
	*server
	rt     *gatedRuntime
	client *control.Client
}

// newPinServer serves stage on a unix socket; deployed, when set, is
// written as the state's deploy history before the parent starts.
func newPinServer(t *testing.T, deployed map[string]time.Time) *pinServer {
	t.Helper()
	dir := t.TempDir()
	if deployed != nil {
		b, err := json.Marshal(persisted{State: swap.State{Record: swap.Record{Deployed: deployed}}})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600))
	}
	st, err := loadState(dir)
	require.NoError(t, err)
	store := &release.Store{Dir: dir}
	rt := newGatedRuntime()
	m := swap.New(rt, swap.Options{Save: st.save, Releases: storeReleases{store}, Keep: 1})
	require.NoError(t, m.Adopt(st.get().State, swap.Plan{}))
	s := &server{app: "hello", machine: m, releases: store, state: st, log: slog.New(slog.DiscardHandler)}
	return &pinServer{server: s, rt: rt, client: serveUnix(t, http.HandlerFunc(s.stageHandler))}
}

// serveUnix serves h on a unix socket and returns a client of it.
func serveUnix(t *testing.T, h http.Handler) *control.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	hs := httptest.NewUnstartedServer(h)
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	cl := control.NewClient("hello", sock)
	t.Cleanup(cl.Close)
	return cl
}

func (p *pinServer) stage(t *testing.T, version string, tgz []byte, force bool) error {
	t.Helper()
	_, err := p.client.Stage(t.Context(), "hello-"+version+".tar.gz", bytes.NewReader(tgz), control.UpgradeOptions{Force: force}, nil)
	return err
}

// swapAsync starts a swap to version and returns its outcome channel, once
// the new instance is starting.
func (p *pinServer) swapAsync(t *testing.T, version string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := p.machine.Swap(t.Context(), swap.Request{Release: version}, nil)
		done <- err
	}()
	select {
	case got := <-p.rt.started:
		require.Equal(t, version, got)
	case <-time.After(30 * time.Second):
		t.Fatal("the swap did not start its instance")
	}
	return done
}

func (p *pinServer) fileOf(t *testing.T, version string) string {
	t.Helper()
	rel, err := p.releases.Get(version)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(rel.Dir, "v"))
	require.NoError(t, err)
	return string(b)
}

// `stage --force` of the release a swap is starting is refused, saying it
// is in use, and the swap goes on with the files it chose. (Before the
// store's pins, the forced stage replaced them: only the active, draining
// and settling instances were checked, and not atomically.)
func TestStageForceOfAStartingSwapsTargetIsRefused(t *testing.T) {
	p := newPinServer(t, nil)
	orig, other := tarball(t, "original"), tarball(t, "replacement")
	require.NoError(t, p.stage(t, "2.0.0", orig, false))
	require.NoError(t, p.stage(t, "1.0.0", orig, false))

	done := p.swapAsync(t, "2.0.0")
	err := p.stage(t, "2.0.0", other, true)
	require.ErrorIs(t, err, control.ErrReleaseInUse)
	assert.ErrorContains(t, err, "release 2.0.0 is used by swap ")
	assert.ErrorContains(t, err, "it cannot be replaced now")
	assert.Equal(t, "original", p.fileOf(t, "2.0.0"))
	require.ErrorIs(t, p.releases.Remove("2.0.0"), release.ErrInUse, "nor removed")

	close(p.rt.proceed)
	require.NoError(t, <-done)
	rel, err := p.releases.Get("2.0.0")
	require.NoError(t, err)
	assert.Equal(t, sha(orig), rel.SHA256)
	assert.Equal(t, "original", p.fileOf(t, "2.0.0"))

	// Once active, it stays protected; a release nobody uses is replaced.
	err = p.stage(t, "2.0.0", other, true)
	require.ErrorIs(t, err, control.ErrReleaseInUse)
	assert.ErrorContains(t, err, "used by the active instance")
	require.NoError(t, p.stage(t, "1.0.0", other, true))
	assert.Equal(t, "replacement", p.fileOf(t, "1.0.0"))
}

// Retention never deletes what a swap is starting, even an old release
// that the policy would prune (a rollback to it).
func TestRetentionKeepsAStartingSwapsTarget(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newPinServer(t, map[string]time.Time{"1.0.0": t0, "2.0.0": t0.Add(time.Hour), "3.0.0": t0.Add(2 * time.Hour)})
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		require.NoError(t, p.stage(t, v, tarball(t, v), false))
	}
	require.NoError(t, p.machine.Adopt(p.state.get().State, swap.Plan{Keep: &swap.Instance{Unit: "hello@blue.service", Color: swap.Blue, Release: "3.0.0"}}))
	assert.Equal(t, []string{"1.0.0"}, p.machine.Record().Prunable([]string{"1.0.0", "2.0.0", "3.0.0"}, []string{"3.0.0", "2.0.0"}, 1),
		"the policy (keep 1, the active and the previous) would prune 1.0.0")

	done := p.swapAsync(t, "1.0.0")
	require.ErrorIs(t, p.releases.Remove("1.0.0"), release.ErrInUse)
	p.prune()
	assert.Equal(t, "1.0.0", p.fileOf(t, "1.0.0"), "retention during the swap kept its target")
	close(p.rt.proceed)
	require.NoError(t, <-done)
	assert.Equal(t, "1.0.0", p.machine.Status().Active.Release)
	assert.Equal(t, "1.0.0", p.fileOf(t, "1.0.0"))

	// Now 2.0.0 is beyond keep (active 1.0.0, previous 3.0.0). Pinned by
	// someone else (an upload's swap that just staged it), it is kept and
	// the log says why; once unpinned, retention removes it.
	var logs bytes.Buffer
	p.log = slog.New(slog.NewTextHandler(&logs, nil))
	unpin, err := p.releases.Pin("2.0.0", "swap x")
	require.NoError(t, err)
	p.prune()
	assert.Equal(t, "2.0.0", p.fileOf(t, "2.0.0"))
	assert.Contains(t, logs.String(), `msg="retention: kept an old release that is in use" release=2.0.0`)
	unpin()
	p.prune()
	_, err = p.releases.Get("2.0.0")
	require.ErrorIs(t, err, release.ErrNotFound)
	assert.Contains(t, logs.String(), `msg="retention: removed old release" release=2.0.0`)
}

// The unit an instance runs in: the exec shim before the release's
// command (the manifest's over the config's, relative to the release),
// the environment the SDK and the protocol document, and the config's
// timeouts and user.
func TestInstanceSpec(t *testing.T) {
	cfg := config.Config{App: "hello", Exec: []string{"bin/hello", "--port", "8080"}, User: config.DynamicUser,
		ReadyTimeout: config.Duration(7 * time.Second), DrainTimeout: config.Duration(9 * time.Second)}
	r := &instances{app: "hello", cfg: cfg, paths: config.Paths{Run: "/run/bd"}, self: "/usr/bin/beamdeploy"}
	inst := swap.Instance{Unit: r.unitName(swap.Green), Color: swap.Green, Release: "1.2.0"}
	rel := release.Release{Version: "1.2.0", Dir: "/var/lib/beamdeploy/hello/releases/1.2.0"}

	spec := r.spec(inst, rel)
	assert.Equal(t, "hello@green.service", inst.Unit)
	assert.Equal(t, []string{"/usr/bin/beamdeploy", "exec", "hello", "--", rel.Dir + "/bin/hello", "--port", "8080"}, spec.ExecStart)
	assert.Equal(t, "-"+rel.Dir, spec.WorkingDirectory, "a pruned release directory does not stop a restart")
	assert.True(t, spec.DynamicUser)
	assert.Equal(t, 7*time.Second, spec.TimeoutStart)
	assert.Equal(t, 9*time.Second, spec.TimeoutStop)
	assert.True(t, spec.Hardened)
	assert.False(t, spec.SharedTmp)
	assert.Equal(t, restartDelay, spec.RestartDelay)
	assert.Subset(t, spec.Environment, []string{"BEAM_DEPLOY=1", "BEAMDEPLOY_APP=hello", "BEAMDEPLOY_UNIT=hello@green.service",
		"BEAMDEPLOY_COLOR=green", "BEAMDEPLOY_RELEASE=1.2.0", "BEAMDEPLOY_SOCKET=/run/bd/hello/control.sock", "BEAMDEPLOY_DRAIN_TIMEOUT=9s"})
	assert.Contains(t, spec.Description, "hello 1.2.0 (green instance")
	assert.Equal(t, "1.2.0", releaseOf(units.Unit{Environment: spec.Environment}), "the release is read back from the unit")
	assert.Empty(t, releaseOf(units.Unit{Environment: []string{"OTHER=1"}}))
	assert.Equal(t, "broker", r.fdPath())

	rel.Command = []string{"run.sh", "serve"}
	assert.Equal(t, []string{rel.Dir + "/run.sh", "serve"}, r.command(rel), "the release's manifest decides")
	r.cfg.Exec = []string{"/tmp/app"}
	rel.Command = nil
	r.fds = []units.FD{{Num: 3, Name: "http"}}
	spec = r.spec(inst, rel)
	assert.Equal(t, "/tmp/app", spec.ExecStart[4], "an absolute command stays")
	assert.True(t, spec.SharedTmp, "a program under /tmp is not hidden by PrivateTmp")
	assert.Equal(t, r.fds, spec.FDs)
	assert.Equal(t, "systemd", r.fdPath())

	err := &StartError{Unit: inst.Unit, Err: swap.ErrStartFailed}
	assert.ErrorIs(t, err, swap.ErrStartFailed)
	assert.Equal(t, swap.ErrStartFailed.Error(), err.Error())

	killed, stopErr := r.Stop(t.Context(), swap.Instance{})
	assert.False(t, killed)
	assert.NoError(t, stopErr, "an instance that never got a unit has nothing to stop")
}

// What a restarted parent makes of a running instance unit: its colour
// from the name, its release from the unit's environment, or from the hot
// upgrade record when it was hot-upgraded since systemd started it.
func TestInstanceOfRunningUnit(t *testing.T) {
	paths := config.Paths{State: t.TempDir()}
	d := &daemon{opts: Options{App: "hello", Paths: paths}, log: slog.New(slog.DiscardHandler)}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := units.Unit{Name: "hello@blue.service", MainPID: 42, InvocationID: "abc", Restarts: 1, Since: since,
		Environment: []string{"BEAMDEPLOY_RELEASE=1.0.0"}}
	assert.Equal(t, swap.Instance{Unit: u.Name, Color: swap.Blue, Release: "1.0.0", PID: 42, InvocationID: "abc", Restarts: 1, Since: since},
		d.instanceOf(u))

	// The hot upgrade record, as README's "Files and their modes" lists it.
	record := filepath.Join(paths.StateDir("hello"), "hot", u.Name+".json")
	require.NoError(t, os.MkdirAll(filepath.Dir(record), 0o755))
	require.NoError(t, os.WriteFile(record, []byte(`{"unit":"hello@blue.service","release":"1.1.0","argv":["/bin/true"]}`), 0o644))
	assert.Equal(t, "1.1.0", d.instanceOf(u).Release, "hot-upgraded since it started")

	require.NoError(t, os.WriteFile(record, []byte("{"), 0o644))
	assert.Equal(t, "1.0.0", d.instanceOf(u).Release, "an unreadable record: the unit's own release")

	foreign := units.Unit{Name: "hello@red.service"}
	assert.Empty(t, d.instanceOf(foreign).Color)
}

// The control and broker sockets replace a stale socket file and get the
// mode asked for.
func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	require.NoError(t, os.WriteFile(path, nil, 0o600)) // left by a parent that died
	ln, err := listenUnix(path, 0o666)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm())
	require.NoError(t, ln.Close())

	_, err = listenUnix(filepath.Join(t.TempDir(), "missing", "c.sock"), 0o666)
	assert.ErrorContains(t, err, "listen on")
}

// The authority tracks the instances of the machine it was given, and
// instances asking who they are wait until the parent adopted them.
func TestAuthorityTracksTheMachine(t *testing.T) {
	m := swap.New(instantRuntime{}, swap.Options{})
	au := newAuthority("hello", config.RunAs{}, nil, m)
	assert.Empty(t, au.tracked())
	blue := &swap.Instance{Unit: "hello@blue.service", Color: swap.Blue, Release: "1.0.0", InvocationID: "abc"}
	require.NoError(t, m.Adopt(swap.State{}, swap.Plan{Keep: blue}))
	tr := au.tracked()
	require.Len(t, tr, 1)
	assert.Equal(t, "hello@blue.service", tr[0].Unit)
	select {
	case <-au.ready:
		t.Fatal("ready before the parent adopted its instances")
	default:
	}
	au.adopted()
	au.adopted() // twice is fine
	<-au.ready
	assert.True(t, au.mayBe(12345), "a root app's instances may have any uid")
}

// After a successful swap the parent applies retention: with keep 1 it
// removes deployed releases beyond the active and the previous one, and
// keeps what was only staged.
func TestRetentionAfterSwaps(t *testing.T) {
	a := newAPIServerKeeping(t, instantRuntime{}, 1)
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		_, err := a.upgrade(t, v, tarball(t, v), "")
		require.NoError(t, err)
	}
	staged, err := storeReleases{a.releases}.Staged()
	require.NoError(t, err)
	assert.Equal(t, []string{"1.1.0", "1.2.0"}, staged, "1.0.0 was pruned after the third swap")
	assert.Equal(t, a.releases.Dir, filepath.Dir(filepath.Dir(mustGet(t, a.releases, "1.2.0").Dir)))
	assert.Empty(t, storeReleases{a.releases}.Checksum("1.0.0"), "a pruned release has no checksum")
	assert.Len(t, storeReleases{a.releases}.Checksum("1.2.0"), 64)

	broken := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(broken, "releases"), nil, 0o600))
	_, err = storeReleases{&release.Store{Dir: broken}}.Staged()
	assert.ErrorContains(t, err, "list releases", "a store that cannot be listed")
}

func mustGet(t *testing.T, s *release.Store, v string) release.Release {
	t.Helper()
	r, err := s.Get(v)
	require.NoError(t, err)
	return r
}

// After every swap the parent tells systemd what it serves (the line
// `systemctl status APP` shows), over NOTIFY_SOCKET.
func TestSwappedNotifiesStatus(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	m := swap.New(instantRuntime{}, swap.Options{})
	res, err := m.Swap(t.Context(), swap.Request{Release: "1.0.0"}, nil)
	require.NoError(t, err)
	d := &daemon{opts: Options{App: "hello"}, machine: m, log: slog.New(slog.DiscardHandler)}
	d.swapped(res)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	assert.Regexp(t, `^STATUS=serving hello 1\.0\.0 on hello@blue\.service \(pid \d+\); last swap [0-9.]+ s ok$`, string(buf[:n]))

	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	d.notify("READY=1") // a manager that went away is logged, not fatal
}

// raw sends a request to a's control socket as it is, for the malformed
// ones the client never sends; it returns the status and the error code.
func (a *auditServer) raw(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.sock)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://parent"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var e control.Error
	_ = json.NewDecoder(resp.Body).Decode(&e) // not every answer has a body
	return resp.StatusCode, e.Code
}

// Malformed requests are refused with 400 and bad_request before anything
// is done; a store that cannot be listed answers 500.
func TestAPIRefusesMalformedRequests(t *testing.T) {
	a := newAuditServer(t)
	for _, tt := range []struct{ method, path, body string }{
		{http.MethodPost, control.PathSwap, "{"},
		{http.MethodPost, control.PathSwap, `{"release": ""}`},
		{http.MethodPost, control.PathLock, "not json"},
		{http.MethodPost, control.PathHotReport, "[]"},
	} {
		status, code := a.raw(t, tt.method, tt.path, tt.body)
		assert.Equal(t, http.StatusBadRequest, status, "%s %s %q", tt.method, tt.path, tt.body)
		assert.Equal(t, control.CodeBadRequest, code, "%s %s %q", tt.method, tt.path, tt.body)
	}
	_, err := a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	require.ErrorIs(t, err, control.ErrReleaseNotFound)
	assert.ErrorContains(t, err, "nothing to reload: no release is staged; upload one with: beamdeploy upgrade hello TARBALL")

	require.NoError(t, os.WriteFile(filepath.Join(a.dir, "releases"), nil, 0o600)) // not a directory
	status, code := a.raw(t, http.MethodGet, control.PathReleases, "")
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Equal(t, control.CodeInternal, code)
}

// A client that stops waiting for the cutover ends its request; the swap
// goes on.
func TestCutoverWaitEndsWithItsClient(t *testing.T) {
	rt := newGatedRuntime()
	a := newAPIServer(t, rt)
	swapped := make(chan error, 1)
	go func() {
		_, err := a.upgrade(t, "1.0.0", tarball(t, "1.0.0"), "")
		swapped <- err
	}()
	<-rt.started
	a.as(4242, access{instance: true, unit: "hello@blue.service"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := a.client.WaitCutover(ctx, "hello@blue.service")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(rt.proceed)
	require.NoError(t, <-swapped)
}

// A state file that is not JSON stops the parent, saying what to do.
func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o600))
	_, err := loadState(dir)
	assert.ErrorContains(t, err, "move it aside to start afresh")
	assert.Empty(t, relCommand([]string{"/usr/bin/app"}), "an absolute command is no release's")
	assert.Equal(t, "bin/app", relCommand([]string{"bin/app", "-v"}))
}
