package control

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/swap"
)

// fakeParent answers the client over a unix socket as a parent would,
// with the answers a test gives, and records what it was asked.
type fakeParent struct {
	t      *testing.T
	socket string

	mu      sync.Mutex
	asked   []string // "METHOD PATH?QUERY body"
	answers map[string]func(w http.ResponseWriter, r *http.Request)
}

func newFakeParent(t *testing.T) *fakeParent {
	t.Helper()
	f := &fakeParent{t: t, socket: filepath.Join(t.TempDir(), "control.sock"), answers: map[string]func(http.ResponseWriter, *http.Request){}}
	ln, err := net.Listen("unix", f.socket)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

// on sets the answer to "METHOD PATH".
func (f *fakeParent) on(route string, h func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[route] = h
}

// onJSON answers route with status and v as JSON.
func (f *fakeParent) onJSON(route string, status int, v any) {
	f.on(route, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	})
}

// onStream answers route with a progress stream of lines.
func (f *fakeParent) onStream(route string, lines ...any) {
	f.on(route, func(w http.ResponseWriter, _ *http.Request) {
		for _, l := range lines {
			_ = json.NewEncoder(w).Encode(l)
			w.(http.Flusher).Flush()
		}
	})
}

func (f *fakeParent) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	route := r.Method + " " + r.URL.Path
	f.mu.Lock()
	q := ""
	if r.URL.RawQuery != "" {
		q = "?" + r.URL.RawQuery
	}
	f.asked = append(f.asked, strings.TrimSpace(r.Method+" "+r.URL.EscapedPath()+q+" "+string(body)))
	h := f.answers[route]
	f.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

func (f *fakeParent) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.asked)
	return f.asked[len(f.asked)-1]
}

func progress(msg string) Progress {
	return Progress{MessageType: TypeProgress, Event: swap.Event{Message: msg}}
}

func TestClientQueries(t *testing.T) {
	f := newFakeParent(t)
	c := NewClient("hello", f.socket)
	defer c.Close()
	ctx := t.Context()

	f.onJSON("GET "+PathStatus, 200, Status{MessageType: TypeStatus, App: "hello", ParentPID: 42})
	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 42, st.ParentPID)

	f.onJSON("GET "+PathReleases, 200, Releases{MessageType: TypeReleases, Releases: []ReleaseInfo{{Version: "1.0.0", State: "active"}}})
	rels, err := c.Releases(ctx)
	require.NoError(t, err)
	assert.Equal(t, "active", rels.Releases[0].State)

	f.on("PUT "+PathHandoff+"/a/b c", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	require.NoError(t, c.HandoffPut(ctx, "a/b c", []byte("v1")))
	assert.Equal(t, "PUT "+PathHandoff+"/a%2Fb%20c v1", f.last(), "the key is one path element, escaped")

	f.on("GET "+PathHandoff+"/k", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("value")) })
	v, err := c.HandoffGet(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "value", string(v))

	f.onJSON("DELETE "+PathHandoff+"/gone", http.StatusNotFound, Error{MessageType: TypeError, Code: CodeNotFound, Message: "no key gone"})
	err = c.HandoffDelete(ctx, "gone")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), `handoff delete "gone": no key gone`)

	f.onJSON("GET "+PathHandoff, 200, Handoff{MessageType: TypeHandoff, Entries: map[string][]byte{"k": []byte("v")}})
	all, err := c.HandoffList(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, all)

	f.onJSON("GET "+PathPeers, 200, Peers{MessageType: TypePeers, Unit: "hello@blue.service", Incoming: "hello@green.service"})
	p, err := c.Peers(ctx, "hello@blue.service")
	require.NoError(t, err)
	assert.Equal(t, "hello@green.service", p.Incoming)
	assert.Equal(t, "GET "+PathPeers+"?unit=hello%40blue.service", f.last())

	f.onJSON("GET "+PathCutover, 200, Peers{MessageType: TypePeers, Outgoing: "hello@blue.service"})
	p, err = c.WaitCutover(ctx, "hello@green.service")
	require.NoError(t, err)
	assert.Equal(t, "hello@blue.service", p.Outgoing)

	f.onJSON("POST "+PathLock, 200, LockState{MessageType: TypeLock, App: "hello", Lock: &Lock{Message: "freeze", User: "alice", UID: 1001}})
	ls, err := c.Lock(ctx, "freeze")
	require.NoError(t, err)
	assert.Equal(t, "alice (uid 1001)", ls.Lock.Who())
	assert.Equal(t, `POST `+PathLock+` {"message":"freeze"}`, f.last())
	f.onJSON("DELETE "+PathLock, 200, LockState{MessageType: TypeLock, App: "hello"})
	ls, err = c.Unlock(ctx)
	require.NoError(t, err)
	assert.Nil(t, ls.Lock)
	assert.Equal(t, "uid 7", Who("", 7))
}

func TestClientSwapStreams(t *testing.T) {
	f := newFakeParent(t)
	c := NewClient("hello", f.socket)
	c.Message = "release train 12"
	defer c.Close()
	ctx := t.Context()
	done := Result{MessageType: TypeResult, Result: swap.Result{ID: "s1", OK: true, Release: "1.1.0"}}

	var seen []string
	onProgress := func(p Progress) { seen = append(seen, p.Message) }
	f.onStream("POST "+PathUpgrade, progress("staging"), progress("starting"), done)
	res, err := c.Upgrade(ctx, "hello-1.1.0.tar.gz", strings.NewReader("tarball"), UpgradeOptions{SHA256: "ab", Force: true, Version: "1.1.0"}, onProgress)
	require.NoError(t, err)
	assert.Equal(t, "s1", res.ID)
	assert.Equal(t, []string{"staging", "starting"}, seen)
	assert.Equal(t, "POST "+PathUpgrade+"?filename=hello-1.1.0.tar.gz&force=1&message=release+train+12&sha256=ab&version=1.1.0 tarball", f.last())

	f.onStream("POST "+PathHotUpgrade, done)
	_, err = c.HotUpgrade(ctx, "hello-1.1.0.tar.gz", strings.NewReader("t"), UpgradeOptions{}, nil)
	require.NoError(t, err)

	f.onStream("POST "+PathReload, Detached{MessageType: TypeDetached, Swap: "s2", Release: "1.2.0"})
	res, err = c.Reload(ctx, SwapOptions{Detach: true}, nil)
	require.NoError(t, err)
	assert.Equal(t, Result{MessageType: TypeDetached, Result: swap.Result{ID: "s2", Release: "1.2.0"}}, res)
	assert.Equal(t, "POST "+PathReload+"?detach=1&message=release+train+12", f.last())

	f.onStream("GET "+PathWait, progress("draining"), done)
	res, err = c.Wait(ctx, "s1", nil)
	require.NoError(t, err)
	assert.True(t, res.OK)
	assert.Equal(t, "GET "+PathWait+"?swap=s1", f.last())

	f.onStream("POST "+PathSwap, done)
	_, err = c.Swap(ctx, "1.0.0", nil)
	require.NoError(t, err)
	assert.Equal(t, "POST "+PathSwap+`?message=release+train+12 {"release":"1.0.0"}`, f.last())

	f.onStream("POST "+PathRollback, Error{MessageType: TypeError, Code: CodeRolledBack, Message: "the new instance died"})
	_, err = c.Rollback(ctx, "0.9.0", SwapOptions{}, nil)
	assert.ErrorIs(t, err, swap.ErrRolledBack)
	assert.Equal(t, ExitRolledBack, ExitCode(err))
	assert.Contains(t, f.last(), "to=0.9.0")

	f.onStream("POST "+PathStage, progress("staging"), Staged{MessageType: TypeStaged, Version: "1.3.0", Files: 3})
	staged, err := c.Stage(ctx, "hello-1.3.0.tar.gz", strings.NewReader("t"), UpgradeOptions{}, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, staged.Files)

	f.onStream("POST "+PathUpgrade, progress("staging"))
	_, err = c.Upgrade(ctx, "hello-1.4.0.tar.gz", strings.NewReader("t"), UpgradeOptions{}, nil)
	require.ErrorContains(t, err, "without a result")
	assert.Contains(t, err.Error(), "journalctl -u hello.service", "a stream cut short says where to look")
}

func TestClientHot(t *testing.T) {
	f := newFakeParent(t)
	c := NewClient("hello", f.socket)
	defer c.Close()
	polls := 0
	f.on("GET "+PathHotWait, func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		polls++
		n := polls
		f.mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusNoContent) // no order yet: the client polls again
			return
		}
		_ = json.NewEncoder(w).Encode(HotOrder{MessageType: TypeHotOrder, ID: "h1", Release: "1.1.0", Argv: []string{"/bin/true"}})
	})
	o, err := c.HotWait(t.Context(), "hello@blue.service")
	require.NoError(t, err)
	assert.Equal(t, "h1", o.ID)
	assert.Equal(t, 3, polls)

	f.onJSON("POST "+PathHotReport, 200, HotVerdict{Proceed: true})
	v, err := c.HotReport(t.Context(), HotReport{ID: "h1", OK: true, PID: 7})
	require.NoError(t, err)
	assert.True(t, v.Proceed)
	assert.Equal(t, `POST `+PathHotReport+` {"id":"h1","ok":true,"pid":7}`, f.last())
}

func TestClientErrors(t *testing.T) {
	f := newFakeParent(t)
	c := NewClient("hello", f.socket)
	defer c.Close()
	ctx := t.Context()

	f.on("GET "+PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "a proxy's words", http.StatusBadGateway)
	})
	_, err := c.Status(ctx)
	require.ErrorContains(t, err, "parent answered 502 Bad Gateway: a proxy's words")
	assert.Equal(t, ExitFailure, ExitCode(err))

	f.on("GET "+PathReleases, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{not json")) })
	_, err = c.Releases(ctx)
	require.ErrorContains(t, err, "decode "+PathReleases)

	f.onJSON("POST "+PathLock, http.StatusLocked, Error{MessageType: TypeError, Code: CodeLocked, Message: "locked by alice"})
	_, err = c.Lock(ctx, "again")
	assert.ErrorIs(t, err, ErrLocked)
	assert.Equal(t, ExitLocked, ExitCode(err))

	gone := NewClient("nosuch", filepath.Join(t.TempDir(), "missing.sock"))
	_, err = gone.Status(ctx)
	assert.ErrorIs(t, err, ErrNotRunning)
	assert.Equal(t, ExitNotRunning, ExitCode(err))
	assert.Contains(t, err.Error(), "does not exist; start it with: systemctl start nosuch.service")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Status(cctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestCheckMessage(t *testing.T) {
	assert.NoError(t, CheckMessage("release train 12: fixes the login page"))
	assert.ErrorContains(t, CheckMessage(strings.Repeat("x", MaxMessage+1)), "at most")
	assert.ErrorContains(t, CheckMessage("two\nlines"), "one line")
	assert.ErrorContains(t, CheckMessage("\xff"), "UTF-8")
}
