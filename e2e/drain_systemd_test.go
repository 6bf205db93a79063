package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

// keptConn is a client with one keep-alive connection of its own.
type keptConn struct {
	client *http.Client
	url    string
}

type keptAnswer struct {
	release        string
	reused, closed bool
}

// post sends a POST the client does not retry and says whether it went out
// on the kept connection and was answered with Connection: close.
func (k *keptConn) post(ctx context.Context) (keptAnswer, error) {
	var a keptAnswer
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
	body := []byte("kept")
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, k.url, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return a, err
	}
	req.ContentLength = int64(len(body))
	resp, err := k.client.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return a, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("status %d", resp.StatusCode)
	}
	a.release, a.closed = resp.Header.Get("X-Release"), resp.Close
	return a, nil
}

// During a swap, clients with an idle keep-alive connection to the old
// instance reuse it at moments spread over its drain: every POST goes out
// on that connection and is answered by the old release with
// Connection: close. A connection that is never used again keeps the old
// instance until its drain deadline, which the parent's
// BEAMDEPLOY_DRAIN_TIMEOUT puts before systemd's stop timeout: the old
// instance exits by itself rather than being killed.
func TestSystemdDrainServesIdleKeepAliveConnections(t *testing.T) {
	t.Parallel()
	a := newApp(t, "--drain-timeout", "4s", "--force")
	a.mustUpgrade(release(t, "1.0.0"))
	next := release(t, "1.1.0")
	old := a.status().Active.Unit
	assert.Contains(t, show(old, "Environment"), "BEAMDEPLOY_DRAIN_TIMEOUT=4s")
	const clients = 24
	kept := make([]*keptConn, clients+1)
	for i := range kept {
		kept[i] = &keptConn{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}, url: "http://" + a.addr + "/"}
		t.Cleanup(kept[i].client.CloseIdleConnections)
		ans, err := kept[i].post(t.Context())
		require.NoError(t, err)
		require.Equal(t, "1.0.0", ans.release)
	}
	// kept[clients] never sends again: it holds the old instance until its
	// deadline, 3 s (4 s less a quarter) after SIGTERM.
	type swapped struct {
		res    control.Result
		stderr string
		err    error
	}
	done := make(chan swapped, 1)
	go func() {
		res, stderr, err := a.upgrade(next)
		done <- swapped{res, stderr, err}
	}()
	// The drain began after the last poll that saw the old instance
	// running had begun: on a busy machine a poll takes a while, and the
	// clients' 2.4 s count from then, not from when a poll noticed.
	drainFrom := time.Now()
	require.Eventually(t, func() bool {
		began := time.Now()
		if show(old, "ActiveState") == "deactivating" {
			return true
		}
		drainFrom = began
		return false
	}, 60*time.Second, 10*time.Millisecond, "the old instance starts draining")
	answers, errs := make([]keptAnswer, clients), make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			// spread over the first 2.5 s of the drain, with jitter
			time.Sleep(time.Until(drainFrom.Add(time.Duration(i)*2400*time.Millisecond/clients + rand.N(100*time.Millisecond))))
			answers[i], errs[i] = kept[i].post(t.Context())
		})
	}
	wg.Wait()
	sw := <-done
	require.NoError(t, sw.err, sw.stderr)
	require.True(t, sw.res.OK, "%+v", sw.res)
	res := sw.res
	t.Logf("swap: ready %s, old instance stopped in %s (killed %v)", res.Ready, res.Stop, res.OldKilled)
	for i := range clients {
		if assert.NoError(t, errs[i], "client %d", i) {
			assert.Equal(t, keptAnswer{release: "1.0.0", reused: true, closed: true}, answers[i], "client %d", i)
		}
	}
	assert.False(t, res.OldKilled, "the old instance closed its last idle connection at its deadline and exited")
	assert.GreaterOrEqual(t, res.Stop, 2500*time.Millisecond, "the idle connection was kept until the deadline (3 s)")
	assert.Less(t, res.Stop, 4*time.Second)
	requireServing(t, a, "1.1.0")
}
