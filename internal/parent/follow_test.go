package parent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/swap"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newFollowServer serves the swap endpoints and the wait endpoint of a
// server whose instances get ready only once the test closes rt.proceed.
func newFollowServer(t *testing.T) *pinServer {
	t.Helper()
	p := newPinServer(t, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+control.PathUpgrade, p.upgrade)
	mux.HandleFunc("POST "+control.PathReload, p.reload)
	mux.HandleFunc("GET "+control.PathWait, p.waitHandler)
	p.client = serveUnix(t, mux)
	return p
}

// follower runs Wait for id in the background.
type follower struct {
	done     chan struct{}
	mu       sync.Mutex // guards messages
	messages []string
	res      control.Result
	err      error
}

func follow(ctx context.Context, cl *control.Client, id string) *follower {
	f := &follower{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.res, f.err = cl.Wait(ctx, id, func(p control.Progress) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.messages = append(f.messages, p.Message)
		})
	}()
	return f
}

func (f *follower) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the follower did not get the swap's end")
	}
}

func (f *follower) saw(substr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.messages {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

func started(t *testing.T, p *pinServer, version string) {
	t.Helper()
	select {
	case got := <-p.rt.started:
		require.Equal(t, version, got)
	case <-time.After(30 * time.Second):
		t.Fatal("the swap did not start its instance")
	}
}

// A detached upgrade returns once its upload is staged, runs on after the
// client's connections are gone, and any number of followers (before and
// after its end) get its progress and result.
func TestDetachedUpgradeRunsOnAndIsFollowed(t *testing.T) {
	p := newFollowServer(t)
	tgz := tarball(t, "one")
	res, err := p.client.Upgrade(t.Context(), "hello-1.0.0.tar.gz", bytes.NewReader(tgz),
		control.UpgradeOptions{SHA256: sha(tgz), SwapOptions: control.SwapOptions{Detach: true}}, nil)
	require.NoError(t, err)
	assert.Equal(t, control.TypeDetached, res.MessageType)
	assert.Equal(t, "1.0.0", res.Release)
	require.NotEmpty(t, res.ID)
	p.client.Close() // the connection that started it is gone
	started(t, p, "1.0.0")

	early := follow(t.Context(), p.client, res.ID)
	running := follow(t.Context(), p.client, "") // the running swap
	require.Eventually(t, func() bool { return early.saw("starting blue instance") && running.saw("starting blue instance") },
		30*time.Second, 10*time.Millisecond, "followers get what happened so far")
	assert.True(t, early.saw("staged release 1.0.0"))
	close(p.rt.proceed)
	for _, f := range []*follower{early, running} {
		f.wait(t)
		require.NoError(t, f.err)
		assert.Equal(t, control.TypeResult, f.res.MessageType)
		assert.True(t, f.res.OK)
		assert.Equal(t, res.ID, f.res.ID)
		assert.True(t, f.saw("ready in"))
	}
	assert.Equal(t, "1.0.0", p.machine.Status().Active.Release)

	late := follow(t.Context(), p.client, res.ID)
	late.wait(t)
	require.NoError(t, late.err)
	assert.Equal(t, res.ID, late.res.ID)
	assert.True(t, late.saw("staged release 1.0.0"), "an ended swap is replayed")
	last := follow(t.Context(), p.client, "")
	last.wait(t)
	require.NoError(t, last.err)
	assert.Equal(t, res.ID, last.res.ID, "without an id and nothing running: the last swap")
}

// A swap whose client goes away before the cutover rolls back, and its
// followers get the same error as the client would have.
func TestVanishedClientRollsBackAndFollowersSeeIt(t *testing.T) {
	p := newFollowServer(t)
	tgz := tarball(t, "one")
	ctx, cancel := context.WithCancel(t.Context())
	upErr := make(chan error, 1)
	go func() {
		_, err := p.client.Upgrade(ctx, "hello-1.0.0.tar.gz", bytes.NewReader(tgz), control.UpgradeOptions{}, nil)
		upErr <- err
	}()
	started(t, p, "1.0.0")
	f := follow(t.Context(), p.client, "")
	require.Eventually(t, func() bool { return f.saw("starting blue instance") }, 30*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-upErr, context.Canceled)
	f.wait(t)
	require.ErrorIs(t, f.err, swap.ErrRolledBack)
	assert.ErrorContains(t, f.err, "context canceled")
	var ce *control.Error
	require.ErrorAs(t, f.err, &ce)
	require.NotNil(t, ce.Result)
	assert.False(t, ce.Result.OK)
	assert.Nil(t, p.machine.Status().Active)
}

// A detached swap whose instance fails to start reports the rollback to
// its followers.
func TestDetachedFailedSwapIsRolledBack(t *testing.T) {
	p := newFollowServer(t)
	p.rt.startErr = errors.New("exited with status 1")
	close(p.rt.proceed)
	tgz := tarball(t, "one")
	res, err := p.client.Upgrade(t.Context(), "hello-1.0.0.tar.gz", bytes.NewReader(tgz),
		control.UpgradeOptions{SwapOptions: control.SwapOptions{Detach: true}}, nil)
	require.NoError(t, err)
	require.Equal(t, control.TypeDetached, res.MessageType)
	f := follow(t.Context(), p.client, res.ID)
	f.wait(t)
	require.ErrorIs(t, f.err, swap.ErrRolledBack)
	assert.ErrorContains(t, f.err, "exited with status 1")
}

// What cannot detach is answered like without --detach: an upload that
// is refused, a swap while another runs, a reload with nothing to swap to.
func TestDetachRefusals(t *testing.T) {
	p := newFollowServer(t)
	detach := control.UpgradeOptions{SwapOptions: control.SwapOptions{Detach: true}}
	_, err := p.client.Upgrade(t.Context(), "hello-1.0.0.tar.gz", strings.NewReader("not a tarball"), detach, nil)
	require.ErrorIs(t, err, control.ErrInvalidRelease)
	_, err = p.client.Reload(t.Context(), control.SwapOptions{Detach: true}, nil)
	require.ErrorIs(t, err, control.ErrReleaseNotFound)

	res, err := p.client.Upgrade(t.Context(), "hello-1.0.0.tar.gz", bytes.NewReader(tarball(t, "one")), detach, nil)
	require.NoError(t, err)
	started(t, p, "1.0.0")
	_, err = p.client.Reload(t.Context(), control.SwapOptions{Detach: true}, nil)
	require.ErrorIs(t, err, swap.ErrSwapInProgress)
	close(p.rt.proceed)
	f := follow(t.Context(), p.client, res.ID)
	f.wait(t)
	require.NoError(t, f.err)
}

// Waiting for a swap nobody knows is an error that says so; a swap
// recorded before the parent started is answered from the history.
func TestWaitUnknownAndRecordedSwaps(t *testing.T) {
	p := newFollowServer(t)
	_, err := p.client.Wait(t.Context(), "", nil)
	require.ErrorIs(t, err, control.ErrNotFound)
	assert.ErrorContains(t, err, "hello has not run a swap yet")

	ok := swap.Result{ID: "20260101T000000-aaaa", Release: "1.0.0", OK: true}
	failed := swap.Result{ID: "20260101T000100-bbbb", Release: "1.1.0", Error: "swap rolled back during starting: it crashed"}
	// As a restarted parent adopts them from its state file.
	require.NoError(t, p.machine.Adopt(swap.State{Last: &failed, Record: swap.Record{History: []swap.Result{ok, failed}}}, swap.Plan{}))

	_, err = p.client.Wait(t.Context(), "20260101T000000-nope", nil)
	require.ErrorIs(t, err, control.ErrNotFound)
	assert.ErrorContains(t, err, "no swap 20260101T000000-nope")
	res, err := p.client.Wait(t.Context(), ok.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, "1.0.0", res.Release)
	_, err = p.client.Wait(t.Context(), failed.ID, nil)
	require.ErrorIs(t, err, swap.ErrRolledBack)
	assert.EqualError(t, err, failed.Error)
}

// Staging progress is coalesced: a follower gets every other event and
// the latest staging progress.
func TestFollowedCoalescesStagingProgress(t *testing.T) {
	f := newFollowed()
	f.add(swap.Event{Message: "staging: 1 MB"}, true)
	f.add(swap.Event{Message: "staging: 2 MB"}, true)
	f.add(swap.Event{Message: "staged release 1.0.0"}, false)
	f.add(swap.Event{Message: "starting blue instance"}, false)
	f.end(control.Result{MessageType: control.TypeResult, Result: swap.Result{ID: "x", OK: true}})
	rec := httptest.NewRecorder()
	f.follow(t.Context(), &stream{w: rec})
	var got []string
	err := control.ReadStream(rec.Body, control.TypeResult, func(p control.Progress) { got = append(got, p.Message) }, func([]byte) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, []string{"staging: 2 MB", "staged release 1.0.0", "starting blue instance"}, got)
}
