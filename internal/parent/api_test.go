package parent

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/handoff"
)

// withHandoff gives a its own handoff store.
func withHandoff(t *testing.T, a *auditServer) {
	t.Helper()
	h, err := handoff.Open(filepath.Join(t.TempDir(), "handoff.json"), handoff.Limits{})
	require.NoError(t, err)
	a.handoff = h
}

// TestHandoffAPI: the handoff endpoints as the control client meets them,
// an instance of the app calling: every answer and error code.
func TestHandoffAPI(t *testing.T) {
	a := newAuditServer(t)
	withHandoff(t, a)
	a.as(4242, access{instance: true, unit: "hello@blue.service"})
	ctx := t.Context()

	require.NoError(t, a.client.HandoffPut(ctx, "sessions/eu", []byte("v1")))
	require.NoError(t, a.client.HandoffPut(ctx, "counter", []byte("17")))
	v, err := a.client.HandoffGet(ctx, "sessions/eu")
	require.NoError(t, err)
	assert.Equal(t, "v1", string(v), "a key with a slash is one key")
	all, err := a.client.HandoffList(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"sessions/eu": []byte("v1"), "counter": []byte("17")}, all)

	require.NoError(t, a.client.HandoffDelete(ctx, "counter"))
	_, err = a.client.HandoffGet(ctx, "counter")
	assert.ErrorIs(t, err, control.ErrNotFound)
	assert.ErrorIs(t, a.client.HandoffDelete(ctx, "counter"), control.ErrNotFound)

	assert.ErrorIs(t, a.client.HandoffPut(ctx, "a b", []byte("x")), control.ErrBadRequest, "a key with a space")
	err = a.client.HandoffPut(ctx, "big", bytes.Repeat([]byte("x"), handoff.DefaultMaxValueLen+1))
	assert.ErrorIs(t, err, control.ErrLimit, "a value over the store's limit")
	err = a.client.HandoffPut(ctx, "huge", bytes.Repeat([]byte("x"), maxHandoffBody+1))
	assert.ErrorIs(t, err, control.ErrLimit, "a body over the request's limit")
	all, err = a.client.HandoffList(ctx)
	require.NoError(t, err)
	assert.Len(t, all, 1, "refused writes change nothing")

	a.as(4243, access{}) // any other local user
	_, err = a.client.HandoffGet(ctx, "sessions/eu")
	assert.ErrorIs(t, err, control.ErrPermissionDenied)
	assert.ErrorIs(t, a.client.HandoffPut(ctx, "sessions/eu", []byte("mine")), control.ErrPermissionDenied)
	a.as(0, access{deploy: true})
	v, err = a.client.HandoffGet(ctx, "sessions/eu")
	require.NoError(t, err)
	assert.Equal(t, "v1", string(v), "the stranger's write was refused")
}

// TestPeersAndCutoverAPI: the peer query and the cutover wait around a
// real swap machine whose new instance is slow to become ready.
func TestPeersAndCutoverAPI(t *testing.T) {
	rt := newGatedRuntime()
	a := newAPIServer(t, rt)
	ctx := t.Context()
	close(rt.proceed)
	_, err := a.upgrade(t, "1.0.0", tarball(t, "1.0.0"), "")
	require.NoError(t, err)
	<-rt.started
	old := a.machine.Status().Active.Unit

	a.as(4242, access{instance: true, unit: old})
	p, err := a.client.Peers(ctx, old)
	require.NoError(t, err)
	assert.Equal(t, control.Peers{MessageType: control.TypePeers, Unit: old}, p, "no swap yet: no peers")
	p, err = a.client.WaitCutover(ctx, old)
	require.NoError(t, err, "no swap runs: the cutover wait answers at once")
	assert.Empty(t, p.Incoming)

	slow := newGatedRuntime()
	b := newAPIServer(t, slow)
	close(slow.proceed)
	_, err = b.upgrade(t, "1.0.0", tarball(t, "1.0.0"), "")
	require.NoError(t, err)
	<-slow.started
	blue := b.machine.Status().Active.Unit
	slow.proceed = make(chan struct{}) // the next instance waits
	swapped := make(chan error, 1)
	go func() {
		_, err := b.upgrade(t, "1.1.0", tarball(t, "1.1.0"), "")
		swapped <- err
	}()
	<-slow.started
	b.as(4242, access{instance: true, unit: blue})
	cut := make(chan control.Peers, 1)
	go func() {
		p, err := b.client.WaitCutover(ctx, blue)
		assert.NoError(t, err)
		cut <- p
	}()
	assert.Never(t, func() bool { return len(cut) > 0 }, 300*time.Millisecond, 20*time.Millisecond,
		"the cutover wait answers only once the swap is over")
	close(slow.proceed)
	require.NoError(t, <-swapped)
	green := b.machine.Status().Active.Unit
	require.NotEqual(t, blue, green)
	select {
	case p := <-cut:
		assert.Equal(t, blue, p.Unit)
	case <-time.After(30 * time.Second):
		t.Fatal("the cutover wait did not answer after the swap")
	}
	b.as(4243, access{instance: true, unit: green})
	p, err = b.client.Peers(ctx, green)
	require.NoError(t, err)
	assert.Equal(t, blue, p.Outgoing, "the new instance names the one it replaced")

	b.as(4244, access{})
	_, err = b.client.Peers(ctx, green)
	assert.ErrorIs(t, err, control.ErrPermissionDenied)
}

// TestReleasesAPI: the state of each staged release as releases shows it.
func TestReleasesAPI(t *testing.T) {
	a := newAuditServer(t)
	ctx := t.Context()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		_, err := a.upgrade(t, v, tarball(t, v), "")
		require.NoError(t, err)
	}
	_, err := a.client.Stage(ctx, "hello-1.2.0.tar.gz", bytes.NewReader(tarball(t, "1.2.0")), control.UpgradeOptions{}, nil)
	require.NoError(t, err)
	rels, err := a.client.Releases(ctx)
	require.NoError(t, err)
	state := map[string]string{}
	for _, r := range rels.Releases {
		state[r.Version] = r.State
		assert.Len(t, r.SHA256, 64, r.Version)
		assert.Equal(t, r.State != StateAvailable, !r.DeployedAt.IsZero(), "%s: deployed releases say when", r.Version)
	}
	assert.Equal(t, map[string]string{"1.0.0": StatePrevious, "1.1.0": StateActive, "1.2.0": StateAvailable}, state)

	_, err = a.client.Stage(ctx, "hello-1.2.0.tar.gz", bytes.NewReader(tarball(t, "other content")), control.UpgradeOptions{}, nil)
	assert.ErrorIs(t, err, control.ErrReleaseExists, "the same version with other content")
	assert.True(t, strings.Contains(err.Error(), "--force") || strings.Contains(err.Error(), "different"), err.Error())
	_, err = a.client.Stage(ctx, "hello-1.3.0.tar.gz", bytes.NewReader(tarball(t, "1.3.0")), control.UpgradeOptions{SHA256: strings.Repeat("0", 64)}, nil)
	assert.ErrorIs(t, err, control.ErrChecksumMismatch)
	_, err = a.client.Swap(ctx, "9.9.9", nil)
	assert.ErrorIs(t, err, control.ErrReleaseNotFound)
	_, err = a.client.Stage(ctx, "hello-1.4.0.tar.gz", strings.NewReader("not a tarball"), control.UpgradeOptions{}, nil)
	assert.ErrorIs(t, err, control.ErrInvalidRelease)
}

// TestRollbackAndHotRefusalsAPI: rollback's targets and the hot upgrades
// refused before any process is touched, as the CLI meets them.
func TestRollbackAndHotRefusalsAPI(t *testing.T) {
	a := newAuditServer(t)
	ctx := t.Context()
	_, err := a.client.HotUpgrade(ctx, "hello-1.0.0.tar.gz", bytes.NewReader(tarball(t, "1.0.0")), control.UpgradeOptions{}, nil)
	require.ErrorIs(t, err, control.ErrHotUnsupported, "nothing runs to hot-upgrade")
	assert.Contains(t, err.Error(), "no active instance")

	_, err = a.client.Rollback(ctx, "", control.SwapOptions{}, nil)
	require.ErrorIs(t, err, control.ErrReleaseNotFound, "nothing deployed: no previous release")
	assert.Contains(t, err.Error(), "no previous release")

	for _, v := range []string{"1.0.0", "1.1.0"} {
		_, err := a.upgrade(t, v, tarball(t, v), "")
		require.NoError(t, err)
	}
	_, err = a.client.HotUpgrade(ctx, "hello-1.2.0.tar.gz", bytes.NewReader(tarball(t, "1.2.0")), control.UpgradeOptions{}, nil)
	require.ErrorIs(t, err, control.ErrHotUnsupported, "releases without a compat key")
	assert.Contains(t, err.Error(), `declares no "compat" key`)
	assert.Contains(t, err.Error(), "beamdeploy upgrade hello", "says what to do instead")
	assert.Equal(t, "1.1.0", a.machine.Status().Active.Release, "a refused hot upgrade changes nothing")

	_, err = a.client.Rollback(ctx, "9.9.9", control.SwapOptions{}, nil)
	require.ErrorIs(t, err, control.ErrReleaseNotFound)
	res, err := a.client.Rollback(ctx, "", control.SwapOptions{}, nil)
	require.NoError(t, err)
	assert.Equal(t, "1.0.0", res.Release, "rollback goes to the previous release")
	assert.Equal(t, "1.0.0", a.machine.Status().Active.Release)

	_, err = a.client.Upgrade(ctx, "hello.zip", bytes.NewReader(tarball(t, "x")), control.UpgradeOptions{}, nil)
	require.ErrorIs(t, err, control.ErrInvalidRelease, "a file name without a version")

	a.as(4242, access{instance: true, unit: "hello@blue.service"})
	_, err = a.client.Rollback(ctx, "", control.SwapOptions{}, nil)
	assert.ErrorIs(t, err, control.ErrPermissionDenied, "an instance may not deploy")
}

func TestBrokerRefusal(t *testing.T) {
	err := brokerRefusal("hello", verdict{peer: peer{UID: 1001, PID: 77, Unit: "user@1001.service"}}, nil)
	assert.ErrorContains(t, err, "permission denied: uid 1001 (pid 77, unit user@1001.service) is not an instance of hello")
	err = brokerRefusal("hello", verdict{}, context.DeadlineExceeded)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "refused by the parent of hello")
}
