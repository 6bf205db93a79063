package parent

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/release"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// instantRuntime's instances are ready at once.
type instantRuntime struct{}

func (instantRuntime) Start(_ context.Context, c swap.Color, rel string) (swap.Instance, error) {
	return swap.Instance{Unit: "hello@" + string(c) + ".service", Color: c, Release: rel, PID: 1}, nil
}
func (instantRuntime) Stop(context.Context, swap.Instance) (bool, error) { return false, nil }
func (instantRuntime) Check(context.Context, swap.Instance) error        { return nil }
func (instantRuntime) Handover(_ context.Context, i swap.Instance, rel string) (swap.Instance, error) {
	i.Release = rel
	return i, nil
}

// auditServer is a parent's whole control API (handler) over a unix
// socket, with a real release store, state file and swap machine; every
// connection's peer is whatever peer holds.
type auditServer struct {
	*server
	dir    string
	sock   string // where it serves the control API
	peer   atomic.Pointer[verdict]
	client *control.Client
}

func newAuditServer(t *testing.T) *auditServer { return newAPIServer(t, instantRuntime{}) }

// newAPIServer is newAuditServer with instances run by rt.
func newAPIServer(t *testing.T, rt swap.Runtime) *auditServer { return newAPIServerKeeping(t, rt, 5) }

// newAPIServerKeeping is newAPIServer with retention keeping keep releases.
func newAPIServerKeeping(t *testing.T, rt swap.Runtime, keep int) *auditServer {
	t.Helper()
	dir := t.TempDir()
	st, err := loadState(dir)
	require.NoError(t, err)
	store := &release.Store{Dir: dir}
	m := swap.New(rt, swap.Options{Save: st.save, Releases: storeReleases{store}, Keep: keep})
	a := &auditServer{dir: dir, server: &server{app: "hello", machine: m, releases: store, state: st, log: slog.New(slog.DiscardHandler), hot: &hotBoard{}}}
	a.peer.Store(&verdict{peer: peer{UID: os.Getuid(), PID: 1}, access: access{deploy: true}})
	a.sock = filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", a.sock)
	require.NoError(t, err)
	hs := httptest.NewUnstartedServer(a.handler())
	hs.Listener = ln
	hs.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, peerKey{}, *a.peer.Load())
	}
	hs.Start()
	t.Cleanup(hs.Close)
	a.client = control.NewClient("hello", a.sock)
	t.Cleanup(a.client.Close)
	return a
}

// as makes the next connections' peer uid with access acc.
func (a *auditServer) as(uid int, acc access) {
	a.peer.Store(&verdict{peer: peer{UID: uid, PID: 1}, access: acc})
	a.client.Close() // idle connections keep their old peer
}

func (a *auditServer) upgrade(t *testing.T, version string, tgz []byte, message string) (control.Result, error) {
	t.Helper()
	a.client.Message = message
	defer func() { a.client.Message = "" }()
	return a.client.Upgrade(t.Context(), "hello-"+version+".tar.gz", bytes.NewReader(tgz), control.UpgradeOptions{}, nil)
}

func me(t *testing.T) (string, int) {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	uid, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)
	return u.Username, uid
}

// Every swap records who asked (name and uid of the peer), its message and
// the release's checksum; the history keeps them across parent restarts.
func TestSwapsRecordWhoAskedAndTheChecksum(t *testing.T) {
	a := newAuditServer(t)
	name, uid := me(t)
	v1, v2 := tarball(t, "one"), tarball(t, "two")
	res, err := a.upgrade(t, "1.0.0", v1, "first deploy")
	require.NoError(t, err)
	assert.Equal(t, "upgrade", res.Command)
	assert.Equal(t, name, res.User)
	require.NotNil(t, res.UID)
	assert.Equal(t, uid, *res.UID)
	assert.Equal(t, "first deploy", res.Message)
	assert.Equal(t, sha(v1), res.SHA256)

	_, err = a.upgrade(t, "2.0.0", v2, "")
	require.NoError(t, err)
	_, err = a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	require.NoError(t, err)
	a.client.Message = "back to one"
	res, err = a.client.Rollback(t.Context(), "1.0.0", control.SwapOptions{}, nil)
	a.client.Message = ""
	require.NoError(t, err)
	assert.Equal(t, "rollback", res.Command)
	assert.Equal(t, sha(v1), res.SHA256)

	st, err := loadState(a.dir) // what the next parent finds
	require.NoError(t, err)
	h := st.get().History
	require.Len(t, h, 4)
	type row struct{ cmd, rel, msg, sum string }
	var got []row
	for _, r := range h {
		require.NotNil(t, r.UID, r.ID)
		assert.Equal(t, uid, *r.UID)
		assert.Equal(t, name, r.User)
		got = append(got, row{r.Command, r.Release, r.Message, r.SHA256})
	}
	assert.Equal(t, []row{{"upgrade", "1.0.0", "first deploy", sha(v1)}, {"upgrade", "2.0.0", "", sha(v2)},
		{"reload", "2.0.0", "", sha(v2)}, {"rollback", "1.0.0", "back to one", sha(v1)}}, got)

	a.client.Message = "two\nlines"
	_, err = a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	a.client.Message = ""
	require.ErrorIs(t, err, control.ErrBadRequest)
	assert.ErrorContains(t, err, "one line")
}

// A locked app refuses every swap, before staging anything, with the
// lock's message and who took it; stage still works; the lock is in the
// status and in the state file; unlock lets swaps through again.
func TestLockRefusesSwapsUntilUnlocked(t *testing.T) {
	a := newAuditServer(t)
	name, uid := me(t)
	_, err := a.upgrade(t, "1.0.0", tarball(t, "one"), "")
	require.NoError(t, err)

	ls, err := a.client.Lock(t.Context(), "migration running")
	require.NoError(t, err)
	require.NotNil(t, ls.Lock)
	assert.Equal(t, control.Lock{Message: "migration running", User: name, UID: uid, Since: ls.Lock.Since}, *ls.Lock)

	_, err = a.upgrade(t, "2.0.0", tarball(t, "two"), "")
	require.ErrorIs(t, err, control.ErrLocked)
	assert.ErrorContains(t, err, "hello is locked by "+control.Who(name, uid)+" since ")
	assert.ErrorContains(t, err, ": migration running; nothing was staged or started; unlock with: beamdeploy unlock hello")
	_, err = a.releases.Get("2.0.0")
	require.ErrorIs(t, err, release.ErrNotFound, "nothing staged")

	_, err = a.client.HotUpgrade(t.Context(), "hello-2.0.0.tar.gz", bytes.NewReader(tarball(t, "two")), control.UpgradeOptions{}, nil)
	require.ErrorIs(t, err, control.ErrLocked)
	_, err = a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	require.ErrorIs(t, err, control.ErrLocked)
	_, err = a.client.Rollback(t.Context(), "1.0.0", control.SwapOptions{}, nil)
	require.ErrorIs(t, err, control.ErrLocked)
	_, err = a.client.Swap(t.Context(), "1.0.0", nil)
	require.ErrorIs(t, err, control.ErrLocked)
	var ce *control.Error
	require.ErrorAs(t, err, &ce)
	require.NotNil(t, ce.Lock)
	assert.Equal(t, "migration running", ce.Lock.Message)

	_, err = a.client.Stage(t.Context(), "hello-2.0.0.tar.gz", bytes.NewReader(tarball(t, "two")), control.UpgradeOptions{}, nil)
	require.NoError(t, err, "stage changes nothing that serves")
	st, err := a.client.Status(t.Context())
	require.NoError(t, err)
	require.NotNil(t, st.Lock)
	assert.Equal(t, "migration running", st.Lock.Message)
	assert.Len(t, st.History, 1, "refused swaps are no swaps")
	assert.Equal(t, "1.0.0", st.Active.Release)

	_, err = a.client.Lock(t.Context(), "migration 2 of 3")
	require.NoError(t, err, "locking again")
	_, err = a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	require.ErrorContains(t, err, "migration 2 of 3")
	saved, err := loadState(a.dir)
	require.NoError(t, err)
	require.NotNil(t, saved.get().Lock, "the lock is in state.json")
	assert.Equal(t, "migration 2 of 3", saved.get().Lock.Message)

	ls, err = a.client.Unlock(t.Context())
	require.NoError(t, err)
	assert.Nil(t, ls.Lock)
	_, err = a.client.Unlock(t.Context())
	require.NoError(t, err, "unlocking an unlocked app")
	res, err := a.client.Reload(t.Context(), control.SwapOptions{}, nil)
	require.NoError(t, err)
	assert.Equal(t, "2.0.0", res.Release)
	saved, err = loadState(a.dir)
	require.NoError(t, err)
	assert.Nil(t, saved.get().Lock)
}

// Only deployers lock and unlock; a lock says why.
func TestLockNeedsADeployerAndAMessage(t *testing.T) {
	a := newAuditServer(t)
	a.as(61200, access{instance: true, unit: "hello@blue.service"})
	_, err := a.client.Lock(t.Context(), "mine")
	require.ErrorIs(t, err, control.ErrPermissionDenied)
	_, err = a.client.Unlock(t.Context())
	require.ErrorIs(t, err, control.ErrPermissionDenied)
	a.as(0, access{deploy: true})
	_, err = a.client.Lock(t.Context(), "")
	require.ErrorIs(t, err, control.ErrBadRequest)
	assert.ErrorContains(t, err, "beamdeploy lock hello -m TEXT")
	_, err = a.client.Lock(t.Context(), string(bytes.Repeat([]byte("x"), control.MaxMessage+1)))
	require.ErrorIs(t, err, control.ErrBadRequest)
	assert.Nil(t, a.state.get().Lock)
	ls, err := a.client.Lock(t.Context(), "ok")
	require.NoError(t, err)
	assert.Equal(t, "root", ls.Lock.User)
	assert.Equal(t, 0, ls.Lock.UID)
}

// A state file written before audits and locks loads: no lock, history
// entries without user, uid, message or checksum.
func TestOldStateFileLoads(t *testing.T) {
	dir := t.TempDir()
	old := `{"active":{"unit":"hello@blue.service","color":"blue","release":"1.0.0","since":"2026-01-01T00:00:00Z"},
"history":[{"id":"s1","kind":"blue-green","release":"1.0.0","started":"2026-01-01T00:00:00Z","ready_ns":1,"stop_ns":0,"total_ns":2,"ok":true}]}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.json"), []byte(old), 0o600))
	st, err := loadState(dir)
	require.NoError(t, err)
	p := st.get()
	assert.Nil(t, p.Lock)
	require.Len(t, p.History, 1)
	assert.Nil(t, p.History[0].UID)
	assert.Empty(t, p.History[0].User+p.History[0].Message+p.History[0].SHA256)
}
