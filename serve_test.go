package beamdeploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shareListener returns a second listener on ln's socket, as another process
// holding the same socket would have. It dups through SyscallConn, never
// File() or Fd(), which would switch the shared socket to blocking mode.
func shareListener(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	require.NoError(t, err)
	dup := -1
	var dupErr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		dup, dupErr = syscall.Dup(int(fd))
		if dupErr == nil {
			syscall.CloseOnExec(dup)
		}
	}))
	require.NoError(t, dupErr)
	f := os.NewFile(uintptr(dup), "shared")
	defer f.Close()
	ln2, err := net.FileListener(f)
	require.NoError(t, err)
	return ln2
}

// echoHandler reads the body, names the server in X-Server and echoes the
// body length in X-Received.
func echoHandler(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Server", name)
		w.Header().Set("X-Received", strconv.FormatInt(n, 10))
		_, _ = io.WriteString(w, "ok\n")
	}
}

// load sends keep-alive POSTs from several goroutines until finish. The
// bodies have no GetBody, so the client never retries: a POST lost by the
// server is an error here.
type load struct {
	client *http.Client
	url    string
	stop   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex // guards errs, served
	errs   []error
	served map[string]int // by X-Server
}

func startLoad(url string, workers int) *load {
	l := &load{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * workers}},
		url:    url, stop: make(chan struct{}), served: map[string]int{},
	}
	for i := range workers {
		l.wg.Go(func() { l.run(time.Duration(i%3) * time.Millisecond) })
	}
	return l
}

func (l *load) run(pause time.Duration) {
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		// Every 25th request closes its connection, so new connections keep
		// spreading over both servers as they would with many clients.
		server, err := l.post(bytes.Repeat([]byte("x"), 1+i%3000), i%25 == 24)
		l.mu.Lock()
		if err != nil {
			l.errs = append(l.errs, err)
		} else {
			l.served[server]++
		}
		l.mu.Unlock()
		time.Sleep(pause) // some connections sit idle briefly, well within IdleGrace
	}
}

func (l *load) post(body []byte, closeConn bool) (string, error) {
	req, err := http.NewRequest(http.MethodPost, l.url, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return "", err
	}
	req.ContentLength = int64(len(body))
	req.Close = closeConn
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", fmt.Errorf("read response: %w", err)
	}
	if got := resp.Header.Get("X-Received"); resp.StatusCode != http.StatusOK || got != strconv.Itoa(len(body)) {
		return "", fmt.Errorf("status %d, X-Received %q for %d bytes", resp.StatusCode, got, len(body))
	}
	return resp.Header.Get("X-Server"), nil
}

// snapshot returns a copy of the per-server counts and the errors so far.
func (l *load) snapshot() (map[string]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	served := make(map[string]int, len(l.served))
	for k, v := range l.served {
		served[k] = v
	}
	return served, append([]error(nil), l.errs...)
}

func (l *load) finish() (map[string]int, []error) {
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
	return l.snapshot()
}

// countFDs returns the number of open fds, or -1 where /proc is missing.
// t may be nil (in helper processes).
func countFDs(t *testing.T) int {
	if t != nil {
		t.Helper()
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// assertNoFDLeak checks that the fd count drops back to at most base.
func assertNoFDLeak(t *testing.T, base int) {
	t.Helper()
	if base < 0 {
		return
	}
	assert.Eventually(t, func() bool { return countFDs(t) <= base }, 5*time.Second, 20*time.Millisecond,
		"fd count back to %d", base)
}

// warmFDs opens and closes a listener so that the runtime poller's fds exist
// before a baseline is taken.
func warmFDs(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	return countFDs(t)
}

// startServe runs Serve in a goroutine; the result arrives on the channel.
func startServe(ctx context.Context, srv *http.Server, ln net.Listener, opts ServeOptions) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, opts) }()
	return done
}

func waitServe(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Serve did not return within %s", within)
		return nil
	}
}

// TestServeDrainUnderLoad is the swap: two servers accept on one socket, one
// drains while keep-alive POSTs keep coming; no request may fail.
func TestServeDrainUnderLoad(t *testing.T) {
	base := warmFDs(t)
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lnB := shareListener(t, lnA)

	srvB := &http.Server{Handler: echoHandler("B")}
	go func() { _ = srvB.Serve(lnB) }()
	var states sync.Map // the app's own ConnState hook must still run
	srvA := &http.Server{Handler: echoHandler("A"), ConnState: func(c net.Conn, s http.ConnState) { states.Store(s, true) }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := startServe(ctx, srvA, lnA, ServeOptions{})

	l := startLoad("http://"+lnA.Addr().String()+"/", 8)
	time.Sleep(300 * time.Millisecond)
	require.Eventually(t, func() bool { s, _ := l.snapshot(); return s["A"] > 100 && s["B"] > 100 },
		10*time.Second, 10*time.Millisecond, "both servers take traffic")
	cancel()
	require.NoError(t, waitServe(t, done, 10*time.Second), "drained server returns nil")
	atDrain, _ := l.snapshot()
	require.Eventually(t, func() bool { s, _ := l.snapshot(); return s["B"] > atDrain["B"]+500 },
		10*time.Second, 10*time.Millisecond, "the other server keeps serving")
	served, errs := l.finish()

	assert.Empty(t, errs, "failed requests")
	t.Logf("served %v", served)
	for _, s := range []http.ConnState{http.StateNew, http.StateActive, http.StateClosed} {
		_, ok := states.Load(s)
		assert.True(t, ok, "app ConnState hook saw %s", s)
	}
	require.NoError(t, srvB.Close())
	assertNoFDLeak(t, base)
}

// TestServeSlowRequest: a request in flight when the drain starts completes.
func TestServeSlowRequest(t *testing.T) {
	notify := listenNotify(t, t.TempDir()+"/notify.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(time.Second)
		_, _ = io.WriteString(w, "slow\n")
	})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := startServe(ctx, srv, ln, ServeOptions{})

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-started
	begin := time.Now()
	cancel()
	assert.Equal(t, "STOPPING=1", readNotify(t, notify))
	require.NoError(t, waitServe(t, done, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(begin), 900*time.Millisecond, "Serve waited for the request")
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, "slow\n", r.body)
}

// TestServeIdleConnGrace: a keep-alive connection idle when the drain starts
// still takes a request within IdleGrace (answered with Connection: close),
// and an idle one is closed once IdleGrace has passed.
func TestServeIdleConnGrace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String() + "/"
	srv := &http.Server{Handler: echoHandler("A")}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := startServe(ctx, srv, ln, ServeOptions{IdleGrace: 400 * time.Millisecond})

	reused := &load{client: &http.Client{Transport: &http.Transport{}}, url: url}
	idle := &load{client: &http.Client{Transport: &http.Transport{}}, url: url}
	for _, c := range []*load{reused, idle} {
		_, err := c.post([]byte("warm"), false)
		require.NoError(t, err) // leaves one idle keep-alive connection each
	}
	begin := time.Now()
	cancel()
	time.Sleep(100 * time.Millisecond) // draining, listener closed, within the grace

	req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(bytes.NewReader([]byte("late"))))
	require.NoError(t, err)
	req.ContentLength = 4
	resp, err := reused.client.Do(req)
	require.NoError(t, err, "POST on an idle keep-alive connection during the grace")
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	assert.True(t, resp.Close, "answered with Connection: close")
	assert.Equal(t, "4", resp.Header.Get("X-Received"))

	require.NoError(t, waitServe(t, done, 5*time.Second), "the idle connection was closed")
	assert.GreaterOrEqual(t, time.Since(begin), 400*time.Millisecond, "not before IdleGrace")
	idle.client.CloseIdleConnections()
}

// TestServeDrainTimeout: a request that outlives DrainTimeout is cut off and
// Serve reports ErrDrainTimeout.
func TestServeDrainTimeout(t *testing.T) {
	base := warmFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := startServe(ctx, srv, ln, ServeOptions{DrainTimeout: 300 * time.Millisecond})

	client := &http.Client{Transport: &http.Transport{}}
	reqErr := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
		reqErr <- err
	}()
	<-started
	begin := time.Now()
	cancel()
	err = waitServe(t, done, 5*time.Second)
	require.ErrorIs(t, err, ErrDrainTimeout)
	assert.GreaterOrEqual(t, time.Since(begin), 300*time.Millisecond)
	assert.Error(t, <-reqErr, "the stuck request's connection was closed")
	client.CloseIdleConnections()
	assertNoFDLeak(t, base)
}

// TestServeError: when srv.Serve fails on its own, Serve returns at once.
func TestServeError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{}
	require.NoError(t, srv.Close())
	err = waitServe(t, startServe(t.Context(), srv, ln, ServeOptions{}), 5*time.Second)
	require.ErrorIs(t, err, http.ErrServerClosed)
}

func TestServeOptionsDefaults(t *testing.T) {
	o := ServeOptions{}.withDefaults()
	assert.Equal(t, DefaultIdleGrace, o.IdleGrace)
	assert.Equal(t, DefaultDrainTimeout, o.DrainTimeout)
	o = ServeOptions{IdleGrace: time.Second, DrainTimeout: -1}.withDefaults()
	assert.Equal(t, time.Second, o.IdleGrace)
	assert.Equal(t, DefaultDrainTimeout, o.DrainTimeout)
}
