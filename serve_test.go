package beamdeploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
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
		time.Sleep(pause) // some connections sit idle briefly
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
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer client.CloseIdleConnections() // the drain waits for this client to leave
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
	for _, tc := range []struct {
		env  string
		opts ServeOptions
		want time.Duration
	}{
		{"", ServeOptions{}, DefaultDrainTimeout},
		{"garbage", ServeOptions{}, DefaultDrainTimeout},
		{"-5s", ServeOptions{}, DefaultDrainTimeout},
		{"10s", ServeOptions{}, 7500 * time.Millisecond},
		{"30s", ServeOptions{}, 25 * time.Second},
		{"2m", ServeOptions{}, 115 * time.Second},
		{"2s", ServeOptions{}, 1500 * time.Millisecond},
		{"30s", ServeOptions{DrainTimeout: time.Second}, time.Second},
		{"30s", ServeOptions{DrainTimeout: -1}, 25 * time.Second},
	} {
		t.Run(tc.env+"/"+tc.opts.DrainTimeout.String(), func(t *testing.T) {
			t.Setenv(EnvDrainTimeout, tc.env)
			assert.Equal(t, tc.want, tc.opts.withDefaults().DrainTimeout)
		})
	}
}

// idleClient holds one keep-alive connection of its own.
type idleClient struct {
	client *http.Client
	url    string
}

func newIdleClient(t *testing.T, url string) *idleClient {
	t.Helper()
	c := &idleClient{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}, url: url}
	_, err := c.post([]byte("warm"))
	require.NoError(t, err) // leaves one idle keep-alive connection
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

type postResult struct {
	reused, closed bool // sent on the idle connection; answered with Connection: close
	server         string
}

// post sends a POST that the client never retries (no GetBody) and
// reports whether it went out on the connection kept idle.
func (c *idleClient) post(body []byte) (postResult, error) {
	var res postResult
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { res.reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
		http.MethodPost, c.url, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return res, err
	}
	req.ContentLength = int64(len(body))
	resp, err := c.client.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return res, fmt.Errorf("read response: %w", err)
	}
	if got := resp.Header.Get("X-Received"); resp.StatusCode != http.StatusOK || got != strconv.Itoa(len(body)) {
		return res, fmt.Errorf("status %d, X-Received %q for %d bytes", resp.StatusCode, got, len(body))
	}
	res.closed, res.server = resp.Close, resp.Header.Get("X-Server")
	return res, nil
}

// TestServeIdleKeepAliveReusedDuringDrain: clients that hold an idle
// keep-alive connection reuse it at moments spread over the drain. While
// there is time left the connection is still there: each POST goes out on
// it, is answered with Connection: close, and none meets a closed
// connection. The drain ends when the last client has been told to close.
func TestServeIdleKeepAliveReusedDuringDrain(t *testing.T) {
	base := warmFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String() + "/"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const timeout, spread, clients = 4 * time.Second, 2500 * time.Millisecond, 24
	done := startServe(ctx, &http.Server{Handler: echoHandler("A")}, ln, ServeOptions{DrainTimeout: timeout})
	idle := make([]*idleClient, clients)
	for i := range idle {
		idle[i] = newIdleClient(t, url)
	}
	begin := time.Now()
	cancel()
	results := make([]postResult, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i, c := range idle {
		wg.Go(func() {
			// spread over the drain, with jitter, around where a fixed idle
			// grace used to close connections too
			time.Sleep(time.Duration(i)*spread/clients + rand.N(spread/clients))
			results[i], errs[i] = c.post(bytes.Repeat([]byte("x"), 1+i*100))
		})
	}
	wg.Wait()
	for i := range clients {
		if assert.NoError(t, errs[i], "client %d", i) {
			assert.True(t, results[i].reused, "client %d: POST went out on its idle connection", i)
			assert.True(t, results[i].closed, "client %d: answered with Connection: close", i)
			assert.Equal(t, "A", results[i].server)
		}
	}
	require.NoError(t, waitServe(t, done, 2*timeout))
	assert.Less(t, time.Since(begin), timeout, "the drain ended with the last client, before the deadline")
	assertNoFDLeak(t, base)
}

// TestServeClosesIdleAtDeadline: a connection whose client neither uses nor
// closes it stays open until the drain deadline, then Serve closes it and
// returns nil (no request was cut). One the client closes ends at once.
func TestServeClosesIdleAtDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String() + "/"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const timeout = 1500 * time.Millisecond
	done := startServe(ctx, &http.Server{Handler: echoHandler("A")}, ln, ServeOptions{DrainTimeout: timeout})
	stays, leaves := newIdleClient(t, url), newIdleClient(t, url)
	begin := time.Now()
	cancel()
	leaves.client.CloseIdleConnections()
	require.NoError(t, waitServe(t, done, 5*timeout))
	assert.GreaterOrEqual(t, time.Since(begin), timeout, "the idle connection was kept until the deadline")
	_, err = stays.post([]byte("late"))
	assert.Error(t, err, "closed at the deadline, and nobody listens any more")
}

// TestServeH2CGoAway: with unencrypted HTTP/2 on, the drain sends GOAWAY at
// once to a connection with a request in flight and to an idle one; the
// request in flight completes; an HTTP/1 keep-alive connection idle at the
// same time is still served.
func TestServeH2CGoAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	started, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", echoHandler("A"))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "slow\n")
	})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := startServe(ctx, &http.Server{Handler: mux, Protocols: &protocols}, ln, ServeOptions{DrainTimeout: 10 * time.Second})

	busy, idle := dialH2C(t, addr), dialH2C(t, addr)
	busy.get(t, 1, "/slow", addr)
	<-started
	idle.get(t, 1, "/", addr)
	status, body := idle.response(t, 1)
	require.Equal(t, byte(0x88), status, ":status 200")
	require.Equal(t, "ok\n", body)
	h1 := newIdleClient(t, "http://"+addr+"/")

	cancel()
	for name, c := range map[string]*h2cConn{"busy": busy, "idle": idle} {
		last, code := c.goAway(t)
		assert.Equal(t, uint32(0), code, "%s: GOAWAY with NO_ERROR", name)
		assert.Equal(t, uint32(1), last, "%s: stream 1 is processed", name)
	}
	res, err := h1.post([]byte("after goaway"))
	require.NoError(t, err, "HTTP/1 keep-alive connection still served")
	assert.True(t, res.reused)
	assert.True(t, res.closed)

	close(release)
	status, body = busy.response(t, 1)
	assert.Equal(t, byte(0x88), status, ":status 200")
	assert.Equal(t, "slow\n", body, "the request in flight completed")
	require.NoError(t, waitServe(t, done, 5*time.Second))
}

// h2cConn is just enough of an HTTP/2 client over cleartext (prior
// knowledge) to watch the frames a server sends.
type h2cConn struct {
	c  net.Conn
	br *bufio.Reader
}

const (
	frameData     = 0x0
	frameHeaders  = 0x1
	frameSettings = 0x4
	frameGoAway   = 0x7
	flagEndStream = 0x1
	flagAck       = 0x1
	flagEndHeader = 0x4
)

func dialH2C(t *testing.T, addr string) *h2cConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	h := &h2cConn{c: c, br: bufio.NewReader(c)}
	_, err = io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	require.NoError(t, err)
	h.write(t, frameSettings, 0, 0, nil)
	return h
}

func (h *h2cConn) write(t *testing.T, typ, flags byte, stream uint32, payload []byte) {
	t.Helper()
	hdr := make([]byte, 9, 9+len(payload))
	hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	hdr[3], hdr[4] = typ, flags
	binary.BigEndian.PutUint32(hdr[5:], stream)
	_, err := h.c.Write(append(hdr, payload...))
	require.NoError(t, err)
}

// read returns the next frame other than SETTINGS, which it acknowledges.
func (h *h2cConn) read(t *testing.T) (typ, flags byte, stream uint32, payload []byte) {
	t.Helper()
	require.NoError(t, h.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	for {
		hdr := make([]byte, 9)
		_, err := io.ReadFull(h.br, hdr)
		require.NoError(t, err, "read frame header")
		payload = make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
		_, err = io.ReadFull(h.br, payload)
		require.NoError(t, err, "read frame payload")
		typ, flags, stream = hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff
		if typ == frameSettings && flags&flagAck == 0 {
			h.write(t, frameSettings, flagAck, 0, nil)
			continue
		}
		if typ != frameSettings {
			return typ, flags, stream, payload
		}
	}
}

// get sends a GET on stream, headers HPACK-encoded as literals.
func (h *h2cConn) get(t *testing.T, stream uint32, path, authority string) {
	t.Helper()
	var block []byte
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", path}, {":authority", authority}} {
		block = append(block, 0x00, byte(len(f[0])))
		block = append(block, f[0]...)
		block = append(block, byte(len(f[1])))
		block = append(block, f[1]...)
	}
	h.write(t, frameHeaders, flagEndHeader|flagEndStream, stream, block)
}

// response reads stream's response: the first byte of its header block
// (0x88 is ":status 200") and its body.
func (h *h2cConn) response(t *testing.T, stream uint32) (status byte, body string) {
	t.Helper()
	for {
		typ, flags, id, payload := h.read(t)
		if id != stream {
			continue
		}
		switch typ {
		case frameHeaders:
			require.NotEmpty(t, payload)
			status = payload[0]
		case frameData:
			body += string(payload)
		}
		if typ <= frameHeaders && flags&flagEndStream != 0 {
			return status, body
		}
	}
}

// goAway reads frames up to a GOAWAY and returns its last stream id and
// error code.
func (h *h2cConn) goAway(t *testing.T) (lastStream, code uint32) {
	t.Helper()
	for {
		typ, _, _, payload := h.read(t)
		if typ == frameGoAway {
			require.GreaterOrEqual(t, len(payload), 8)
			return binary.BigEndian.Uint32(payload) & 0x7fffffff, binary.BigEndian.Uint32(payload[4:])
		}
	}
}
