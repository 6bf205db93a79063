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
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
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
