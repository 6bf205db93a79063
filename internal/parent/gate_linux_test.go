package parent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beamdeploy/beamdeploy/internal/control"
	"github.com/beamdeploy/beamdeploy/internal/gate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listenTest listens on a fresh unix socket.
func listenTest(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	return ln, path
}

// serveGate serves h through a gate with cfg, like the parent's control
// socket, and returns a client of it.
func serveGate(t *testing.T, cfg gate.Config[verdict], h http.Handler) *control.Client {
	t.Helper()
	ln, path := listenTest(t)
	srv := controlServer(h)
	g, err := gate.Listen(ln, cfg)
	require.NoError(t, err)
	go func() { _ = srv.Serve(g) }() // ends at Close
	t.Cleanup(func() { _ = srv.Close() })
	c := control.NewClient("hello", path)
	t.Cleanup(c.Close)
	return c
}

// nothing is a handler that must not be reached.
func nothing(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a refused connection reached a handler")
		w.WriteHeader(http.StatusTeapot)
	})
}

// A connection refused at accept, before its request was read, is
// answered with a permission-denied error the CLI prints: also for an
// upload whose body the parent never reads.
func TestRefusedControlConnectionIsPermissionDenied(t *testing.T) {
	logged := &refusalLog{log: slog.New(slog.DiscardHandler), socket: "control"}
	c := serveGate(t, gate.Config[verdict]{
		Authorize: func(_ context.Context, uc *net.UnixConn) (verdict, bool) {
			return verdict{peer: peer{PID: 4242, UID: 1000}}, false
		},
		Refuse: refuseControl("hello", logged),
	}, nothing(t))

	check := func(err error) {
		t.Helper()
		require.ErrorIs(t, err, control.ErrPermissionDenied)
		assert.Contains(t, err.Error(), "permission denied: uid 1000 (pid 4242) may not use the control API of hello")
		assert.Contains(t, err.Error(), "join the beamdeploy group")
	}
	for range 30 {
		_, err := c.Status(t.Context())
		check(err)
	}
	big := strings.Repeat("x", 16<<20)
	for range 30 {
		// A reader of its own each time: the transport may still be
		// writing the last one.
		_, err := c.Upgrade(t.Context(), "hello-1.0.0.tar.gz", strings.NewReader(big), control.UpgradeOptions{}, nil)
		check(err)
	}
}

// Beyond the per-uid limit a connection is answered "busy" at once.
func TestTooManyControlConnectionsIsBusy(t *testing.T) {
	logged := &refusalLog{log: slog.New(slog.DiscardHandler), socket: "control"}
	ln, path := listenTest(t)
	g, err := gate.Listen(ln, gate.Config[verdict]{
		Limits: gate.Limits{PerUID: 1}, // nobody is privileged: the test's own uid is limited
		Authorize: func(context.Context, *net.UnixConn) (verdict, bool) {
			return verdict{access: access{deploy: true}}, true
		},
		Refuse: refuseControl("hello", logged),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	held, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer held.Close()
	admitted, err := g.AcceptConn()
	require.NoError(t, err)
	defer admitted.Close()

	c := control.NewClient("hello", path)
	defer c.Close()
	for range 2 { // the second answer is the one kept for the uid
		_, err = c.Status(t.Context())
		var ce *control.Error
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, control.CodeBusy, ce.Code)
		assert.Contains(t, err.Error(), fmt.Sprintf("too many connections: uid %d may have at most %d connections to the parent of hello", os.Getuid(), gate.DefaultPerUID))
	}
	assert.Equal(t, int64(2), g.Stats().TooMany)
}

// The gate's verdict reaches the handlers of the admitted connection.
func TestVerdictReachesHandlers(t *testing.T) {
	d := &daemon{opts: Options{App: "hello"}, auth: &authority{app: "hello"}, log: slog.New(slog.DiscardHandler)}
	ln, path := listenTest(t)
	srv := controlServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, a := peerFrom(r.Context())
		if p.PID != os.Getpid() || !a.deploy {
			http.Error(w, p.String(), http.StatusForbidden)
			return
		}
		writeJSON(w, http.StatusOK, control.Status{MessageType: control.TypeStatus, ParentPID: p.PID})
	}))
	g, err := d.controlGate(ln)
	require.NoError(t, err)
	go func() { _ = srv.Serve(g) }() // ends at Close
	defer srv.Close()
	c := control.NewClient("hello", path)
	defer c.Close()
	for range 3 {
		st, err := c.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, os.Getpid(), st.ParentPID)
	}
}

// Ordinary requests end at their deadline; long polls and streams lift
// it; uploads have a stall bound of their own and, once read, do not
// cancel the swap that follows.
func TestRequestDeadlines(t *testing.T) {
	const d = 200 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("GET /short", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(3 * d)
		_, _ = io.WriteString(w, "late") // fails: past the write deadline
	})
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		longPoll(w, 0)
		select {
		case <-time.After(3 * d):
			_, _ = io.WriteString(w, "event")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		out := newStream(w)
		body := newUploadBody(w, r)
		body.stall, body.limit = d, 20*d
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			out.send(errorBody(control.CodeInternal, err.Error()))
			return
		}
		// The swap after the upload outlasts every deadline above.
		select {
		case <-time.After(3 * d):
			out.send(control.Result{MessageType: control.TypeResult})
		case <-r.Context().Done():
			t.Errorf("the swap after an upload of %d bytes was cancelled", n)
		}
	})
	ln, path := listenTest(t)
	srv := controlServer(withDeadlines(d, mux))
	srv.ConnContext = nil
	go func() { _ = srv.Serve(ln) }() // ends at Close
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", path)
	}}}

	get := func(p string) (string, error) {
		resp, err := hc.Get("http://x" + p)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	_, err := get("/short")
	assert.Error(t, err, "an ordinary request past its deadline")
	got, err := get("/poll")
	require.NoError(t, err)
	assert.Equal(t, "event", got)

	upload := func(body io.Reader) string {
		resp, err := hc.Post("http://x/upload", "application/gzip", body)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	// A slow but steady upload that lasts longer than d.
	assert.Contains(t, upload(&trickle{n: 8, every: d / 2}), `"message_type":"result"`)
	// An upload that stalls.
	began := time.Now()
	assert.Contains(t, upload(&trickle{n: 2, every: d / 2, stallAfter: 1}), "upload too slow")
	assert.Less(t, time.Since(began), 10*d)
}

// trickle sends n bytes, one every every; after stallAfter bytes (when
// set) it blocks until the test ends.
type trickle struct {
	n, sent    int
	every      time.Duration
	stallAfter int
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.sent == r.n {
		return 0, io.EOF
	}
	if r.stallAfter > 0 && r.sent == r.stallAfter {
		time.Sleep(time.Minute)
		return 0, errors.New("trickle: stalled")
	}
	time.Sleep(r.every)
	p[0] = 'x'
	r.sent++
	return 1, nil
}
